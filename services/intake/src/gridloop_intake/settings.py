"""Settings of this service (environment variables; shared ones in ServiceSettings)."""

from typing import Literal

from gridloop_runtime.mail import MailSettings
from gridloop_runtime.settings import EvidenceSettings, ServiceSettings
from pydantic import Field, SecretStr


class IntakeSettings(ServiceSettings, MailSettings, EvidenceSettings):
    """Intake's settings; the SMTP server of the mail to reporters is MailSettings' (SMTP_*,
    MAIL_*), the evidence store of the reports' photos EvidenceSettings' (S3_*, ATTACHMENT_*)."""

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
    # Reports taken in one transaction at most (the fetch size of `intake-reports`). A
    # report's work holds more than a case event's (its placement, the duplicate search, the
    # new case's file until the batch is written): a burst of reports in batches of 256 raised
    # the process's peak memory by 17 MB, in batches of 64 by 5 MB, at the same rate.
    report_batch: int = Field(64, ge=1, le=1024, alias="INTAKE_REPORT_BATCH")
    # A report accepted as it comes in: one case.accepted v2 carrying its 上报 (one event and
    # one delivery fewer per case); false: case.reported then case.accepted v1, for a rollout
    # from a release whose consumers do not read v2 yet (docs/operations.md, Upgrade).
    accepted_v2: bool = Field(True, alias="INTAKE_ACCEPTED_V2")
    # 类案参考, similar past cases: closed cases within this distance, ranked by text
    # similarity, nearness and the same category with these weights; the descriptions'
    # words as character bigrams (as CJK search engines index Chinese; no dictionary), or by
    # jieba's dictionary (closer words, about 65 MB more per process), indexed in the
    # background a batch at a time, looking for newly closed cases every interval. Changing
    # the tokenizer segments the archive again in the background.
    similar_radius_m: float = Field(500.0, gt=0, alias="INTAKE_SIMILAR_RADIUS_M")
    similar_weight_text: float = Field(0.6, ge=0, alias="INTAKE_SIMILAR_WEIGHT_TEXT")
    similar_weight_distance: float = Field(0.25, ge=0, alias="INTAKE_SIMILAR_WEIGHT_DISTANCE")
    similar_weight_category: float = Field(0.15, ge=0, alias="INTAKE_SIMILAR_WEIGHT_CATEGORY")
    similar_tokenizer: Literal["jieba", "bigram"] = Field(
        "bigram", alias="INTAKE_SIMILAR_TOKENIZER"
    )
    similar_candidates: int = Field(200, ge=1, le=5000, alias="INTAKE_SIMILAR_CANDIDATES")
    similar_index_batch: int = Field(500, ge=1, alias="INTAKE_SIMILAR_INDEX_BATCH")
    similar_index_interval_s: float = Field(5.0, gt=0, alias="INTAKE_SIMILAR_INDEX_INTERVAL_S")
    # Mail to reporters: the public pages the mails link to (the console's /public/), the
    # key that signs the one-click rating links, and how long a link works.
    public_url: str = Field("http://127.0.0.1:8006/public/", alias="INTAKE_PUBLIC_URL")
    rating_link_secret: SecretStr = Field(
        SecretStr("gridloop-dev-rating-links"), alias="INTAKE_RATING_LINK_SECRET"
    )
    rating_link_days: float = Field(30.0, gt=0, alias="INTAKE_RATING_LINK_DAYS")
    # 回访: closed hotline and Open311 cases whose reporter has not rated after this many
    # days are on the operators' call-back worklist; this many tries without reaching them
    # close the call-back as not reached.
    callback_after_days: float = Field(3.0, ge=0, alias="INTAKE_CALLBACK_AFTER_DAYS")
    callback_max_tries: int = Field(3, ge=1, alias="INTAKE_CALLBACK_MAX_TRIES")
