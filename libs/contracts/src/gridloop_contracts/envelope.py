"""CloudEvents 1.0 envelope over NATS: binary mode (ce- headers) and structured mode.

Services publish binary mode: attributes in `ce-*` headers, the data as JSON body and
`Nats-Msg-Id` = `ce-id` so JetStream drops re-published duplicates. Integrators may send
either mode; `decode` tells them apart by `content-type`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from .base import Event, model_for

SPECVERSION: Final = "1.0"
JSON: Final = "application/json"
STRUCTURED: Final = "application/cloudevents+json"
MSG_ID_HEADER: Final = "Nats-Msg-Id"
TRACE_HEADERS: Final = ("traceparent", "tracestate")

_REQUIRED: Final = ("id", "source", "type", "specversion")
_CORE: Final = frozenset(
    {"id", "source", "type", "specversion", "time", "subject", "datacontenttype", "dataschema"}
)


# CloudEvents 1.0 String attributes exclude the control characters U+0000-U+001F and
# U+007F-U+009F (no database text column takes U+0000 either).
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


class EnvelopeError(ValueError):
    """A message is not a valid CloudEvent; `field` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Envelope:
    """One CloudEvent: context attributes plus the JSON data (already parsed)."""

    type: str
    source: str
    data: Any
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: str = JSON
    extensions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        event: Event,
        *,
        source: str,
        subject: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> Envelope:
        """Wrap an event model; the type comes from the model."""
        return cls(
            type=event.type_name,
            source=source,
            data=event.to_json_dict(),
            id=id or str(uuid.uuid4()),
            time=time or datetime.now(UTC),
            subject=subject,
            extensions=dict(extensions or {}),
        )

    def with_extensions(self, **ext: str) -> Envelope:
        return replace(self, extensions={**self.extensions, **ext})

    def parse(self) -> Event:
        """Validate the data against the model registered for this type."""
        model: type[Event] = model_for(self.type)
        return model.model_validate(self.data)


def _format_time(t: datetime) -> str:
    if t.tzinfo is None:
        raise EnvelopeError("time", "must be timezone-aware")
    return t.isoformat()


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise EnvelopeError("time", "must be an RFC 3339 string")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError("time", f"not an RFC 3339 timestamp: {value!r}") from None
    if t.tzinfo is None:
        raise EnvelopeError("time", "must carry a timezone offset")
    return t


def to_binary(env: Envelope) -> tuple[dict[str, str], bytes]:
    """Binary mode: (headers, body). `Nats-Msg-Id` is the event id."""
    headers = {
        "ce-specversion": SPECVERSION,
        "ce-id": env.id,
        "ce-source": env.source,
        "ce-type": env.type,
        "ce-time": _format_time(env.time),
        "content-type": env.datacontenttype,
        MSG_ID_HEADER: env.id,
    }
    if env.subject is not None:
        headers["ce-subject"] = env.subject
    for key, value in env.extensions.items():
        if key in TRACE_HEADERS:
            headers[key] = value
        else:
            headers[f"ce-{key}"] = value
    return headers, orjson.dumps(env.data)


def to_structured(env: Envelope) -> bytes:
    """Structured mode: the whole event as one JSON document."""
    doc: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": env.id,
        "source": env.source,
        "type": env.type,
        "time": _format_time(env.time),
        "datacontenttype": env.datacontenttype,
        "data": env.data,
    }
    if env.subject is not None:
        doc["subject"] = env.subject
    for key, value in env.extensions.items():
        doc[key] = value
    return orjson.dumps(doc)


