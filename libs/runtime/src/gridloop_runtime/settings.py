"""Service settings from environment variables: the same names in `make run`, tests and deploy/."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from nats.js.api import StoreCompression
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .db import RANDOM_PAGE_COST
from .retention import Retention, stream_ages


def _default_city_dir() -> Path:
    # The demo city shipped in the repo: data/demo-city beside libs/.
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "data" / "demo-city"
        if candidate.is_dir():
            return candidate
    return Path("data/demo-city")


class ServiceSettings(BaseSettings):
    """What every service reads. Each service subclass sets its own defaults (name, port)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    service_name: str = Field("gridloop", alias="SERVICE_NAME")
    # which process of the service this is (a replica, a pod): in every log line
    service_instance: str = Field("", alias="SERVICE_INSTANCE")
    nats_url: str = Field("nats://127.0.0.1:4222", alias="NATS_URL")
    nats_user: str | None = Field(None, alias="NATS_USER")
    nats_password: str | None = Field(None, alias="NATS_PASSWORD")
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/gridloop", alias="DATABASE_URL")
    db_schema: str | None = Field(None, alias="DB_SCHEMA")
    db_pool_min: int = Field(2, alias="DB_POOL_MIN")
    db_pool_max: int = Field(10, alias="DB_POOL_MAX")
    # a request waiting longer than this for a pooled connection is answered 503
    db_acquire_timeout_s: float = Field(5.0, alias="DB_ACQUIRE_TIMEOUT_S")
    http_host: str = Field("127.0.0.1", alias="HTTP_HOST")
    http_port: int = Field(8000, alias="HTTP_PORT")
    city_data_dir: Path = Field(default_factory=_default_city_dir, alias="CITY_DATA_DIR")
    # Released versions of the city's data (gridloop_city.versions): when set and holding a
    # CURRENT version, the services start on it and follow `city.updated`; empty: off.
    city_versions_dir: str = Field("", alias="CITY_VERSIONS_DIR")
    # The working calendar's alarm (calendarwatch): on when it is official for fewer days
    # ahead than this; the horizon is looked at again this often (and at start-up).
    calendar_alarm_days: int = Field(90, ge=1, alias="CALENDAR_ALARM_DAYS")
    calendar_check_s: float = Field(3600.0, gt=0, alias="CALENDAR_CHECK_S")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    log_json: bool = Field(True, alias="LOG_JSON")
    # HTTP overload (gridloop_runtime.limits): requests in flight beyond the cap get 503, a
    # client beyond its token bucket 429, both with Retry-After; 0 turns a limit off.
    http_max_in_flight: int = Field(256, alias="HTTP_MAX_IN_FLIGHT")
    http_retry_after_s: float = Field(1.0, alias="HTTP_RETRY_AFTER_S")
    # An idle keep-alive connection is closed after this. Longer than the idle timeout of
    # whatever sits in front (an ingress, a phone's HTTP stack): the side that closes first
    # races a request just sent on the connection, which the client sees as a reset.
    http_keep_alive_s: float = Field(75.0, alias="HTTP_KEEP_ALIVE_S", gt=0)
    # per authenticated user or Open311 API key
    rate_limit_client_per_s: float = Field(100.0, alias="RATE_LIMIT_CLIENT_PER_S")
    rate_limit_client_burst: int = Field(200, alias="RATE_LIMIT_CLIENT_BURST")
    # per client address, for anonymous callers (the public Open311 reads)
    rate_limit_public_per_s: float = Field(10.0, alias="RATE_LIMIT_PUBLIC_PER_S")
    rate_limit_public_burst: int = Field(50, alias="RATE_LIMIT_PUBLIC_BURST")
    # JetStream consumers
    consumer_batch: int = Field(256, alias="CONSUMER_BATCH")
    consumer_max_deliver: int = Field(5, alias="CONSUMER_MAX_DELIVER")
    consumer_ack_wait_s: float = Field(10.0, alias="CONSUMER_ACK_WAIT_S")
    consumer_max_ack_pending: int = Field(4096, alias="CONSUMER_MAX_ACK_PENDING")
    consumer_retry_delay_s: float = Field(1.0, alias="CONSUMER_RETRY_DELAY_S")
    # A consumer off the path a report takes to its department (`ConsumerSpec.lingers`)
    # that fetched fewer than CONSUMER_LINGER_BELOW messages waits CONSUMER_LINGER_S before
    # fetching again, so that in light traffic it takes several messages a transaction
    # instead of one; under load its batches are larger and it never waits. 0: never.
    consumer_linger_s: float = Field(0.05, ge=0, le=10, alias="CONSUMER_LINGER_S")
    consumer_linger_below: int = Field(8, ge=1, alias="CONSUMER_LINGER_BELOW")
    # A consumer whose work nobody waits on by the millisecond (`ConsumerSpec.patient`:
    # intake's case file, verify's cases) waits this long after any batch that was not full.
    # 0: it lingers as the others off the report's path do.
    consumer_patient_linger_s: float = Field(0.25, ge=0, le=10, alias="CONSUMER_PATIENT_LINGER_S")
    # streams
    stream_replicas: int = Field(1, alias="STREAM_REPLICAS")
    # days a stream keeps a message, e.g. "INTAKE=30,DISPATCH=90" (0: for ever); a stream
    # not named keeps the age it has; never CASES (retention.stream_ages)
    stream_max_age_days: str = Field("", alias="STREAM_MAX_AGE_DAYS")
    # how the server stores the streams' full file blocks: s2 (about a sixth of the disk
    # for CASES) or none; changed in place, for the blocks written from then on
    stream_compression: Literal["s2", "none"] = Field("s2", alias="STREAM_COMPRESSION")
    # outbox relay and timers
    outbox_batch: int = Field(512, alias="OUTBOX_BATCH")
    outbox_poll_s: float = Field(1.0, alias="OUTBOX_POLL_S")
    # The sweeper leaves rows younger than this to the publisher of the process that
    # committed them (which sends them right after the commit).
    outbox_sweep_grace_s: float = Field(2.0, alias="OUTBOX_SWEEP_GRACE_S")
    timer_poll_s: float = Field(0.5, alias="TIMER_POLL_S")
    # how often the service analyses its tables whose planner statistics are stale (0: never,
    # autovacuum alone); see statistics.py
    db_analyse_every_s: float = Field(30.0, ge=0, alias="DB_ANALYSE_EVERY_S")
    # the planner's cost of a page read out of order on the service's connections (db.py)
    db_random_page_cost: float = Field(RANDOM_PAGE_COST, gt=0, alias="DB_RANDOM_PAGE_COST")
    # the consumers' batches run on kept plans, made for any parameters (db.connect)
    db_consumer_generic_plans: bool = Field(True, alias="DB_CONSUMER_GENERIC_PLANS")
    # how long the runtime's rows are kept, in days (0: for ever), and how often old ones are
    # deleted (0: never); see retention.py for what each one's loss would cost
    timers_retention_days: float = Field(30.0, ge=0, alias="TIMERS_RETENTION_DAYS")
    inbox_retention_days: float = Field(0.0, ge=0, alias="INBOX_RETENTION_DAYS")
    outbox_retention_days: float = Field(0.0, ge=0, alias="OUTBOX_RETENTION_DAYS")
    commands_retention_days: float = Field(0.0, ge=0, alias="COMMANDS_RETENTION_DAYS")
    retention_every_s: float = Field(3600.0, ge=0, alias="RETENTION_EVERY_S")
    shutdown_grace_s: float = Field(20.0, alias="SHUTDOWN_GRACE_S")
    # a file holding a clock offset in seconds (tests and demos only; unset in production)
    clock_file: str | None = Field(None, alias="CLOCK_FILE")
    # tracing (gridloop_runtime.tracing): "none" (ids carried, nothing recorded), "console"
    # (stdout) or "otlp" (a collector over OTLP/HTTP, batched)
    otel_exporter: Literal["none", "console", "otlp"] = Field("none", alias="OTEL_EXPORTER")
    # where "otlp" sends: the collector's base URL (/v1/traces is appended; the standard
    # variable, read by the exporter itself, as are OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the
    # full URL) and OTEL_EXPORTER_OTLP_HEADERS); unset: http://localhost:4318
    otel_exporter_otlp_endpoint: str = Field("", alias="OTEL_EXPORTER_OTLP_ENDPOINT")

    @property
    def db_schema_name(self) -> str:
        return self.db_schema or self.service_name

    @property
    def retention(self) -> Retention:
        return Retention(
            timers_days=self.timers_retention_days,
            inbox_days=self.inbox_retention_days,
            outbox_days=self.outbox_retention_days,
            commands_days=self.commands_retention_days,
        )

    @property
    def stream_max_ages_s(self) -> dict[str, float]:
        """The streams' ages in seconds, by stream name (0: for ever)."""
        return {name: days * 86400 for name, days in stream_ages(self.stream_max_age_days).items()}

    @property
    def stream_store_compression(self) -> StoreCompression:
        return StoreCompression(self.stream_compression)

    @field_validator("stream_max_age_days")
    @classmethod
    def _known_stream_ages(cls, value: str) -> str:
        stream_ages(value)
        return value

    @model_validator(mode="after")
    def _safe_retention(self) -> ServiceSettings:
        problem = self.retention.problem()
        if problem is not None:
            raise ValueError(problem)
        return self


