"""Intake's state of one case (the aggregate the rules change): the case row, and what a
batch adds to the case file — timeline lines, reports and reporters, the archive snapshot
of a closing, a rating. `CaseStore` (store.py) loads it and writes back only what changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

from gridloop_contracts import CaseStatus

# Channels the public reports through (Open311 and the web portals post as `web`); cases of
# the others (hotline calls, patrols, cameras) are internal until an operator says otherwise.
PUBLIC_CHANNELS = ("web",)


class Row(Protocol):
    """A database row as read (asyncpg's Record), by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass
class CaseRow:
    """A case as intake keeps it: one row of `cases`, every column."""

    case_id: str
    status: str
    status_notes: str | None
    channel: str
    source: str
    external_id: str | None
    report_id: str
    category_code: str | None
    urgency: str
    description: str
    cell_code: str
    community_code: str
    subdistrict_code: str
    lon: float
    lat: float
    located_by: str
    address: str | None
    part_code: str | None
    part_owner_dept: str | None
    camera_id: str | None
    confidence: float | None
    reporter: dict[str, Any] | None
    reporter_user_id: str | None
    attachments: list[dict[str, Any]]
    reported_at: datetime
    received_at: datetime
    updated_at: datetime
    queue_reason: str | None = None
    proposal: dict[str, Any] | None = None
    accepted_at: datetime | None = None
    dept: str | None = None
    task_id: str | None = None
    deadline: datetime | None = None
    overdue: bool = False
    ever_overdue: bool = False
    # the handling-stage overdues declared on the case and not withdrawn (超期撤回): while
    # any stands, it was overdue (`ever_overdue`)
    overdue_count: int = 0
    reworks: int = 0
    closed_at: datetime | None = None
    on_time: bool | None = None
    archived: bool = False
    rating: str | None = None
    reports: int = 1
    detections: int = 0
    targets: list[list[str]] | None = None
    public: bool | None = None  # an operator's decision on the public list; None: undecided
    # reporters who get mail on the case's changes: [[ref, lang], …] (the address stays in
    # `reporters`); and the department's last reported result, for the "closed" mail
    subscribers: list[list[str]] | None = None
    result: str | None = None
    # evidence uploaded to gridloop's store (AttachmentRef as JSON): the report's and those
    # added to it later
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def case_status(self) -> CaseStatus:
        return CaseStatus(self.status)

    @property
    def listed_publicly(self) -> bool:
        """Shown by Open311's public list: as an operator decided, else when the case came
        in through a public channel."""
        return self.public if self.public is not None else self.channel in PUBLIC_CHANNELS

    @classmethod
    def of(cls, rec: Row) -> CaseRow:
        return cls(**{f.name: rec[f.name] for f in fields(cls)})

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


CASE_COLUMNS = [f.name for f in fields(CaseRow)]

# Columns an event or a decision may set.
UPDATABLE = frozenset(
    {
        "category_code",
        "urgency",
        "queue_reason",
        "proposal",
        "accepted_at",
        "dept",
        "task_id",
        "deadline",
        "overdue",
        "ever_overdue",
        "overdue_count",
        "reworks",
        "closed_at",
        "on_time",
        "archived",
        "rating",
        "part_owner_dept",
        "public",
        "result",
        "files",
    }
)


@dataclass(frozen=True)
class Entry:
    """One line of a case's timeline (append-only)."""

    case_id: str
    type: str
    occurred_at: datetime
    summary: str
    data: dict[str, Any]
    recorded_at: datetime
    event_id: str | None = None
    actor: dict[str, Any] | None = None
    status: str | None = None

    def archived(self) -> dict[str, Any]:
        """The line as the archive keeps it."""
        return {
            "type": self.type,
            "occurred_at": self.occurred_at.astimezone(UTC),
            "actor": self.actor,
            "status": self.status,
            "summary": self.summary,
            "event_id": self.event_id,
        }


@dataclass(frozen=True)
class ReportRow:
    """A report or detection as received: one row of `reports`."""

    report_id: str
    source: str
    external_id: str | None
    channel: str
    case_id: str
    outcome: str  # new | merged | folded
    reported_at: datetime
    received_at: datetime
    camera_id: str | None
    confidence: float | None
    data: dict[str, Any]


@dataclass(frozen=True)
class ReporterRow:
    """A reporter's identity: it stays in `reporters`, nowhere else."""

    ref: str
    report_id: str
    name: str | None
    phone: str | None
    email: str | None
    created_at: datetime
    lang: str | None = None


@dataclass(frozen=True)
class RatingRow:
    case_id: str
    closed_at: datetime
    rating: str
    comment: str | None
    via: str
    rated_at: datetime


@dataclass(frozen=True)
class Snapshot:
    """结单归档: the case as it stood at closing, and how many of this batch's timeline lines
    were on file by then (the lines already stored come from the timeline table)."""

    closed_at: datetime
    case: dict[str, Any]
    recent: list[dict[str, Any]]


@dataclass
class CaseFile:
    """Intake's state of one case. `case` is None while the case is not on file (events of
    another service may arrive first: their timeline lines are kept all the same)."""

    case_id: str
    case: CaseRow | None = None
    # what changed: the row (new: to insert), and the rows this batch adds
    new: bool = False
    changed: bool = False
    entries: list[Entry] = field(default_factory=list)
    reports: list[ReportRow] = field(default_factory=list)
    reporters: list[ReporterRow] = field(default_factory=list)
    ratings: list[RatingRow] = field(default_factory=list)
    snapshot: Snapshot | None = None
    archive_rating: str | None = None
    # the closings already rated (loaded by the ratings store only; None: not loaded)
    rated: set[datetime] | None = None

    @property
    def dirty(self) -> bool:
        return (
            self.new
            or self.changed
            or bool(self.entries or self.reports or self.reporters or self.ratings)
            or self.snapshot is not None
            or self.archive_rating is not None
        )

    def saved(self) -> None:
        """Written back: nothing changed since."""
        self.new = self.changed = False
        self.entries, self.reports, self.reporters, self.ratings = [], [], [], []
        self.snapshot = self.archive_rating = None

    def open(self, case: CaseRow) -> None:
        """A new case on file."""
        self.case, self.new = case, True

    def add(self, *entries: Entry) -> None:
        self.entries.extend(entries)

    def update(
        self,
        *,
        at: datetime | None,
        status: CaseStatus | None = None,
        notes: str | None = None,
        columns: Mapping[str, Any] | None = None,
    ) -> CaseRow:
        """Set the status (if given) with its notes, the whitelisted columns and (unless `at`
        is None) the time of the change."""
        case = self.case
        assert case is not None, f"case {self.case_id} is not on file"
        if at is not None:
            case.updated_at = at
        if status is not None:
            case.status, case.status_notes = status.value, notes
        for name, value in (columns or {}).items():
            if name not in UPDATABLE:
                raise ValueError(f"column {name!r} is not updatable")
            setattr(case, name, value)
        self.changed = True
        return case

    def archive(self, closed_at: datetime) -> None:
        """Keep the case as it stands now (at closing) in the archive; the row is archived."""
        case = self.case
        assert case is not None
        data = {k: _utc(v) for k, v in case.values().items() if k not in ("targets", "subscribers")}
        self.snapshot = Snapshot(closed_at, data, [e.archived() for e in self.entries])
        self.update(at=None, columns={"archived": True})


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value
