"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import EvidenceSettings, ServiceSettings
from pydantic import Field


class IntakeSettings(ServiceSettings, EvidenceSettings):
    """Intake's settings; the evidence store's (S3_*, ATTACHMENT_*) for the reports' photos."""

    service_name: str = Field("intake", alias="SERVICE_NAME")
    http_port: int = Field(8001, alias="HTTP_PORT")
    # The source a REST report is filed under when the caller names none (sources.yaml codes).
    hotline_source: str = Field("12345", alias="INTAKE_HOTLINE_SOURCE")
    patrol_source: str = Field("patrol-app", alias="INTAKE_PATROL_SOURCE")
    # Open311: the answer size cap and the default look-back of GET requests (the spec's 90 days).
    open311_max_requests: int = Field(1000, alias="INTAKE_OPEN311_MAX_REQUESTS")
    open311_default_days: int = Field(90, alias="INTAKE_OPEN311_DEFAULT_DAYS")
    # Open311's public list: the coordinates of a public case rounded to this many decimals
    # (3: about 100 m), so that the list does not point at a doorstep.
    open311_public_coord_decimals: int = Field(
        3, ge=0, le=15, alias="INTAKE_OPEN311_PUBLIC_COORD_DECIMALS"
    )
    # A sender's times (reported_at, detected_at, rated_at, the envelope's ce-time) may run
    # this far ahead of intake's clock; further ahead is refused, naming the field.
    max_time_ahead_s: float = Field(300.0, ge=0, alias="INTAKE_MAX_TIME_AHEAD_S")
    # "Similar past cases": archived cases of the same category within this distance.
    similar_radius_m: float = Field(500.0, alias="INTAKE_SIMILAR_RADIUS_M")
