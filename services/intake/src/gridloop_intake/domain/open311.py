"""Open311 GeoReport v2 (公众上报开放接口): the service list from the category catalogue, the
request parameters, service requests in JSON and XML, and errors in the spec's shape."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


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


def service_definition(category: Category) -> dict[str, Any]:
    return {"service_code": category.code, "attributes": [URGENCY_ATTRIBUTE]}


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
    urgency: Literal["normal", "urgent"]
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
    urgency = _one(params, "attribute[urgency]") or "normal"
    if urgency not in ("normal", "urgent"):
        raise Open311Error(400, "attribute[urgency]: must be normal or urgent")
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
        urgency=urgency,  # type: ignore[arg-type]
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
