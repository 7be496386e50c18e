"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field


class DispatchSettings(ServiceSettings):
    service_name: str = Field("dispatch", alias="SERVICE_NAME")
    http_port: int = Field(8002, alias="HTTP_PORT")
