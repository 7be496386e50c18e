"""Bodies decoded strictly and validation errors that can always be answered
(gridloop_runtime.inputs): pure, and through a small app with the services' handlers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from gridloop_contracts import Location
from gridloop_runtime.commands import install_refusal_handler
from gridloop_runtime.inputs import (
    MAX_DEPTH,
    BodyError,
    JSONRoute,
    check_routes,
    loads,
    public_errors,
)
from pydantic import BaseModel, ConfigDict, field_validator


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        (b'{"a": NaN}', ("a",), "must be a finite number, not NaN"),
        (b'{"a": [1, Infinity]}', ("a", 1), "not Infinity"),
        (b'{"a": -Infinity}', ("a",), "not -Infinity"),
        (b'{"a": {"b": 1e999}}', ("a", "b"), "not 1e999"),
        (b'{"a": ' + b"9" * 5000 + b"}", ("a",), "at most 4300 digits"),
        (b'{"a": "\\ud800"}', ("a",), "lone UTF-16 surrogate"),
        (b'["ok", "\\udfff"]', (1,), "lone UTF-16 surrogate"),
        (b'{"a": "x\\u0000y"}', ("a",), "NUL"),
        (b'{"\\ud800": 1}', (), "key '\\ud800' is not valid text"),
        (b'{"a": 1, "a": 2}', ("a",), "duplicate key 'a'"),
        (b'{"o": {"k": 1, "j": 2, "k": 3}}', ("o", "k"), "duplicate key 'k'"),
    ],
)
def test_values_json_should_not_carry_are_named_by_their_field(
    body: bytes, path: tuple[Any, ...], reason: str
) -> None:
    with pytest.raises(BodyError) as err:
        loads(body)
    assert err.value.path == path and reason in err.value.reason


@pytest.mark.parametrize(
    ("body", "reason", "position"),
    [
        (b'{"a": "\xed\xa0\x80"}', "not valid UTF-8: byte 0xed at position 7", 7),
        (b'{"a": "\xff"}', "not valid UTF-8: byte 0xff at position 7", 7),
        (b'{"a": 1,}', "not valid JSON", 8),
        (b"[" * 10_000 + b"]" * 10_000, f"nested deeper than {MAX_DEPTH} levels", MAX_DEPTH),
        # brackets inside strings are no nesting: the 33rd level opens at 19 + 5 * 31
        (b'{"s": "[[[[", "d": ' + b'{"a":' * 40 + b"1" + b"}" * 41, "nested deeper", 174),
    ],
)
def test_a_body_that_is_not_json_is_named_with_its_position(
    body: bytes, reason: str, position: int | None
) -> None:
    with pytest.raises(BodyError) as err:
        loads(body)
    assert reason in err.value.reason
    if position is not None:
        assert err.value.position == position


def test_good_json_decodes_as_json_does() -> None:
    doc = '{"a": [1, 2.5, -3e10, "中文", "\\ud83d\\ude00", true, null], "b": {"c": 1e-999}}'
    assert loads(doc.encode()) == json.loads(doc)
    assert loads(b"\xef\xbb\xbf[1]") == [1]  # a byte order mark is tolerated
    assert loads(b'{"k\\u0000": 1}') == {"k\x00": 1}  # keys are the model's to judge
    assert loads(b'{"x": ' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH) is not None


def test_validation_errors_are_answerable_whatever_they_hold() -> None:
    errors = [
        {
            "type": "greater_than_equal",
            "loc": ("body", "location", "\ud800"),
            "msg": "bad \ud800\x00",
            "input": float("nan"),
            "ctx": {"ge": -90, "error": ValueError("no"), "limit": float("inf")},
        }
    ]
    [out] = public_errors(errors)
    text = json.dumps(out, allow_nan=False, ensure_ascii=False).encode("utf-8")
    assert b"nan" not in text.lower() and "input" not in out
    assert out["field"] == "location.\ufffd" and out["ctx"] == {
        "ge": -90,
        "error": "no",
        "limit": "inf",
    }


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str
    location: Location | None = None

    @field_validator("description")
    @classmethod
    def _echo(cls, v: str) -> str:
        if v == "echo":
            raise ValueError("cannot take \x00 here")  # a message quoting what is not text
        return v


def app_with(router: APIRouter) -> httpx.AsyncClient:
    @router.post("/reports")
    async def report(body: Report) -> dict[str, str]:
        return {"description": body.description}

    app = FastAPI()
    install_refusal_handler(app)
    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_strict_route_answers_422_naming_the_field_and_keeps_serving() -> None:
    async with app_with(APIRouter(route_class=JSONRoute)) as http:
        for body in (
            b'{"description": "x", "location": {"lat": NaN, "lon": 1}}',
            b'{"description": "x", "location": {"lat": 1e999, "lon": 1}}',
            b'{"description": "x", "description": "y"}',
        ):
            r = await http.post(
                "/reports", content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code == 422, r.text
            assert r.json()["detail"][0]["field"] in ("location.lat", "description")
        r = await http.post("/reports", json={"description": "echo"})
        assert r.status_code == 422 and "\ufffd" in r.json()["detail"][0]["msg"]
        r = await http.post(
            "/reports", json={"description": "x", "location": {"lat": 91, "lon": 0}}
        )
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "location.lat"
        r = await http.post("/reports", json={"description": "fine"})
        assert r.status_code == 200 and r.json() == {"description": "fine"}


async def test_a_loose_route_is_found_when_the_app_is_built() -> None:
    loose = APIRouter()
    app_with(loose)
    with pytest.raises(TypeError, match=r"\['POST'\] /reports"):
        check_routes([loose])
    strict = APIRouter(route_class=JSONRoute)
    app_with(strict)
    no_body = APIRouter()

    @no_body.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {}

    check_routes([strict, no_body])
