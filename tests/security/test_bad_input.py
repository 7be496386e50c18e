"""Bad input against every service and the console as real processes: numbers JSON cannot
carry, text that is not text and dates off the calendar are answered 422 naming the field —
not a 500 that also dropped the keep-alive connection — and nothing unhandled is logged."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from gridloop_devkit.launcher import SERVICES, Stack
from gridloop_runtime.auth import ROLES, AuthSettings, issue_token

STACK_ENV = {"RATE_LIMIT_CLIENT_PER_S": "0", "RATE_LIMIT_PUBLIC_PER_S": "0"}
STACK_SERVICES = (*SERVICES, "console")
JSON = {"content-type": "application/json"}
NOT_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e999")
# Dates whose conversion to UTC, or a day's or a year's arithmetic on them, leaves the calendar.
OFF_CALENDAR = ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00")


@pytest.fixture(scope="module")
def everyone() -> dict[str, str]:
    """A token holding every role everywhere: no refusal of role or place comes first."""
    token = issue_token(AuthSettings(), user_id="admin", roles=ROLES, territory=["*"])
    return {"Authorization": f"Bearer {token}"}


class Door:
    """One keep-alive connection to a service: a refused request must leave it open."""

    def __init__(self, stack: Stack, service: str) -> None:
        url = urlsplit(stack.url(service))
        self.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
        self.conn.connect()
        self.sock = self.conn.sock

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        self.conn.request(method, path, body=body, headers={**JSON, **(headers or {})})
        r = self.conn.getresponse()
        data = r.read()
        assert not r.will_close, f"{method} {path}: the server dropped the connection"
        assert self.conn.sock is self.sock
        ctype = r.getheader("content-type") or ""
        return r.status, json.loads(data) if "json" in ctype else data

    def refused(
        self, method: str, path: str, body: str | bytes, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        status, answer = self.send(method, path, raw, headers)
        assert status == 422, (method, path, body, status, answer)
        first: dict[str, Any] = answer["detail"][0]
        status, _ = self.send("GET", "/healthz")
        assert status == 200
        return first


@pytest.fixture
def doors(stack: Stack) -> Iterator[dict[str, Door]]:
    opened = {s: Door(stack, s) for s in STACK_SERVICES}
    yield opened
    for door in opened.values():
        door.conn.close()


def logged_errors(stack: Stack) -> list[str]:
    found = []
    for service in STACK_SERVICES:
        text = (Path(stack.state_dir) / f"{service}.log").read_text(errors="replace")
        for line in text.splitlines():
            if "Traceback" in line or "Exception in ASGI" in line or '"level": "error"' in line:
                found.append(f"{service}: {line[:300]}")
    return found


def test_the_reported_crashes_are_422_naming_the_field(
    stack: Stack, doors: dict[str, Door], everyone: dict[str, str]
) -> None:
    """Item 6, as found: intake POST /reports, verify's verification, dispatch's supervision
    and the console's anonymous login answered 500 to NaN, Infinity, 1e999 and lone
    surrogates, and dropped the connection."""
    intake, verify, dispatch, console = (
        doors[s] for s in ("intake", "verify", "dispatch", "console")
    )
    for n in NOT_NUMBERS:
        where = f'{{"lat": {n}, "lon": 116.4}}'
        e = intake.refused(
            "POST", "/reports", f'{{"description": "x", "location": {where}}}', everyone
        )
        assert e["field"] == "location.lat" and n in e["msg"]
        on_site = f'{{"passed": true, "position": {where}}}'
        e = verify.refused("POST", "/tasks/T-1/verification", on_site, everyone)
        assert e["field"] == "position.lat"
        supervise = f'{{"reason": "x", "command_id": {n}}}'
        e = dispatch.refused("POST", "/cases/C-1/supervision", supervise, everyone)
        assert e["field"] == "command_id"
        e = console.refused("POST", "/api/login", f'{{"user_id": {n}}}')
        assert e["field"] == "user_id"
    # a lone surrogate escaped, as raw bytes (ED A0 80), and a low one with text after it
    for text in ('"\\ud800"', '"\ud800"', '"\\udfff tail"'):
        report = f'{{"description": {text}, "location": {{"lat": 39.9, "lon": 116.4}}}}'
        assert intake.refused("POST", "/reports", report, everyone)["type"] == "json_invalid"
        on_site = f'{{"passed": true, "notes": {text}}}'
        verify.refused("POST", "/tasks/T-1/verification", on_site, everyone)
        dispatch.refused("POST", "/cases/C-1/supervision", f'{{"reason": {text}}}', everyone)
        console.refused("POST", "/api/login", f'{{"user_id": {text}, "password": "x"}}')
    # a key no parser agrees on, nesting no contract has, bytes that are not UTF-8
    e = console.refused("POST", "/api/login", '{"user_id": "op-01", "user_id": "admin"}')
    assert e["field"] == "user_id" and "duplicate key" in e["msg"]
    e = console.refused("POST", "/api/login", b"[" * 10_000 + b"]" * 10_000)
    assert "nested deeper" in e["msg"] and e["ctx"]["position"] == 32
    e = dispatch.refused("POST", "/cases/C-1/supervision", b'{"reason": "\xff\xfe"}', everyone)
    assert "not valid UTF-8" in e["msg"] and e["ctx"]["position"] == 12
    assert not logged_errors(stack)


def test_dates_off_the_calendar_are_422_naming_the_field_in_every_service(
    stack: Stack, doors: dict[str, Door], everyone: dict[str, str]
) -> None:
    """Item 7 and its siblings: every date or time a caller may give, in body or query."""
    for at in OFF_CALENDAR:
        for service in SERVICES:
            e = doors[service].refused(
                "POST",
                "/admin/outbox/republish",
                json.dumps({"since": at, "until": "2026-11-24T00:00:00Z"}),
                everyone,
            )
            assert e["field"] == "since", service
            status, answer = doors[service].send("GET", f"/admin/audit?until={at}", None, everyone)
            assert status == 422 and answer["detail"][0]["field"] == "query.until"
        checks = [
            ("intake", "GET", f"/cases?from={at}", None, "query.from"),
            (
                "intake",
                "POST",
                "/reports",
                {"description": "x", "address": "a", "reported_at": at},
                "reported_at",
            ),
            (
                "dispatch",
                "POST",
                "/cases/C-1/dispatch",
                {"dept": "water", "deadline": at},
                "deadline",
            ),
            (
                "dispatch",
                "POST",
                "/extensions/1/decision",
                {"granted": True, "new_deadline": at},
                "new_deadline",
            ),
            (
                "handling",
                "POST",
                "/departments/water/cases/C-1/extension",
                {"reason": "more time", "proposed_deadline": at},
                "proposed_deadline",
            ),
            (
                "handling",
                "POST",
                "/departments/water/cases/C-1/result",
                {"result": "done", "completed_at": at},
                "completed_at",
            ),
            (
                "verify",
                "POST",
                "/absences",
                {"user_id": "sup-001", "starts_at": at, "ends_at": at},
                "starts_at",
            ),
        ]
        for service, method, path, body, field in checks:
            door = doors[service]
            if body is None:
                status, answer = door.send(method, path.replace("+", "%2B"), None, everyone)
                assert status == 422, (service, path, answer)
                first = answer["detail"][0]
            else:
                first = door.refused(method, path, json.dumps(body), everyone)
            assert first["field"] == field, (service, path, first)
            assert "between 1970-01-01 and 2199-12-31" in first["msg"]
    scoring = doors["scoring"]
    for day in ("9999-12-31", "0001-01-01"):
        for path in (
            f"/measures?subject_kind=department&period=year&date={day}",
            f"/rankings?rule_set=departments&period=year&date={day}",
            f"/drilldown?subject_kind=department&subject=water&measure=handled&date={day}",
        ):
            status, answer = scoring.send("GET", path, None, everyone)
            assert status == 422 and answer["detail"][0]["field"] == "query.date", (path, answer)
        e = scoring.refused(
            "POST", "/publish", json.dumps({"period": "year", "date": day}), everyone
        )
        assert e["field"] == "date"
    # Open311, anonymous, in its own error shape
    intake = doors["intake"]
    for name, at in (("end_date", "0001-01-01T00:00:00Z"), ("start_date", OFF_CALENDAR[0])):
        status, answer = intake.send(
            "GET", f"/open311/v2/requests.json?{name}={at.replace('+', '%2B')}"
        )
        assert status == 422 and answer[0]["description"].startswith(f"{name}: must be between")
    assert not logged_errors(stack)
