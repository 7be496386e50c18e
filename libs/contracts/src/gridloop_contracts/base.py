"""The base of every event model and the registry of event types by CloudEvents type name."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

E = TypeVar("E", bound="Event")


class Event(BaseModel):
    """The data of one CloudEvent. Subclasses set `type_name` (gridloop.<noun>.<verb>.vN)
    and `subject_token` (the last subject token, e.g. `accepted` for `case.accepted`).

    Unknown fields are ignored so that additive changes keep the version (ARCHITECTURE.md).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    type_name: ClassVar[str] = ""
    subject_token: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


REGISTRY: dict[str, type[Event]] = {}


def register(cls: type[E]) -> type[E]:
    """Class decorator: record an event model under its CloudEvents type name."""
    if not cls.type_name:
        raise TypeError(f"{cls.__name__} has no type_name")
    if cls.type_name in REGISTRY and REGISTRY[cls.type_name] is not cls:
        raise TypeError(f"type {cls.type_name} registered twice")
    REGISTRY[cls.type_name] = cls
    return cls


def model_for(type_name: str) -> type[Event]:
    """The model of a CloudEvents type; KeyError names the unknown type."""
    try:
        return REGISTRY[type_name]
    except KeyError:
        raise KeyError(f"unknown event type {type_name!r}") from None


Timestamp = AwareDatetime
"""Every time on the bus is timezone-aware (RFC 3339 with offset)."""

# The times a sender may name (reports, deadlines, absences, query bounds, periods): far
# enough either way for any real case, near enough that a day's or a year's arithmetic on
# them, or their conversion to UTC, can never leave the calendar (years 1 to 9999).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # the first instant past the range
TIME_RANGE = f"between {EARLIEST:%Y-%m-%d} and {LATEST.year - 1}-12-31"


def in_time_range(at: datetime) -> datetime:
    """An aware time within [EARLIEST, LATEST); ValueError says the range."""
    if not EARLIEST <= at < LATEST:
        raise ValueError(f"must be {TIME_RANGE} (UTC)")
    return at


def in_date_range(day: date) -> date:
    """A calendar day within the years of [EARLIEST, LATEST)."""
    if not EARLIEST.date() <= day < LATEST.date():
        raise ValueError(f"must be {TIME_RANGE}")
    return day


Instant = Annotated[AwareDatetime, AfterValidator(in_time_range)]
"""A timezone-aware time a sender gives, within the range above (422 naming it otherwise)."""
Day = Annotated[date, AfterValidator(in_date_range)]
"""A calendar day a sender gives, within the range above."""

__all__ = [
    "EARLIEST",
    "LATEST",
    "REGISTRY",
    "Day",
    "Event",
    "Instant",
    "Timestamp",
    "datetime",
    "in_date_range",
    "in_time_range",
    "model_for",
    "register",
]
