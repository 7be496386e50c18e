"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field


class ScoringSettings(ServiceSettings):
    service_name: str = Field("scoring", alias="SERVICE_NAME")
    http_port: int = Field(8005, alias="HTTP_PORT")
