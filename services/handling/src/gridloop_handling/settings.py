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
    # A NATS command for a case not yet dispatched here waits this long for the dispatch
    # (the two travel on different streams) before it is refused as unknown.
    park_s: float = Field(30.0, ge=0, alias="HANDLING_PARK_S")
