"""The base of every event model and the registry of event types by CloudEvents type name."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict

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

__all__ = ["REGISTRY", "Event", "Timestamp", "datetime", "model_for", "register"]
