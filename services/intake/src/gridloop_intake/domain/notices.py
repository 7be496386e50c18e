"""Mail to reporters (告知): which change of a case a reporter who left an e-mail hears of,
the mail from the city's templates (intake.yaml `mail`, Chinese and English), and the
signed rating link of a closing. Pure: the rules schedule what this composes
(`gridloop_runtime.mail`), the timer runner sends it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from gridloop_city import City
from gridloop_runtime.mail import Mail

from .problems import Problem, Refused

LANGS = ("zh", "en")


@dataclass(frozen=True)
class Residents:
    """What mail to reporters needs besides the city: where the public pages are, the key
    that signs rating links and how long a link works."""

    public_url: str = "http://127.0.0.1:8006/public/"
    link_secret: bytes = b"gridloop-dev-rating-links"
    link_ttl: timedelta = timedelta(days=30)

    def case_url(self, case_id: str) -> str:
        return f"{self.public_url}#/case/{case_id}"

    def rating_url(self, token: str) -> str:
        return f"{self.public_url}#/rate/{token}"


def lang_of(text: str | None) -> str:
    """`en`, `en-GB,en;q=0.9` → en; anything else (or nothing) → zh."""
    first = (text or "").split(",", 1)[0].strip().lower()
    return "en" if first.startswith("en") else "zh"


# -- the rating link: signed, for one closing, used once (a closing is rated once) ---------------
@dataclass(frozen=True)
class RatingLink:
    """What a rating link stands for: the reporter (`ref`) rating the closing at `closed_at`."""

    case_id: str
    closed_at: datetime
    ref: str
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest()[:18])


def rating_token(secret: bytes, link: RatingLink) -> str:
    body = _b64(
        orjson.dumps(
            [
                link.case_id,
                link.closed_at.astimezone(UTC).isoformat(),
                link.ref,
                int(link.expires_at.timestamp()),
            ]
        )
    )
    return f"{body}.{_sign(secret, body)}"


def read_rating_token(secret: bytes, token: str, now: datetime) -> RatingLink:
    """The link a token stands for; Refused (naming `token`) when it is not one of ours, was
    changed, or has expired."""
    body, _, signature = token.partition(".")
    if not body or not signature or not hmac.compare_digest(signature, _sign(secret, body)):
        raise Refused(Problem("token", "not a valid rating link", "invalid-link", 404))
    try:
        case_id, closed_at, ref, expires = orjson.loads(_unb64(body))
        link = RatingLink(
            str(case_id),
            datetime.fromisoformat(closed_at),
            str(ref),
            datetime.fromtimestamp(int(expires), UTC),
        )
    except (ValueError, TypeError):
        raise Refused(Problem("token", "not a valid rating link", "invalid-link", 404)) from None
    if now >= link.expires_at:
        raise Refused(Problem("token", "this rating link has expired", "link-expired", 410))
    return link


# -- the mails ---------------------------------------------------------------------------------
class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def compose(city: City, kind: str, lang: str, ref: str, values: Mapping[str, Any]) -> Mail | None:
    """The mail of `kind` in `lang` (Chinese where the city has no such language) for the
    reporter `ref`; None where the city sends no such mail."""
    templates = city.intake.mail.get(kind)
    if not templates:
        return None
    lang = lang if lang in templates else "zh"
    template = templates[lang]
    district = city.district.name_en if lang == "en" else city.district.name
    fields = _Blank({"district": district or city.district.name})
    fields.update({k: "" if v is None else str(v) for k, v in values.items()})
    return Mail(
        to_ref=ref,
        subject=template.subject.format_map(fields),
        text=template.body.format_map(fields),
        lang=lang,
    )
