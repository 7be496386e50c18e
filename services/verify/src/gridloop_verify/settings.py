"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import EvidenceSettings, ServiceSettings
from pydantic import Field


class VerifySettings(ServiceSettings, EvidenceSettings):
    """Verify's settings; the evidence store's (S3_*, ATTACHMENT_*) for site photos."""

    service_name: str = Field("verify", alias="SERVICE_NAME")
    http_port: int = Field(8004, alias="HTTP_PORT")
    # The Nth failed verification of a case escalates it (督办), and every one after it again.
    escalate_after_failures: int = Field(3, ge=1, alias="VERIFY_ESCALATE_AFTER_FAILURES")
    # Who a repeatedly failing case goes to (seed 000: the efficiency office answers for it).
    escalate_to: str = Field("efficiency-office", alias="VERIFY_ESCALATE_TO")
    # Categories where a dissatisfied rating reopens the closed case: comma-separated codes or
    # prefixes (`E01*`), `*` for every category; empty (the default) never reopens.
    reopen_on_dissatisfied: str = Field("", alias="VERIFY_REOPEN_ON_DISSATISFIED")
    # A passed verification must carry at least one photo (the evidence of 结案条件).
    require_photo_on_pass: bool = Field(True, alias="VERIFY_REQUIRE_PHOTO_ON_PASS")
    # A pass that closes the case at once: one case.closed v2 carrying the verdict (one event
    # and two deliveries fewer per case); false: case.verified then case.closed v1, for a
    # rollout from a release whose consumers do not read v2 yet (docs/operations.md, Upgrade).
    closed_v2: bool = Field(True, alias="VERIFY_CLOSED_V2")
    # Commands on distinct cases that arrive together (the supervisors' verdicts in a busy
    # spell) share one transaction, at most this many (runtime casework.CaseCommands); 1 runs
    # each in a transaction of its own.
    command_group: int = Field(32, ge=1, le=1000, alias="VERIFY_COMMAND_GROUP")
