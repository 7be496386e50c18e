"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field


class ScoringSettings(ServiceSettings):
    service_name: str = Field("scoring", alias="SERVICE_NAME")
    http_port: int = Field(8005, alias="HTTP_PORT")
    # Which periods get a gridloop.score.published at their end (日、周、月、季、年).
    publish_periods: str = Field("day,week,month,quarter,year", alias="SCORING_PUBLISH_PERIODS")
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
    # Replay (rebuild) pulls the CASES stream in batches of this size (two in flight).
    replay_batch: int = Field(20_000, ge=1, alias="SCORING_REPLAY_BATCH")
