"""事实: one case event as scoring keeps it — deduplicated by event id, ordered by when it
happened, never by when it arrived."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, NamedTuple

from gridloop_contracts import cases as ev

# Same-instant events are ordered by their place in the lifecycle, so a fold never depends on
# the order in which the bus delivered them.
LIFECYCLE_RANK: Mapping[str, int] = {m.subject_token: i for i, m in enumerate(ev.CASE_EVENTS)}
# Every version of every case event scoring reads (a newer version shares its subject token,
# so its facts fold as the older version's: the fold reads only fields both have).
ALL_VERSIONS: tuple[type[ev.CaseEvent], ...] = (*ev.CASE_EVENTS, *ev.CASE_EVENT_VERSIONS)
MODEL_BY_TYPE: Mapping[str, type[ev.CaseEvent]] = {m.type_name: m for m in ALL_VERSIONS}


class Fact(NamedTuple):
    """A validated case event: `data` is the contract model dumped to JSON values. (A named
    tuple: a replay makes millions of them.)"""

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


# The fields each type must carry (by their JSON names): the fast path's contract check.
REQUIRED: Mapping[str, frozenset[str]] = {
    m.type_name: frozenset(f.alias or n for n, f in m.model_fields.items() if f.is_required())
    for m in ALL_VERSIONS
}
# A kept fact is read again (a late one, in a replay) as the first version of its token.
TYPE_OF_TOKEN: Mapping[str, str] = {m.subject_token: m.type_name for m in ev.CASE_EVENTS}
# Each type's fields (by their JSON names), and the types of each token, oldest first.
_FIELDS: Mapping[str, frozenset[str]] = {
    m.type_name: frozenset(f.alias or n for n, f in m.model_fields.items()) for m in ALL_VERSIONS
}
_VERSIONS: dict[str, list[str]] = {}
for _m in ALL_VERSIONS:
    _VERSIONS.setdefault(_m.subject_token, []).append(_m.type_name)


def type_of(f: Fact) -> str:
    """The CloudEvents type of a kept fact: of the versions its token has, the oldest with
    every field its data carries and the fields it requires (case.rated v2 has `level`, v1
    `rating`; case.accepted v2 carries `report`); else the newest it has the required fields
    of."""
    versions = _VERSIONS.get(f.type, [])
    keys = f.data.keys()
    for type_name in versions:
        if REQUIRED[type_name] <= keys and keys <= _FIELDS[type_name]:
            return type_name
    for type_name in reversed(versions):
        if REQUIRED[type_name] <= keys:
            return type_name
    return TYPE_OF_TOKEN[f.type]


def fact_from_data(event_key: str, type_name: str, data: object) -> Fact | None:
    """The replay's fast path: a fact straight from the decoded JSON, kept as it is (what the
    fold reads: `.get` on JSON values), after a check that the type's required fields are
    there and `occurred_at` is an aware RFC 3339 instant. None when that check fails (the
    caller validates such an event fully); a type scoring does not know is the caller's
    to filter out first."""
    if not isinstance(data, dict) or not REQUIRED[type_name] <= data.keys():
        return None
    case_id = data["case_id"]
    at = data["occurred_at"]
    if not isinstance(case_id, str) or not case_id or not isinstance(at, str):
        return None
    try:
        occurred_at = dt.datetime.fromisoformat(at)
    except ValueError:
        return None
    if occurred_at.tzinfo is None:
        return None
    token = MODEL_BY_TYPE[type_name].subject_token
    return Fact(event_key, case_id, token, occurred_at, data)
