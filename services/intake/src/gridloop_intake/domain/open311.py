"""Open311 GeoReport v2 (公众上报开放接口): the service list from the category catalogue, the
request parameters, service requests in JSON and XML, and errors in the spec's shape."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from xml.etree import ElementTree as ET

from gridloop_city.models import Category, Major
from gridloop_contracts.base import in_time_range

Format = Literal["json", "xml"]

# An address a mail can go to: something@a.domain, no spaces or control characters.
_EMAIL = re.compile(r"[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f.]+(\.[^@\s\x00-\x1f.]+)+")

# XML element names of list items, by the name of the list (the spec's singulars).
_ITEM = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "errors": "error",
}

URGENCY_ATTRIBUTE: dict[str, Any] = {
    "variable": True,
    "code": "urgency",
    "datatype": "singlevaluelist",
    "required": False,
    "datatype_description": "normal or urgent",
    "order": 1,
    "description": "紧急程度 / urgency",
    "values": [
        {"key": "normal", "name": "一般 / normal"},
        {"key": "urgent", "name": "紧急 / urgent"},
    ],
}


class Open311Error(Exception):
    """An error answered as `[{code, description}]` with the HTTP status `code`."""

    def __init__(self, code: int, description: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after_s = retry_after_s  # a 503: when to try again (Retry-After)


# -- services ---------------------------------------------------------------------------
def service(category: Category, major: Major | None) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.acceptance_standard,
        "metadata": True,
        "type": "realtime",
        "keywords": ", ".join(k for k in (category.name_en, category.kind) if k),
        "group": major.name if major else category.major_code,
    }


PART_CODE_ATTRIBUTE: dict[str, Any] = {
    "variable": True,
    "code": "part_code",
    "datatype": "string",
    "required": False,
    "datatype_description": "16 位部件编码（部件上的标牌）/ the part's 16-digit code on its plate",
    "order": 2,
    "description": "部件编码 / part code",
    "values": [],
}
# Free text an attribute may hold: a `string` is a line, a `text` a paragraph.
_STRING_MAX, _TEXT_MAX = 200, 2000
_PART_CODE = re.compile(r"\d{16}")


def attributes(category: Category) -> list[dict[str, Any]]:
    """The service definition's attributes: urgency, for parts the part code (部件编码, which
    locates the report on the part), then the category's own questions (city data)."""
    out = [URGENCY_ATTRIBUTE]
    if category.kind == "part":
        out.append(PART_CODE_ATTRIBUTE)
    for a in category.attributes:
        out.append(
            {
                "variable": True,
                "code": a.code,
                "datatype": a.datatype,
                "required": a.required,
                "datatype_description": a.datatype_description or None,
                "order": len(out) + 1,
                "description": a.description,
                "values": [{"key": v.key, "name": v.name} for v in a.values],
            }
        )
    return out


def service_definition(category: Category) -> dict[str, Any]:
    return {"service_code": category.code, "attributes": attributes(category)}


@dataclass(frozen=True)
class Answers:
    """A request's `attribute[code]` values, checked against the service definition."""

    urgency: Literal["normal", "urgent"] = "normal"
    part_code: str | None = None
    # the category's own questions: code → value (a number, a UTC time, text, a key, keys)
    values: Mapping[str, Any] = field(default_factory=dict)


