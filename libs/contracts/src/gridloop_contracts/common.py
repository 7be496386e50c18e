"""Value types shared by events and messages: places, people, evidence."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

Urgency = Literal["normal", "urgent"]
AttachmentKind = Literal["photo", "audio", "video", "document"]
Rating = Literal["satisfied", "basically_satisfied", "dissatisfied"]


class Value(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Location(Value):
    """A WGS-84 point."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Attachment(Value):
    """Evidence by reference (photos, recordings): the bytes live elsewhere."""

    url: HttpUrl
    kind: AttachmentKind = "photo"


class Actor(Value):
    """Who did something: a person (user id and role) or a system."""

    id: str
    role: str
    dept: str | None = None
    name: str | None = None


class MaskedReporter(Value):
    """The reporter as other services may see them: masked, plus a reference into intake."""

    ref: str | None = None
    name: str | None = None  # e.g. 张*
    phone: str | None = None  # e.g. 138****5678


class FieldError(Value):
    """One thing wrong with an input, naming the field (dotted path)."""

    field: str
    reason: str
    # A stable machine-readable reason (e.g. `not-signed`, `wrong-department`), where known.
    code: str | None = None
