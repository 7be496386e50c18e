"""HTTP input at the door of every service: JSON bodies decoded strictly, and validation
errors answered in a form that can always be sent back.

A request body must be UTF-8 JSON that every consumer reads the same way: no NaN or
Infinity (nor a number too large for a double, which Python would read as infinity), no lone
UTF-16 surrogate (it is not text: PostgreSQL, the bus and JSON encoders refuse it), no NUL
in a string value (PostgreSQL text cannot hold it), no key twice in one object (parsers
disagree on which one wins), and at most `MAX_DEPTH` levels of nesting. Anything else is
refused with 422 naming the field, or the position in the body for what has no field.

Routers take this decoding with `APIRouter(route_class=JSONRoute)`; `check_routes` makes
sure every route with a body does. Validation errors go back through `public_errors`: the
input is not echoed, and every text is made encodable."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

MAX_DEPTH = 32  # no contract nests deeper than a handful of levels
MAX_DIGITS = 4300  # Python's own limit on reading an integer
_REPLACEMENT = "\ufffd"
# Not encodable (lone surrogates) or not storable (NUL) text.
_UNSENDABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Strings and brackets of a JSON text, to find where nesting goes too deep.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)

Loc = tuple[str | int, ...]


class BodyError(json.JSONDecodeError):
    """A request body that is not acceptable JSON: why, and where (the path of the field, or
    the position in the body when there is no field to name)."""

    def __init__(
        self, reason: str, *, position: int | None = None, path: Sequence[str | int] = ()
    ) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason
        self.position = position
        self.path: Loc = tuple(path)

    def error(self) -> dict[str, Any]:
        """As one error of a RequestValidationError."""
        err: dict[str, Any] = {"type": "json_invalid", "loc": ("body", *self.path)}
        err["msg"] = self.reason
        if self.position is not None:
            err["ctx"] = {"position": self.position}
        return err

    def __str__(self) -> str:
        where = ".".join(str(p) for p in self.path)
        return f"{where}: {self.reason}" if where else self.reason


class _BadNumber:
    """What NaN, Infinity, an overflowing number or an endless integer decodes to, until the
    walk names its field."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Duplicated(dict[str, Any]):
    """An object that had a key twice (the first repeated key kept for the error)."""

    duplicate: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Duplicated(obj)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.duplicate = key
            break
        seen.add(key)
    return marked


def _float(text: str) -> float | _BadNumber:
    value = float(text)
    return value if math.isfinite(value) else _BadNumber(f"must be a finite number, not {text}")


def _constant(name: str) -> _BadNumber:
    return _BadNumber(f"must be a finite number, not {name}")


def _int(text: str) -> int | _BadNumber:
    if len(text.lstrip("-")) > MAX_DIGITS:
        return _BadNumber(f"must have at most {MAX_DIGITS} digits, not {len(text)}")
    return int(text)


def _deep_at(text: str, limit: int) -> int | None:
    """The position where the nesting of `text` passes `limit` levels, if it does."""
    depth = 0
    for m in _TOKENS.finditer(text):
        t = m.group()
        if t in ("[", "{"):
            depth += 1
            if depth > limit:
                return m.start()
        elif t in ("]", "}"):
            depth -= 1
    return None


