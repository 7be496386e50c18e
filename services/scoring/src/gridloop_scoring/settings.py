"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field, model_validator


class ScoringSettings(ServiceSettings):
    service_name: str = Field("scoring", alias="SERVICE_NAME")
    http_port: int = Field(8005, alias="HTTP_PORT")
    # Which periods get a gridloop.score.published at their end (日、周、月、季、年).
    publish_periods: str = Field("day,week,month,quarter,year", alias="SCORING_PUBLISH_PERIODS")
    # Which closed periods get their bulletin (通报) generated, stored and announced
    # (gridloop.score.bulletin_published) at their end; empty: none.
    bulletin_periods: str = Field("month,quarter", alias="SCORING_BULLETIN_PERIODS")
    # Publish this long after a period ends, so events of its last minutes are in.
    publish_grace_s: float = Field(600.0, ge=0, alias="SCORING_PUBLISH_GRACE_S")
    # Area rule sets are ranked at these levels (cell, community, subdistrict, district).
    publish_area_levels: str = Field("subdistrict,community", alias="SCORING_PUBLISH_AREA_LEVELS")
    # The sweep folds at most this many cases an older version left marked per transaction …
    fold_batch: int = Field(500, ge=1, alias="SCORING_FOLD_BATCH")
    # … and looks for them this often (the consumer folds what it stores itself).
    fold_poll_s: float = Field(0.5, gt=0, alias="SCORING_FOLD_POLL_S")
    # The scores may lag the loop by this much: the consumer takes the case events in one
    # batch per this many seconds while they come in slower than a full batch, so a case's
    # events of that second are folded once, in one transaction (0: at once).
    linger_s: float = Field(1.0, ge=0, le=30, alias="SCORING_LINGER_S")
    # At most this many case events a batch (and a transaction). Larger than the other
    # consumers' CONSUMER_BATCH: the more of a case's events one batch holds, the fewer times
    # the case is folded again; under load, 1,024 cost scoring a quarter less CPU than 256.
    batch: int = Field(1024, ge=1, alias="SCORING_BATCH")
    # Replay (rebuild) pulls the CASES stream in batches of this size (two in flight).
    replay_batch: int = Field(20_000, ge=1, alias="SCORING_REPLAY_BATCH")

    @model_validator(mode="after")
    def _batch_within_ack_pending(self) -> "ScoringSettings":
        if self.batch > self.consumer_max_ack_pending:
            raise ValueError(
                f"SCORING_BATCH ({self.batch}) is more than CONSUMER_MAX_ACK_PENDING "
                f"({self.consumer_max_ack_pending}): a batch would never be delivered whole"
            )
        return self
