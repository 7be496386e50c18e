"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import EvidenceSettings, ServiceSettings
from pydantic import Field


class HandlingSettings(ServiceSettings, EvidenceSettings):
    """Handling's settings; the evidence store's (S3_*, ATTACHMENT_*) for results' photos."""

    service_name: str = Field("handling", alias="SERVICE_NAME")
    http_port: int = Field(8003, alias="HTTP_PORT")
    # A result (处置反馈) must carry at least one photo or document as evidence.
    require_evidence: bool = Field(True, alias="HANDLING_REQUIRE_EVIDENCE")
    # How far a result's completed_at may lie ahead of our clock (departments' clocks drift).
    clock_skew_s: float = Field(300.0, ge=0, alias="HANDLING_CLOCK_SKEW_S")
    # A NATS command for a case not yet dispatched here (the department's feed and
    # case.dispatched travel on different streams) is run the moment the dispatch is heard,
    # and refused as unknown if none is heard within this bound. 5 minutes: longer than
    # handling takes to come back after a restart or a rolling upgrade and catch up on CASES
    # (the dispatch is then only late, not missing), short enough that a department acting
    # on a case that is not theirs hears so while its people are still on it; a kit asking
    # again meanwhile (same command id) joins the same wait.
    park_s: float = Field(300.0, ge=0, alias="HANDLING_PARK_S")