def _printable_key(key: str) -> str:
    """A key as it can be named back: NUL and lone surrogates as escapes (`\\ud800`)."""
    return key.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _check(doc: Any, text: str, max_depth: int) -> None:
    """Walk the decoded document: name the first value that is not acceptable."""
    stack: list[tuple[Any, Loc]] = [(doc, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise BodyError("must not contain NUL characters", path=path)
            if not value.isascii() and _SURROGATE.search(value):
                raise BodyError("contains a lone UTF-16 surrogate, which is not text", path=path)
        elif isinstance(value, _BadNumber):
            raise BodyError(value.reason, path=path)
        elif isinstance(value, dict | list):
            if len(path) >= max_depth:
                raise BodyError(
                    f"nested deeper than {max_depth} levels",
                    position=_deep_at(text, max_depth),
                    path=path,
                )
            if isinstance(value, list):
                stack.extend((v, (*path, i)) for i, v in enumerate(value))
                continue
            if isinstance(value, _Duplicated):
                twice = _printable_key(value.duplicate)
                raise BodyError(f"duplicate key '{twice}': send each key once", path=(*path, twice))
            for k, v in value.items():
                # (a NUL in a key is the model's to judge: no key is stored as sent)
                if not k.isascii() and _SURROGATE.search(k):
                    raise BodyError(
                        f"key '{_printable_key(k)}' is not valid text (a lone UTF-16 surrogate)",
                        path=path,
                    )
                stack.append((v, (*path, k)))


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a JSON body strictly (see the module's docstring); BodyError says what is
    wrong and where."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BodyError(
                f"the body is not valid UTF-8: byte {raw[exc.start]:#04x} at position "
                f"{exc.start} ({exc.reason}; positions count bytes)",
                position=exc.start,
            ) from None
    else:
        text = raw
    text = text.removeprefix("\ufeff")  # a byte order mark is tolerated (RFC 8259 §8.1)
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_object,
            parse_float=_float,
            parse_int=_int,
            parse_constant=_constant,
        )
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(character {exc.pos})",
            position=exc.pos,
        ) from None
    except RecursionError:
        at = _deep_at(text, max_depth)
        raise BodyError(
            f"the body is nested deeper than {max_depth} levels"
            + (f" (from character {at})" if at is not None else ""),
            position=at,
        ) from None
    _check(doc, text, max_depth)
    return doc


# -- FastAPI -----------------------------------------------------------------------------
class StrictJSONRequest(Request):
    """A request whose `json()` is `loads`: what FastAPI validates a body parameter from."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """A route whose JSON body is decoded by `loads`; a refused body is a validation error
    naming the field (or the position), answered 422 like any other."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            try:
                return await handler(
                    StrictJSONRequest(request.scope, request.receive, request._send)
                )
            except RequestValidationError as exc:
                cause = exc.__cause__
                if isinstance(cause, BodyError):
                    raise RequestValidationError([cause.error()]) from cause
                raise

        return strict


def check_routes(routers: Iterable[APIRouter]) -> None:
    """Every route that takes a body decodes it strictly: a router made without
    `route_class=JSONRoute` is a mistake found when the app is built, not in production."""
    loose = [
        f"{sorted(r.methods or ())} {r.path}"
        for router in routers
        for r in router.routes
        if isinstance(r, APIRoute) and r.body_field is not None and not isinstance(r, JSONRoute)
    ]
    if loose:
        raise TypeError(
            "routes taking a JSON body without gridloop_runtime.inputs.JSONRoute "
            f"(APIRouter(route_class=JSONRoute)): {', '.join(loose)}"
        )


# -- validation errors -------------------------------------------------------------------
def printable(text: str, limit: int = 500) -> str:
    """Text safe to answer and to store: lone surrogates and NUL replaced, length capped."""
    text = _UNSENDABLE.sub(_REPLACEMENT, text)
    return text if len(text) <= limit else text[:limit] + "…"


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return printable(str(value), 200)


def public_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors as answered: type, loc, msg, `field` (the dotted path without the
    `body` prefix) and the constraint's context; never the input (it may be anything the
    sender made up: not a number JSON allows, not text, or just large)."""
    out = []
    for e in errors:
        loc = [p if isinstance(p, int) else printable(str(p), 100) for p in e.get("loc", ())]
        named = [str(p) for p in loc[1:]] if loc[:1] == ["body"] else [str(p) for p in loc]
        err: dict[str, Any] = {
            "type": printable(str(e.get("type", "invalid")), 100),
            "loc": loc,
            "msg": printable(str(e.get("msg", "invalid request"))),
            "field": ".".join(named) or "body",
        }
        ctx = e.get("ctx")
        if isinstance(ctx, Mapping) and ctx:
            err["ctx"] = {printable(str(k), 50): _plain(v) for k, v in ctx.items()}
        out.append(err)
    return out
