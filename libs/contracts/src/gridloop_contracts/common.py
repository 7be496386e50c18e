"""Value types shared by events and messages: places, people, evidence."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
)

Urgency = Literal["normal", "urgent"]
AttachmentKind = Literal["photo", "audio", "video", "document"]
Rating = Literal["satisfied", "basically_satisfied", "dissatisfied"]
"""The three ratings of the v1 contracts (gridloop.case.rated.v1, gridloop.rating.v1)."""

Level = Literal["A", "B", "C", "D"]
"""满意度 (seed 002): A 非常满意 very satisfied, B 满意 satisfied, C 一般 fair,
D 不满意 dissatisfied — the levels of the v2 contracts."""

LEVELS: tuple[Level, ...] = ("A", "B", "C", "D")
LEVEL_NAMES: dict[str, tuple[str, str]] = {
    "A": ("非常满意", "very satisfied"),
    "B": ("满意", "satisfied"),
    "C": ("一般", "fair"),
    "D": ("不满意", "dissatisfied"),
}
# A v1 rating as a level: what the three old values mean on the four-level scale.
LEVEL_OF_RATING: dict[str, Level] = {
    "satisfied": "B",
    "basically_satisfied": "C",
    "dissatisfied": "D",
}


def level_of(value: str) -> Level:
    """A level from either scale: `A`–`D` as they are, a v1 rating mapped (LEVEL_OF_RATING);
    ValueError names the values taken."""
    if value in LEVELS:
        return value
    try:
        return LEVEL_OF_RATING[value]
    except KeyError:
        raise ValueError(
            f"{value!r} is not a level: A, B, C, D (or satisfied, basically_satisfied, "
            "dissatisfied)"
        ) from None


def _mapped(value: object) -> object:
    return LEVEL_OF_RATING.get(value, value) if isinstance(value, str) else value


LevelIn = Annotated[Level, BeforeValidator(_mapped)]
"""A level a sender gives: A–D, or one of the three v1 ratings (mapped to B, C, D)."""


# Characters that show nothing and are no whitespace to str.strip: text of only these is blank.
_INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff"
_INVISIBLE = dict.fromkeys(map(ord, _INVISIBLE_CHARS))


def not_blank(text: str) -> str:
    """Text that says something: only spaces (of any script) or invisible characters is
    missing text, refused as such."""
    if text and not text[0].isspace() and text[0] not in _INVISIBLE_CHARS:
        return text  # the common case, without reading the whole text
    if not text.translate(_INVISIBLE).strip():
        raise ValueError("must not be blank")
    return text


NonBlank = Annotated[str, AfterValidator(not_blank)]
"""Free text a sender must give: blank (only spaces) is refused like missing."""


class Value(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Location(Value):
    """A WGS-84 point."""

    model_config = ConfigDict(allow_inf_nan=False)  # NaN and infinity are nowhere

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Attachment(Value):
    """Evidence by reference (photos, recordings): the bytes live elsewhere."""

    url: HttpUrl
    kind: AttachmentKind = "photo"


class AttachmentRef(Value):
    """Evidence uploaded to gridloop's object store (`POST /attachments` on intake, handling
    or verify): what it is, never the bytes. `GET /attachments/{attachment_id}` gives them to
    whoever may read the case."""

    attachment_id: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the file as uploaded")
    content_type: str = Field(max_length=64, description="decided from the bytes")
    kind: AttachmentKind
    size: int = Field(ge=0)
    taken_at: AwareDatetime | None = Field(None, description="the photo's EXIF time")
    distance_m: float | None = Field(
        None, ge=0, description="from the photo's EXIF position to the case's point"
    )
    far: bool | None = Field(None, description="taken farther from the point than allowed")


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
