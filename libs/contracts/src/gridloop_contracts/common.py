"""Value types shared by events and messages: places, people, evidence."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl

Urgency = Literal["normal", "urgent"]
AttachmentKind = Literal["photo", "audio", "video", "document"]
Rating = Literal["satisfied", "basically_satisfied", "dissatisfied"]


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