class EvidenceSettings(BaseSettings):
    """The evidence store (photos, voice notes) of the services that take uploads (intake,
    handling, verify): any S3-compatible endpoint, and the rules for what is taken."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    s3_endpoint: str = Field("http://127.0.0.1:8333", alias="S3_ENDPOINT")
    s3_region: str = Field("us-east-1", alias="S3_REGION")
    s3_bucket: str = Field("gridloop-evidence", alias="S3_BUCKET")
    s3_access_key: str | None = Field(None, alias="S3_ACCESS_KEY")
    s3_secret_key: str | None = Field(None, alias="S3_SECRET_KEY")
    # "path" (…/bucket/key: SeaweedFS, MinIO, most on-premises stores) or "virtual"
    s3_addressing_style: str = Field("path", alias="S3_ADDRESSING_STYLE")
    # a request to the store that takes longer fails, and the upload is answered 503
    s3_timeout_s: float = Field(5.0, gt=0, alias="S3_TIMEOUT_S")
    # larger uploads are refused (413)
    attachment_max_bytes: int = Field(10 * 1024 * 1024, ge=1, alias="ATTACHMENT_MAX_BYTES")
    # a photo whose EXIF position is farther than this from the case's point is flagged
    attachment_far_m: float = Field(200.0, gt=0, alias="ATTACHMENT_FAR_M")
    # GET /attachments/{id}: "bytes" (through the service) or "redirect" (307 to a presigned
    # URL of the store, which the clients must then be able to reach)
    attachment_download: str = Field(
        "bytes", pattern="^(bytes|redirect)$", alias="ATTACHMENT_DOWNLOAD"
    )
    attachment_url_ttl_s: int = Field(300, ge=1, le=604800, alias="ATTACHMENT_URL_TTL_S")
    # the store is down: Retry-After of the 503 answer to an upload
    attachment_retry_after_s: int = Field(30, ge=1, alias="ATTACHMENT_RETRY_AFTER_S")
    attachment_thumbnail_px: int = Field(320, ge=16, le=2048, alias="ATTACHMENT_THUMBNAIL_PX")
