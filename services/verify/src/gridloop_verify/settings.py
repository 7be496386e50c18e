"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field


class VerifySettings(ServiceSettings):
    service_name: str = Field("verify", alias="SERVICE_NAME")
    http_port: int = Field(8004, alias="HTTP_PORT")