def _attribute_params(params: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """`attribute[code]` and `attribute[code][]` (a multivaluelist's PHP-style form) →
    code → the values sent, blanks dropped."""
    out: dict[str, list[str]] = {}
    for name, values in params.items():
        m = re.fullmatch(r"attribute\[([^\[\]]*)\](\[\])?", name)
        if m is None:
            continue
        kept = [v.strip() for v in values if v.strip()]
        out.setdefault(m.group(1), []).extend(kept)
    return out


def parse_answers(params: Mapping[str, Sequence[str]], category: Category) -> Answers:
    """Check every `attribute[code]` against the category's service definition: a code it
    does not have, a value not of its datatype or not one of its values, a required one
    missing — each an Open311Error(400) naming `attribute[code]`."""
    sent = _attribute_params(params)
    own = {a.code: a for a in category.attributes}
    known = {"urgency", *(("part_code",) if category.kind == "part" else ()), *own}
    for code in sent:
        if code not in known:
            raise Open311Error(
                400,
                f"attribute[{code}]: not an attribute of service {category.code} "
                f"(services/{category.code}.json lists them)",
            )
    for code, given in sent.items():
        if len(given) > 1 and not (code in own and own[code].datatype == "multivaluelist"):
            raise Open311Error(400, f"attribute[{code}]: one value only")
    urgency = (sent.get("urgency") or ["normal"])[0]
    if urgency not in ("normal", "urgent"):
        raise Open311Error(400, "attribute[urgency]: must be normal or urgent")
    part = next(iter(sent.get("part_code") or []), None)
    if part is not None and not _PART_CODE.fullmatch(part):
        raise Open311Error(400, "attribute[part_code]: a 16-digit part code (部件编码)")
    answers: dict[str, Any] = {}
    for code, a in own.items():
        got = sent.get(code) or []
        name = f"attribute[{code}]"
        if not got:
            if a.required:
                raise Open311Error(400, f"{name}: required ({a.description})")
            continue
        keys = {v.key for v in a.values}
        if a.datatype == "number":
            try:
                number = float(got[0])
            except ValueError:
                raise Open311Error(400, f"{name}: not a number: {got[0]!r}") from None
            if not math.isfinite(number):
                raise Open311Error(400, f"{name}: not a finite number")
            answers[code] = number
        elif a.datatype == "datetime":
            at = parse_datetime(got[0], name)
            answers[code] = _w3c(at)
        elif a.datatype in ("string", "text"):
            limit = _STRING_MAX if a.datatype == "string" else _TEXT_MAX
            if len(got[0]) > limit:
                raise Open311Error(400, f"{name}: at most {limit} characters")
            answers[code] = got[0]
        else:
            wrong = [v for v in got if v not in keys]
            if wrong:
                raise Open311Error(
                    400, f"{name}: {wrong[0]!r} is not one of {', '.join(sorted(keys))}"
                )
            answers[code] = got[0] if a.datatype == "singlevaluelist" else list(dict.fromkeys(got))
    return Answers(urgency, part, answers)  # type: ignore[arg-type]


# -- requests -----------------------------------------------------------------------------
@dataclass(frozen=True)
class NewRequest:
    """A POST requests body, checked; what the report pipeline needs from it."""

    service_code: str
    lat: float | None
    lon: float | None
    address_string: str | None
    description: str | None
    media_url: str | None
    name: str | None
    phone: str | None
    email: str | None
    device_id: str | None
    account_id: str | None
    lang: str | None = None  # gridloop extension: the language of the mails (zh, en)


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    value = values[0].strip()
    return value or None


def _coordinate(text: str | None, name: str, lo: float, hi: float) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Open311Error(400, f"{name}: not a number: {text!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise Open311Error(400, f"{name}: must be between {lo} and {hi}")
    return value


def parse_new_request(params: Mapping[str, Sequence[str]]) -> NewRequest:
    """Check a POST requests body (form fields). Raises Open311Error(400) naming the field."""
    code = _one(params, "service_code")
    if code is None:
        raise Open311Error(400, "service_code: required")
    lat = _coordinate(_one(params, "lat"), "lat", -90, 90)
    lon = _coordinate(_one(params, "long"), "long", -180, 180)
    address = _one(params, "address_string")
    if (lat is None) != (lon is None):
        raise Open311Error(400, "lat and long: both or neither")
    if lat is None and address is None and _one(params, "address_id") is None:
        raise Open311Error(400, "lat/long, address_string or address_id: one is required")
    if lat is None and address is None:
        raise Open311Error(400, "address_id: not supported here; send lat/long or address_string")
    description = _one(params, "description")
    if description is not None and len(description) > 2000:
        raise Open311Error(400, "description: at most 2000 characters")
    media_url = _one(params, "media_url")
    if media_url is not None and not media_url.startswith(("http://", "https://")):
        raise Open311Error(400, "media_url: must be an http(s) URL")
    email = _one(params, "email")
    if email is not None and (len(email) > 254 or not _EMAIL.fullmatch(email)):
        raise Open311Error(400, "email: not an e-mail address")
    lang = _one(params, "lang")
    if lang is not None and lang not in ("zh", "en"):
        raise Open311Error(400, "lang: zh or en")
    first, last = _one(params, "first_name"), _one(params, "last_name")
    # Chinese order: family name first.
    name = "".join(p for p in (last, first) if p) or None
    return NewRequest(
        service_code=code,
        lat=lat,
        lon=lon,
        address_string=address,
        description=description,
        media_url=media_url,
        name=name,
        phone=_one(params, "phone"),
        email=email,
        device_id=_one(params, "device_id"),
        account_id=_one(params, "account_id"),
        lang=lang,
    )


def parse_datetime(text: str | None, name: str) -> datetime | None:
    """A w3c datetime (`2026-11-23T08:00:00+08:00`, `…Z`); without an offset, UTC."""
    if text is None or not text.strip():
        return None
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name}: not a w3c datetime: {text!r}") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    try:
        return in_time_range(at)
    except ValueError as exc:
        raise Open311Error(422, f"{name}: {exc}") from None


def parse_list(text: str | None) -> list[str]:
    """The spec's comma-delimited lists (`service_request_id=1,2,3`)."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def parse_status(text: str | None) -> list[str]:
    statuses = parse_list(text)
    for s in statuses:
        if s not in ("open", "closed"):
            raise Open311Error(400, f"status: {s!r} is not open or closed")
    return statuses


def _w3c(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


def _rounded(value: Any, decimals: int | None) -> Any:
    return round(value, decimals) if decimals is not None and value is not None else value


def service_request(
    case: Mapping[str, Any],
    service_name: str,
    agency: str | None,
    coord_decimals: int | None = None,
) -> dict[str, Any]:
    """A case as the spec's service request (the public view: no reporter data, and the
    coordinates rounded to `coord_decimals` when given)."""
    media = [a.get("url") for a in case.get("attachments") or [] if a.get("kind") == "photo"]
    return {
        "service_request_id": case["case_id"],
        "status": case["open311_status"],
        "status_notes": case.get("status_notes"),
        "service_name": service_name,
        "service_code": case.get("category_code"),
        "description": case.get("description"),
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _w3c(case.get("reported_at")),
        "updated_datetime": _w3c(case.get("updated_at")),
        "expected_datetime": _w3c(case.get("deadline")),
        "address": case.get("address"),
        "address_id": case.get("part_code"),
        "zipcode": None,
        "lat": _rounded(case.get("lat"), coord_decimals),
        "long": _rounded(case.get("lon"), coord_decimals),
        "media_url": media[0] if media else None,
    }


# -- rendering ------------------------------------------------------------------------------
# What XML 1.0 cannot carry at all, not even as a character reference: C0 controls other
# than tab, newline and carriage return, surrogates, U+FFFE and U+FFFF. A description may
# hold them (sent by anyone, stored as sent); the document must parse all the same.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _append(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, list):
        item = _ITEM.get(name, "item")
        for v in value:
            _append(child, item, v)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _append(child, k, v)
    else:
        child.text = _text(value)


def to_xml(root: str, items: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> bytes:
    """`<services><service>…</service></services>`-style documents; a mapping renders as one
    element (`<service_definition>`)."""
    element = ET.Element(root)
    if isinstance(items, Mapping):
        for k, v in items.items():
            _append(element, k, v)
    else:
        item = _ITEM.get(root, "item")
        for it in items:
            _append(element, item, it)
    body: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return body


def errors_body(errors: Sequence[Open311Error]) -> list[dict[str, Any]]:
    return [{"code": e.code, "description": e.description} for e in errors]
