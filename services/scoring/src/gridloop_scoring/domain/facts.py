"""事实: one case event as scoring keeps it — deduplicated by event id, ordered by when it
happened, never by when it arrived."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gridloop_contracts import cases as ev

# Same-instant events are ordered by their place in the lifecycle, so a fold never depends on
# the order in which the bus delivered them.
LIFECYCLE_RANK: Mapping[str, int] = {m.subject_token: i for i, m in enumerate(ev.CASE_EVENTS)}
MODEL_BY_TYPE: Mapping[str, type[ev.CaseEvent]] = {m.type_name: m for m in ev.CASE_EVENTS}


@dataclass(frozen=True, slots=True)
class Fact:
    """A validated case event: `data` is the contract model dumped to JSON values."""

    event_id: str  # `<ce-source>|<ce-id>`, the runtime inbox's key
    case_id: str
    type: str  # the subject token: `accepted`, `closed`, …
    occurred_at: dt.datetime
    data: Mapping[str, Any]

    @property
    def order(self) -> tuple[dt.datetime, int, str]:
        return (self.occurred_at, LIFECYCLE_RANK.get(self.type, 99), self.event_id)


def event_key(source: str, event_id: str) -> str:
    """CloudEvents ids are unique per source: the key is both."""
    return f"{source}|{event_id}"


def fact_of(source: str, event_id: str, event: ev.CaseEvent) -> Fact:
    return Fact(
        event_id=event_key(source, event_id),
        case_id=event.case_id,
        type=event.subject_token,
        occurred_at=event.occurred_at,
        data=event.to_json_dict(),
    )


def parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 string from a fact's data (already validated as aware), or None."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return None


def fact_from(source: str, event_id: str, type_name: str, data: object) -> Fact | None:
    """The fact of a CloudEvent: None for a type scoring does not know (ignored the same way
    live and in replay); ValueError (pydantic's) for data that breaks the contract."""
    model = MODEL_BY_TYPE.get(type_name)
    if model is None:
        return None
    return fact_of(source, event_id, model.model_validate(data))


def fact_from_json(source: str, event_id: str, type_name: str, body: bytes) -> Fact | None:
    """The replay's fast path: validate the JSON body straight into the contract model and
    keep the model's fields as the data (no dump: the fold reads datetimes and nested
    values either way). Same answers as `fact_from`."""
    model = MODEL_BY_TYPE.get(type_name)
    if model is None:
        return None
    event = model.model_validate_json(body)
    return Fact(
        event_id=event_key(source, event_id),
        case_id=event.case_id,
        type=event.subject_token,
        occurred_at=event.occurred_at,
        data=event.__dict__,
    )


def json_default(value: object) -> object:
    """orjson's fallback for data kept as model fields (nested models, URLs)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    return str(value)
