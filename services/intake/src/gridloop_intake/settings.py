"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field


class IntakeSettings(ServiceSettings):
    service_name: str = Field("intake", alias="SERVICE_NAME")
    http_port: int = Field(8001, alias="HTTP_PORT")
    # The source a REST report is filed under when the caller names none (sources.yaml codes).
    hotline_source: str = Field("12345", alias="INTAKE_HOTLINE_SOURCE")
    patrol_source: str = Field("patrol-app", alias="INTAKE_PATROL_SOURCE")
    # Open311: the answer size cap and the default look-back of GET requests (the spec's 90 days).
    open311_max_requests: int = Field(1000, alias="INTAKE_OPEN311_MAX_REQUESTS")
    open311_default_days: int = Field(90, alias="INTAKE_OPEN311_DEFAULT_DAYS")
    # "Similar past cases": archived cases of the same category within this distance.
    similar_radius_m: float = Field(500.0, alias="INTAKE_SIMILAR_RADIUS_M")
