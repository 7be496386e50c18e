"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field


class IntakeSettings(ServiceSettings):
    service_name: str = Field("intake", alias="SERVICE_NAME")
    http_port: int = Field(8001, alias="HTTP_PORT")