def _loads(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(what, f"not valid JSON ({exc})") from None


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


def from_binary(headers: Mapping[str, str], body: bytes) -> Envelope:
    return _from_binary(_lower(headers), body)


def _from_binary(h: dict[str, str], body: bytes) -> Envelope:
    """`from_binary` of headers already lower-cased."""
    attrs = {k[3:]: v for k, v in h.items() if k.startswith("ce-")}
    for name in _REQUIRED:
        if not attrs.get(name):
            raise EnvelopeError(name, f"missing ce-{name} header")
    if attrs["specversion"] != SPECVERSION:
        raise EnvelopeError("specversion", f"unsupported {attrs['specversion']!r}")
    ctype = h.get("content-type", JSON)
    data = _loads(body, "data") if ctype.startswith(JSON) or ctype.endswith("+json") else body
    ext = {k: v for k, v in attrs.items() if k not in _CORE}
    for name in TRACE_HEADERS:
        if name in h:
            ext[name] = h[name]
    return Envelope(
        type=attrs["type"],
        source=attrs["source"],
        id=attrs["id"],
        time=_parse_time(attrs["time"]) if "time" in attrs else datetime.now(UTC),
        subject=attrs.get("subject"),
        datacontenttype=ctype,
        data=data,
        extensions=ext,
    )


def control_characters(env: Envelope) -> EnvelopeError | None:
    """What is wrong when an attribute holds a control character (CloudEvents forbids them;
    U+0000 no database column takes). For input from outside gridloop: decode does not
    check, to keep the services' own events cheap to read."""
    # One search over all four (the common case), then which one it was.
    if _CONTROL.search(f"{env.id}{env.source}{env.type}{env.subject or ''}") is None:
        return None
    for name in ("id", "source", "type", "subject"):
        value = getattr(env, name)
        if isinstance(value, str) and _CONTROL.search(value):
            return EnvelopeError(name, "contains a control character (CloudEvents forbids them)")
    return None


def nul_in(data: Any, path: str = "data") -> str | None:
    """The path (`data.reporter.name`) of the first string in `data`, key or value, that
    holds U+0000: text no database column takes. None when there is none. (A key with U+0000
    is named with it replaced: the path itself is kept as text.)"""
    if isinstance(data, str):
        return path if "\x00" in data else None
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}"
            if "\x00" in where:
                return storable(where)
            if (found := nul_in(value, where)) is not None:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            if (found := nul_in(value, f"{path}.{i}")) is not None:
                return found
    return None


def storable(text: str) -> str:
    """`text` with U+0000 replaced (U+FFFD), so that it can be kept as text."""
    return text.replace("\x00", "\ufffd")


def _base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError("data_base64", "must be a base64 string")
    try:
        # RFC 4648 base64; line breaks some encoders add are allowed, nothing else.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("data_base64", f"not valid base64 ({exc})") from None


def from_structured(body: bytes, headers: Mapping[str, str] | None = None) -> Envelope:
    doc = _loads(body, "body")
    if not isinstance(doc, dict):
        raise EnvelopeError("body", "a structured CloudEvent must be a JSON object")
    for name in _REQUIRED:
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise EnvelopeError(name, "missing or not a string")
    if doc["specversion"] != SPECVERSION:
        raise EnvelopeError("specversion", f"unsupported {doc['specversion']!r}")
    ctype = doc.get("datacontenttype", JSON)
    if not isinstance(ctype, str):
        raise EnvelopeError("datacontenttype", "must be a string")
    if "data_base64" in doc:
        data: Any = _base64(doc["data_base64"])
        if ctype.startswith(JSON) or ctype.endswith("+json"):
            data = _loads(data, "data_base64")
    else:
        data = doc.get("data")
    subject = doc.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise EnvelopeError("subject", "must be a string")
    ext = {k: str(v) for k, v in doc.items() if k not in _CORE and k not in ("data", "data_base64")}
    for name, value in _lower(headers).items():
        if name in TRACE_HEADERS and name not in ext:
            ext[name] = value
    return Envelope(
        type=doc["type"],
        source=doc["source"],
        id=doc["id"],
        time=_parse_time(doc["time"]) if "time" in doc else datetime.now(UTC),
        subject=subject,
        datacontenttype=ctype,
        data=data,
        extensions=ext,
    )


def is_structured(headers: Mapping[str, str] | None) -> bool:
    return _structured(_lower(headers))


def _structured(h: Mapping[str, str]) -> bool:
    """`is_structured` of headers already lower-cased."""
    return h.get("content-type", "").startswith(STRUCTURED)


def decode(headers: Mapping[str, str] | None, body: bytes) -> Envelope:
    """Either mode, told apart by content-type (structured when there are no ce- headers)."""
    h = _lower(headers)
    try:
        if _structured(h) or (
            "ce-specversion" not in h and not any(k.startswith("ce-") for k in h)
        ):
            return from_structured(body, h)
        return _from_binary(h, body)
    except EnvelopeError:
        raise
    except (ValueError, TypeError, AttributeError) as exc:
        # Whatever else a malformed message trips over is still an answer, never a crash.
        raise EnvelopeError("body", f"not a valid CloudEvent ({exc})") from None


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as [{field, reason}] with dotted field paths under `data`."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        # Cross-field validators raise "<field>: <reason>"; put the field where it belongs.
        m = _NAMED.match(msg)
        if not loc and m:
            loc, msg = m.group(1), m.group(2)
        out.append({"field": f"data.{loc}" if loc else "data", "reason": msg})
    return out


_NAMED = re.compile(r"^(?:Value error, )?([a-z_][a-z0-9_.]*): (.+)$", re.S)
