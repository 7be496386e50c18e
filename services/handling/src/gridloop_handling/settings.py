"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field


class HandlingSettings(ServiceSettings):
    service_name: str = Field("handling", alias="SERVICE_NAME")
    http_port: int = Field(8003, alias="HTTP_PORT")
