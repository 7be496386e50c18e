"""Scoring against a real nats-server and PostgreSQL: case histories are published as the
other services would (with redeliveries and out of order), the tests read the REST API and
watch what scoring publishes; rebuild replays the stream and must agree with the live
projection, also over a few thousand generated events delivered out of order and twice."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml
from gridloop_city import load_city
from gridloop_city.versions import digest, release
from gridloop_contracts import Actor, Envelope, to_binary
from gridloop_contracts import cases as ev
from gridloop_contracts.scores import ScorePublishedV1
from gridloop_devkit.testing import (
    EventTap,
    consumed_past,
    http_client,
    service_running,
    settings_for,
    wait_for,
)
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.livecity import announce
from gridloop_runtime.service import Runtime
from gridloop_scoring import replay
from gridloop_scoring.bootstrap import definition
from gridloop_scoring.context import fold_context
from gridloop_scoring.settings import ScoringSettings
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from pydantic import ValidationError

# Monday 23 November 2026, 10:00 in Beijing.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DAY = "2026-11-23"
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"
# Demo cells (supervisors.csv): the first is sup-001's (backup sup-002), in 东华门街道; the
# second is sup-020's, in 景山街道.
CELL_A = ("1101010010010001", "110101001001", "110101001")
CELL_B = ("1101010020010001", "110101002001", "110101002")
OPERATOR = Actor(id="op-01", role="operator")
HOUR = timedelta(hours=1)
EVALUATOR, ADMIN, SUPERVISOR = "eval-01", "admin", "sup-001"


def dims(case_id: str, cell: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "category_code": "E0102",
        "cell_code": cell[0],
        "community_code": cell[1],
        "subdistrict_code": cell[2],
    }


def history(
    case_id: str,
    cell: tuple[str, str, str],
    start: datetime,
    *,
    dept: str = "sanitation",
    handled_late: bool = False,
    rework: bool = False,
    until: str = "rated",
    patrol_by: str | None = None,
) -> list[ev.CaseEvent]:
    """A case's lifecycle as the five services would emit it, cut after `until`."""
    d = dims(case_id, cell)
    task = {"dept": dept, "task_id": f"T-{case_id}", "deadline": start + 6 * HOUR}
    out: list[ev.CaseEvent] = [
        ev.CaseReported(
            **d,
            occurred_at=start,
            report_id=f"R-{case_id}",
            channel="patrol" if patrol_by else "hotline",
            source="patrol-app" if patrol_by else "hotline-12345",
            reporter_user_id=patrol_by,
            description="垃圾堆积",
            reported_at=start,
        ),
        ev.CaseAccepted(**d, occurred_at=start + 0.5 * HOUR, actor=OPERATOR, description="垃圾"),
        ev.CaseDispatched(**d, **task, occurred_at=start + HOUR),
        ev.CaseSigned(**d, **task, occurred_at=start + 1.5 * HOUR, on_time=True),
    ]
    if until == "signed":
        return out
    handled_at = start + (8 if handled_late else 3) * HOUR
    sup = "sup-001" if cell == CELL_A else "sup-020"
    out.append(
        ev.CaseHandled(
            **d,
            **task,
            occurred_at=handled_at,
            result="已清运",
            completed_at=handled_at,
            on_time=not handled_late,
        )
    )
    t = handled_at
    if rework:
        out += [
            ev.CaseVerified(**d, **task, occurred_at=t + HOUR, passed=False, supervisor_id=sup),
            ev.CaseReworked(**d, **task, occurred_at=t + HOUR, count=1, reason="仍有垃圾"),
            ev.CaseHandled(
                **d, **task, occurred_at=t + 2 * HOUR, result="已清运", completed_at=t + 2 * HOUR
            ),
        ]
        t += 2 * HOUR
    out += [
        ev.CaseVerified(
            **d, **task, occurred_at=t + HOUR, passed=True, supervisor_id=sup, on_time=True
        ),
        ev.CaseClosed(**d, **task, occurred_at=t + HOUR, closed_by=sup, on_time=not handled_late),
    ]
    if until == "closed":
        return out
    out.append(ev.CaseRated(**d, occurred_at=t + 5 * HOUR, rating="satisfied"))
    return out


class Harness:
    def __init__(self, rt: Runtime, clock: FakeClock, js: JetStreamContext) -> None:
        self.rt = rt
        self.clock = clock
        self.js = js
        self.http: httpx.AsyncClient | None = None
        self.published = 0

    async def publish(
        self, event: ev.CaseEvent, *, env: Envelope | None = None, msg_id: str | None = None
    ) -> Envelope:
        """Put an event on CASES as its service would; `msg_id` defeats JetStream's dedupe
        (a redelivery that only the consumer can catch)."""
        env = env or Envelope.of(
            event, source="/gridloop/test", subject=event.case_id, time=self.clock.now()
        )
        headers, body = to_binary(env)
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        ack = await self.js.publish(f"case.{event.subject_token}", body, headers=headers)
        if not ack.duplicate:
            self.published += 1
        return env

    async def get(self, path: str, user: str = EVALUATOR, **params: Any) -> Any:
        assert self.http is not None
        r = await self.http.get(path, params=params, headers={"X-User": user})
        assert r.status_code == 200, r.text
        return r.json() if "json" in r.headers["content-type"] else r.text

    async def post(self, path: str, user: str, json: Any = None, **params: Any) -> httpx.Response:
        assert self.http is not None
        return await self.http.post(path, json=json, params=params, headers={"X-User": user})

    async def measures(self, kind: str, **params: Any) -> dict[str, dict[str, Any]]:
        body = await self.get("/measures", subject_kind=kind, **params)
        return {r["subject_code"]: r["measures"] for r in body["rows"]}

    async def settled(self) -> None:
        """Every published event consumed and folded: the consumer has acknowledged the
        stream's last event, and nothing is dirty. (Not the consumer's pending count: the
        server updates it apart from the publish, so just after one it can still read 0.)"""
        await consumed_past(self.js, "CASES", "scoring-cases", "case.>")

        async def clean() -> bool:
            assert self.rt.pool is not None
            async with self.rt.pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT count(*) = 0 FROM dirty_cases"))

        await wait_for(clean, timeout=15, what="scoring to fold everything")


@asynccontextmanager
async def started(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> AsyncIterator[Harness]:
    monkeypatch.setenv("AUTH_MODE", "dev")
    values: dict[str, Any] = {
        "city_data_dir": str(DEMO_CITY),
        "scoring_publish_periods": "day",
        "scoring_publish_grace_s": 0,
        "scoring_fold_poll_s": 0.1,
        "consumer_batch": 64,
        **extra,
    }
    settings = settings_for("scoring", database_url, nats_url, ScoringSettings, **values)
    assert isinstance(settings, ScoringSettings)
    clock = FakeClock(T0)
    async with service_running(settings, definition, nats_url, clock=clock) as (rt, nc):
        h = Harness(rt, clock, nc.jetstream())
        async with http_client(rt) as client:
            h.http = client
            yield h


@pytest.fixture
async def scoring(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    async with started(database_url, nats_url, monkeypatch) as h:
        yield h


# -- live equals replay ------------------------------------------------------------------
async def test_live_scores_equal_replayed_scores_after_redeliveries_and_reordering(
    scoring: Harness,
) -> None:
    h = scoring
    rng = random.Random(42)
    cases = {
        # on time, reported by the cell's own supervisor
        "C-A": history("C-A", CELL_A, T0, patrol_by="sup-001"),
        # late (hotline): handled and closed late
        "C-B": history("C-B", CELL_A, T0 + HOUR, handled_late=True, until="closed"),
        # water, reworked once, then on time
        "C-C": history("C-C", CELL_B, T0 + 2 * HOUR, dept="water", rework=True),
        # dispatched and signed, not handled yet
        "C-D": history("C-D", CELL_A, T0 + 3 * HOUR, until="signed"),
        # a case of October arriving late: it belongs to October
        "C-OCT": history("C-OCT", CELL_A, T0 - timedelta(days=30), until="closed"),
    }
    sent: list[tuple[ev.CaseEvent, Envelope]] = []
    for case_id, events in cases.items():
        if case_id in ("C-B", "C-C"):
            events = list(reversed(events)) if case_id == "C-B" else rng.sample(events, len(events))
        for e in events:
            sent.append((e, await h.publish(e)))
    # Redeliveries: the same envelopes again, some with the same message id (JetStream drops
    # them) and some with a new one (only scoring's inbox and fact keys can catch them).
    for i, (e, env) in enumerate(rng.sample(sent, 8)):
        await h.publish(e, env=env)
        await h.publish(e, env=env, msg_id=f"again-{i}")
    await h.settled()

    month = {"period": "month", "date": DAY}
    live_dept = await h.measures("department", **month)
    # By hand: sanitation holds C-A, C-B, C-D; handled C-A (on time) and C-B (late).
    san = live_dept["sanitation"]
    assert (san["dispatched"], san["to_handle"], san["handled"], san["handled_on_time"]) == (
        3,
        3,
        2,
        1,
    )
    assert san["overdue"] == 1 and san["signed_on_time"] == 3
    assert san["handling_rate"] == pytest.approx(2 / 3) and san["on_time_rate"] == 0.5
    water = live_dept["water"]
    assert (water["handled"], water["handled_on_time"], water["reworked"]) == (1, 1, 1)
    assert water["rework_rate"] == 1.0
    areas = await h.measures("area", level="subdistrict", **month)
    # 东华门: C-A, C-B, C-D accepted; C-A and C-B closed, C-A on time. C-OCT is October's.
    assert (areas["110101001"]["accepted"], areas["110101001"]["closed"]) == (3, 2)
    assert areas["110101001"]["on_time_closure_rate"] == 0.5
    assert areas["110101002"]["failed_verifications"] == 1
    october = await h.measures("area", level="subdistrict", period="month", date="2026-10-20")
    assert october["110101001"]["closed"] == 1
    people = await h.measures("person", **month)
    assert people["sup-001"]["valid_reports"] == 1
    assert people["sup-001"]["missed"] == 2  # C-B and C-D came from the hotline
    assert people["op-01"]["decisions"] == 4

    live_rankings = {
        rs: await h.get("/rankings", rule_set=rs, **month) for rs in ("department", "jinhua")
    }
    # 东华门's Jinhua score by hand: on-time closure 50% is 20 points short of 70% → 30;
    # closure 2/3 is 23.3 points short of 90% → 0 (never below); satisfaction 1/1 → 30.
    jinhua = {r["subject_code"]: r for r in live_rankings["jinhua"]["rows"]}
    assert jinhua["110101001"]["score"] == 60.0 and jinhua["110101001"]["grade"] == "较差"
    # 景山: all on time, closed; one failed verification costs 0.2.
    assert jinhua["110101002"]["score"] == 99.8 and jinhua["110101002"]["rank"] == 1

    # The drill-down returns exactly the cases counted.
    drill = await h.get(
        "/drilldown",
        subject_kind="department",
        subject="sanitation",
        measure="on_time_rate",
        **month,
    )
    parts = {p["measure"]: p for p in drill["parts"]}
    assert parts["handled_on_time"]["case_ids"] == ["C-A"]
    assert parts["handled"]["case_ids"] == ["C-A", "C-B"]
    assert drill["value"] == 0.5
    missed = await h.get(
        "/drilldown", subject_kind="person", subject="sup-001", measure="missed", **month
    )
    assert missed["parts"][0]["case_ids"] == ["C-B", "C-D"] and missed["value"] == 2

    # Replay the stream into a fresh projection: the same numbers.
    r = await h.post("/admin/rebuild", ADMIN)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["identical"] is True, report
    assert report["events_read"] == h.published
    assert report["duplicates"] == 8  # the redeliveries that reached the stream
    assert report["facts"] == sum(len(v) for v in cases.values())
    assert report["applied"] is False
    r = await h.post("/admin/rebuild", ADMIN, apply="true")
    assert r.json()["applied"] is True and r.json()["identical"] is True
    assert await h.measures("department", **month) == live_dept
    for rs, live in live_rankings.items():
        assert await h.get("/rankings", rule_set=rs, **month) == live
    # … and the live projection goes on after the swap.
    await h.publish(
        ev.CaseHandled(
            **dims("C-D", CELL_A),
            occurred_at=T0 + 5 * HOUR,
            dept="sanitation",
            task_id="T-C-D",
            result="ok",
            completed_at=T0 + 5 * HOUR,
            on_time=True,
        )
    )
    await h.settled()
    assert (await h.measures("department", **month))["sanitation"]["handled"] == 3


# -- publishing at period end -------------------------------------------------------------
async def test_scores_are_published_when_the_day_ends(scoring: Harness) -> None:
    h = scoring
    scores = await EventTap(h.js, ("SCORES", "score.published")).open()
    for e in history("C-P", CELL_A, T0):
        await h.publish(e)
    for e in history("C-Q", CELL_B, T0, handled_late=True, until="closed"):
        await h.publish(e)
    await h.settled()

    async def fetch(n: int) -> list[Envelope]:
        """At least `n` more score.published since the last call; all of them."""
        before = len(scores.seen)
        return (await scores.wait(None, before + n))[before:]

    # Nothing before the day is over.
    assert (
        await h.js.stream_info("SCORES") and (await h.js.stream_info("SCORES")).state.messages == 0
    )
    # 24 November 00:00 in Beijing is 23 November 16:00 UTC.
    h.clock.set(datetime(2026, 11, 23, 16, 0, 1, tzinfo=UTC))
    # One per rule set and level: department; jinhua at sub-district and community.
    got = await fetch(3)
    events = [ScorePublishedV1.model_validate(e.data) for e in got]
    by = {(e.rule_set, e.subject_level): e for e in events}
    assert set(by) == {("department", None), ("jinhua", "subdistrict"), ("jinhua", "community")}
    dept = by[("department", None)]
    assert dept.period_kind == "day" and dept.period_start == datetime(
        2026, 11, 23, tzinfo=UTC
    ) - timedelta(hours=8)
    assert [r.subject_code for r in dept.rows] == ["sanitation"]
    assert dept.rows[0].measures["handled"] == 2 and dept.rows[0].measures["on_time_rate"] == 0.5
    subs = {r.subject_code: r for r in by[("jinhua", "subdistrict")].rows}
    assert subs["110101001"].rank == 1 and subs["110101001"].subject_name == "东华门街道"
    assert subs["110101002"].score < subs["110101001"].score
    pubs = await h.get("/publications")
    assert len(pubs["rows"]) == 3
    # The next day's timer is armed: its end publishes again (nothing happened: no rows).
    h.clock.set(datetime(2026, 11, 24, 16, 0, 1, tzinfo=UTC))
    nxt = await fetch(3)
    assert {ScorePublishedV1.model_validate(e.data).period_start.isoformat() for e in nxt} == {
        "2026-11-24T00:00:00+08:00"
    }
    assert all(not e.data["rows"] for e in nxt)


# -- the API's edges ----------------------------------------------------------------------
async def test_api_refusals_csv_preview_and_people_flags(scoring: Harness) -> None:
    h = scoring
    assert h.http is not None
    for e in history("C-X", CELL_A, T0, handled_late=True, until="closed"):
        await h.publish(e)
    # sup-001 lets five verification tasks run over in a year: more than 4 → flagged.
    for i in range(5):
        await h.publish(
            ev.CaseOverdue(
                **dims(f"C-V{i}", CELL_A),
                occurred_at=T0 + i * HOUR,
                stage="verification",
                supervisor_id="sup-001",
            )
        )
    await h.settled()

    r = await h.http.get(
        "/measures",
        params={"subject_kind": "area", "period": "fortnight"},
        headers={"X-User": EVALUATOR},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "period"
    r = await h.http.get("/rankings", params={"rule_set": "nope"}, headers={"X-User": EVALUATOR})
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "rule_set"
    r = await h.http.get("/rankings", params={"rule_set": "jinhua"})
    assert r.status_code == 401
    r = await h.http.get(
        "/drilldown",
        params={"subject_kind": "area", "subject": "110101001", "measure": "speed"},
        headers={"X-User": EVALUATOR},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "measure"

    csv_text = await h.get("/rankings.csv", rule_set="jinhua", period="month", date=DAY)
    lines = csv_text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("period_start,rank,subject_code,subject_name,score,grade,")
    assert lines[1].split(",")[:6] == ["2026-11-01", "1", "110101001", "东华门街道", "50.0", "差"]
    measures_csv = await h.get("/measures.csv", subject_kind="department", period="day", date=DAY)
    header, row = measures_csv.lstrip("\ufeff").splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["overdue"] == "1.0"

    # By hand: the one case closed late: on-time closure 0% is 70 points short of 70% → 0;
    # closure 100% → 20; no ratings → the full 30: 50, 差 (above).
    # A rule change applied to history: with on-time closure required at 0%, it earns 50.
    rules = await h.get("/rule-sets")
    jinhua = next(rs for rs in rules["rule_sets"] if rs["code"] == "jinhua")
    jinhua["rules"][0].update(at_least=0.0)
    body = {"rule_set": jinhua, "period": "month", "date": DAY}
    r = await h.post("/rankings/preview", SUPERVISOR, json=body)
    assert r.status_code == 403
    r = await h.post("/rankings/preview", EVALUATOR, json=body)
    assert r.status_code == 200, r.text
    assert [(x["subject_code"], x["score"], x["grade"]) for x in r.json()["rows"]] == [
        ("110101001", 100.0, "优")
    ]
    # … while the configured rules are unchanged.
    configured = await h.get("/rankings", rule_set="jinhua", period="month", date=DAY)
    assert configured["rows"][0]["score"] == 50.0
    jinhua["rules"][0]["measure"] = "speed"
    r = await h.post("/rankings/preview", EVALUATOR, json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "rule_set.rules[0].measure"

    flags = await h.get("/people/flags", year=2026, flagged_only="true")
    assert [(p["person"], p["missed_first_responses"], p["flags"]) for p in flags["rows"]] == [
        ("sup-001", 5, ["missed_first_responses"])
    ]
    # personal records: a supervisor sees their own row only, anyone else none of sup-001's
    everyone = await h.get("/people/flags", year=2026)
    assert [p["person"] for p in everyone["rows"]] == [SUPERVISOR]
    own = await h.get("/people/flags", SUPERVISOR, year=2026)
    assert [p["person"] for p in own["rows"]] == [SUPERVISOR]
    for other in ("sup-002", "disp-01"):
        assert (await h.get("/people/flags", other, year=2026))["rows"] == []

    r = await h.post("/publish", SUPERVISOR, json={"period": "month", "date": DAY})
    assert r.status_code == 403
    r = await h.post(
        "/publish", EVALUATOR, json={"period": "month", "date": DAY, "command_id": "pub-1"}
    )
    assert r.status_code == 200 and len(r.json()["published"]) == 3
    again = await h.post(
        "/publish", EVALUATOR, json={"period": "month", "date": DAY, "command_id": "pub-1"}
    )
    assert again.json() == r.json()


async def test_the_cases_behind_a_number_are_for_evaluators_and_the_unit_itself(
    scoring: Harness,
) -> None:
    """Drill-downs name cases: evaluators and admins read any, a department its own, a person
    their own, a grid head the areas within their territory; anyone else is refused and the
    attempt audited. Per-person measures are personal like the flags."""
    h = scoring
    assert h.http is not None
    for e in history("C-Y", CELL_A, T0, patrol_by="sup-001"):
        await h.publish(e)
    await h.settled()
    month = {"period": "month", "date": DAY}

    async def drill(user: str, kind: str, subject: str, measure: str, **kw: str) -> int:
        assert h.http is not None
        params = {"subject_kind": kind, "subject": subject, "measure": measure, **month, **kw}
        r = await h.http.get("/drilldown", params=params, headers={"X-User": user})
        csv = await h.http.get("/drilldown.csv", params=params, headers={"X-User": user})
        assert csv.status_code == r.status_code, (user, kind, subject, csv.text)
        if r.status_code == 200:
            assert "C-Y" in r.text and "C-Y" in csv.text
        else:
            assert "C-Y" not in r.text and r.json()["detail"][0]["field"] == "subject"
        return r.status_code

    cell, _, subdistrict = CELL_A
    allowed = [
        (EVALUATOR, "department", "sanitation", "handled"),
        (ADMIN, "area", subdistrict, "closed"),
        ("sanitation-ops", "department", "sanitation", "handled"),
        (SUPERVISOR, "person", SUPERVISOR, "valid_reports"),
        ("gh-0010010001", "area", cell, "closed"),
    ]
    for user, kind, subject, measure in allowed:
        level = {"level": "cell"} if subject == cell else {}
        assert await drill(user, kind, subject, measure, **level) == 200, (user, kind, subject)
    refused = [
        ("water-ops", "department", "sanitation", "handled"),  # another department
        ("disp-01", "department", "sanitation", "handled"),  # not the unit
        (SUPERVISOR, "department", "sanitation", "handled"),
        ("sup-002", "person", SUPERVISOR, "valid_reports"),  # another person
        ("gh-0010010001", "area", subdistrict, "closed"),  # beyond the head's cells
        ("gh-0020010001", "area", cell, "closed"),  # another head's cell
        ("sanitation-ops", "area", cell, "closed"),
    ]
    for user, kind, subject, measure in refused:
        level = {"level": "cell"} if subject == cell else {}
        assert await drill(user, kind, subject, measure, **level) == 403, (user, kind, subject)

    # per-person measures: evaluators see everyone's, a person only their own
    assert "sup-001" in await h.measures("person", **month)
    mine = await h.get("/measures", SUPERVISOR, subject_kind="person", **month)
    assert [r["subject_code"] for r in mine["rows"]] == [SUPERVISOR]
    theirs = await h.get("/measures", "sup-002", subject_kind="person", **month)
    assert theirs["rows"] == []
    r = await h.http.get(
        "/measures",
        params={"subject_kind": "person", "subject": SUPERVISOR, **month},
        headers={"X-User": "sup-002"},
    )
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "subject"
    # departments' and areas' measures stay readable by anyone signed in
    assert (await h.get("/measures", "sup-002", subject_kind="department", **month))["rows"]

    assert h.rt.pool is not None
    async with h.rt.pool.acquire() as conn:
        trail = await conn.fetch(
            "SELECT user_id, command, code, status FROM audit_log WHERE outcome = 'refused'"
        )
    seen = {(t["user_id"], t["command"], t["code"], t["status"]) for t in trail}
    for user, *_ in refused:
        assert (user, "GET /drilldown", "forbidden", 403) in seen, user
        assert (user, "GET /drilldown.csv", "forbidden", 403) in seen, user
    assert ("sup-002", "GET /measures", "forbidden", 403) in seen


async def test_an_event_that_breaks_the_contract_goes_to_the_dlq_and_others_count(
    scoring: Harness,
) -> None:
    h = scoring
    bad = Envelope(
        type=ev.CaseClosed.type_name,
        source="/gridloop/verify",
        subject="C-BAD",
        data={"case_id": "C-BAD", "occurred_at": T0.isoformat()},  # no closed_by, no on_time
    )
    headers, body = to_binary(bad)
    await h.js.publish("case.closed", body, headers=headers)
    for e in history("C-OK", CELL_A, T0, until="closed"):
        await h.publish(e)
    await h.settled()
    assert h.rt.pool is not None
    async with h.rt.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT subject, error FROM dead_letters")
    assert row is not None
    assert row["subject"] == "case.closed" and "closed_by" in row["error"]
    areas = await h.measures("area", level="district", period="day", date=DAY)
    assert areas["110101"]["closed"] == 1


def printed_report(out: str) -> Any:
    """The JSON report the command prints (after any log lines)."""
    start = 0 if out.startswith("{") else out.index("\n{") + 1
    return json.loads(out[start:])


async def test_the_rebuild_command_line_replays_and_compares(
    scoring: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    from gridloop_scoring.__main__ import _rebuild

    for e in history("C-CLI", CELL_A, T0):
        await scoring.publish(e)
    await scoring.settled()
    settings = scoring.rt.settings
    assert isinstance(settings, ScoringSettings)
    assert await _rebuild(settings, apply=False) == 0
    report = printed_report(capsys.readouterr().out)
    assert report["identical"] is True and report["facts"] == len(history("C-CLI", CELL_A, T0))
    # A projection that lost an item is found different, and the rebuild puts it right.
    assert scoring.rt.pool is not None
    async with scoring.rt.pool.acquire() as conn:
        await conn.execute("DELETE FROM items WHERE measure = 'closed' AND subject_kind = 'area'")
    assert await _rebuild(settings, apply=False) == 1
    assert printed_report(capsys.readouterr().out)["item_differences"] == 1
    assert await _rebuild(settings, apply=True) == 0
    assert printed_report(capsys.readouterr().out)["applied"] is True
    areas = await scoring.measures("area", level="district", period="day", date=DAY)
    assert areas["110101"]["closed"] == 1


# -- the fast rebuild over generated lifecycles ----------------------------------------------
DEPTS = ("sanitation", "water", "urban-mgmt", "housing")
CELLS = (CELL_A, CELL_B)


def lifecycle(rng: random.Random, n: int, start: datetime) -> list[ev.CaseEvent]:
    """One case, its path drawn at random: rejected, returned and redispatched, extended,
    overdue, escalated (and withdrawn, when the result was on time), reworked, closed, rated —
    or still open."""
    case_id = f"G-{n:04d}"
    cell = rng.choice(CELLS)
    d = dims(case_id, cell)
    sup = "sup-001" if cell == CELL_A else "sup-020"
    patrol = rng.random() < 0.4
    t = start
    out: list[ev.CaseEvent] = [
        ev.CaseReported(
            **d,
            occurred_at=t,
            report_id=f"R-{n}",
            channel="patrol" if patrol else "hotline",
            source="patrol-app" if patrol else "hotline-12345",
            reporter_user_id=rng.choice((sup, "sup-002", "sup-003")) if patrol else None,
            description="垃圾",
            reported_at=t,
        )
    ]
    if rng.random() < 0.1:
        out.append(
            ev.CaseMerged(**d, occurred_at=t, report_id=f"R-{n}m", source="x", channel="web")
        )
    actor = Actor(id=rng.choice(("op-01", "op-02")), role="operator")
    t += 0.5 * HOUR
    if rng.random() < 0.1:
        out.append(ev.CaseRejected(**d, occurred_at=t, actor=actor, reason_code="x", reason="x"))
        return out
    out.append(ev.CaseAccepted(**d, occurred_at=t, actor=actor, description="垃圾"))
    dept = rng.choice(DEPTS)
    deadline = t + 6 * HOUR
    task: dict[str, Any] = {"dept": dept, "task_id": f"T-{n}", "deadline": deadline}
    t += HOUR
    out.append(ev.CaseDispatched(**d, **task, occurred_at=t, sign_in_due=t + HOUR))
    if rng.random() < 0.1:
        out.append(ev.CaseReturned(**d, **task, occurred_at=t + HOUR, reason="不是我们的"))
        task = {**task, "dept": rng.choice(DEPTS), "task_id": f"T-{n}b"}
        t += 2 * HOUR
        out.append(ev.CaseDispatched(**d, **task, occurred_at=t, kind="redispatch"))
    t += rng.choice((0.5, 2.0)) * HOUR
    out.append(ev.CaseSigned(**d, **task, occurred_at=t, on_time=rng.choice((True, None))))
    if rng.random() < 0.15:
        granted = rng.random() < 0.7
        new_deadline = task["deadline"] + 24 * HOUR
        out.append(
            ev.CaseExtensionRequested(
                **d, **task, occurred_at=t, reason="x", proposed_deadline=new_deadline
            )
        )
        out.append(
            ev.CaseExtensionDecided(
                **d,
                **task,
                occurred_at=t + HOUR,
                granted=granted,
                new_deadline=new_deadline if granted else None,
            )
        )
    if rng.random() < 0.15:
        return out
    t += rng.choice((2, 5, 12, 30)) * HOUR
    overdue = rng.random() < 0.2
    if overdue:
        out.append(ev.CaseOverdue(**d, **task, occurred_at=t - HOUR))
        out.append(ev.CaseEscalated(**d, **task, occurred_at=t, level=1, to_role="x", reason="x"))
    # `on_time` left out half the time: the fold judges against the deadline in force.
    on_time = rng.choice((None, True, False))
    out.append(
        ev.CaseHandled(**d, **task, occurred_at=t, result="ok", completed_at=t, on_time=on_time)
    )
    if overdue and on_time:
        # 超期撤回: the result was on time, only late on its way (no draw: same cases as before)
        out.append(
            ev.CaseOverdueWithdrawn(
                **d,
                **task,
                occurred_at=t + 0.1 * HOUR,
                actor=Actor(id="dispatch", role="system"),
                stage="handling",
                overdue_at=t - HOUR,
                answered_at=t - 1.5 * HOUR,
                escalation_levels=[1],
            )
        )
    for attempt in range(2):
        t += HOUR
        out.append(
            ev.CaseVerificationAssigned(**d, **task, occurred_at=t, supervisor_id=sup, due=t + HOUR)
        )
        passed = attempt == 1 or rng.random() < 0.8
        t += rng.choice((0.5, 3.0)) * HOUR
        out.append(
            ev.CaseVerified(
                **d, **task, occurred_at=t, passed=passed, supervisor_id=sup, on_time=None
            )
        )
        if passed:
            break
        out.append(ev.CaseReworked(**d, **task, occurred_at=t, count=1, reason="x"))
        t += 2 * HOUR
        out.append(ev.CaseHandled(**d, **task, occurred_at=t, result="ok", completed_at=t))
    out.append(ev.CaseClosed(**d, **task, occurred_at=t, closed_by=sup, on_time=True))
    if rng.random() < 0.5:
        rating = rng.choice(("satisfied", "basically_satisfied", "dissatisfied"))
        out.append(ev.CaseRated(**d, occurred_at=t + 5 * HOUR, rating=rating))
    return out


async def items_of(h: Harness) -> list[tuple[Any, ...]]:
    assert h.rt.pool is not None
    async with h.rt.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM items ORDER BY 1, 2, 3, 4, 5, 6, 7, 8")
    return [tuple(r) for r in rows]


async def test_the_fast_rebuild_gives_exactly_the_live_items(
    scoring: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = scoring
    rng = random.Random(9)
    monkeypatch.setattr(replay, "BUCKET_EVENTS", 400)  # several buckets for a few thousand
    events = [e for n in range(320) for e in lifecycle(rng, n, T0 + n * 0.25 * HOUR)]
    # Out of order: every case's events shuffled among the others, then some again late.
    rng.shuffle(events)
    messages: list[tuple[str, dict[str, str], bytes]] = []
    for i, e in enumerate(events):
        env = Envelope.of(e, source="/gridloop/gen", subject=e.case_id, id=f"g-{i}")
        headers, body = to_binary(env)
        messages.append((f"case.{e.subject_token}", headers, body))
    duplicates = rng.sample(messages, 60)  # redelivered under new message ids
    messages += [
        (s, {**hd, "Nats-Msg-Id": hd["Nats-Msg-Id"] + "-again"}, b) for s, hd, b in duplicates
    ]
    # Breaking the contract: a `closed` without `closed_by`, and a dispatch whose deadline has
    # no offset (the quick check lets it through; the fold trips on it, the model refuses it).
    bad_closed = Envelope(
        type=ev.CaseClosed.type_name,
        source="/gridloop/gen",
        subject="G-0001",
        id="bad-1",
        data={**dims("G-0001", CELL_A), "occurred_at": T0.isoformat(), "on_time": True},
    )
    naive = {**dims("G-NAIVE", CELL_A), "dept": "water", "task_id": "T-N"}
    bad_dispatch = Envelope(
        type=ev.CaseDispatched.type_name,
        source="/gridloop/gen",
        subject="G-NAIVE",
        id="bad-2",
        data={**naive, "occurred_at": T0.isoformat(), "deadline": "2026-11-23T12:00:00"},
    )
    handled = ev.CaseHandled(**naive, occurred_at=T0 + HOUR, result="ok", completed_at=T0 + HOUR)
    for bad in (bad_closed, bad_dispatch, Envelope.of(handled, source="/gridloop/gen", id="ok-n")):
        headers, body = to_binary(bad)
        messages.append((f"case.{bad.type.split('.')[2]}", headers, body))
    acks = [await h.js.publish_async(s, b, headers=hd) for s, hd, b in messages]
    for ack in acks:
        assert not (await ack).duplicate
    await h.settled()
    live = await items_of(h)
    assert len(live) > 3000

    ctx = fold_context(load_city(DEMO_CITY))
    assert h.rt.pool is not None and h.rt.js is not None
    report = await replay.rebuild(h.rt.pool, h.rt.js, ctx, batch=500)
    assert report.events_read == len(messages)
    assert report.buckets > 5
    assert report.duplicates == 60
    assert report.invalid == 2
    assert report.facts == len(events) + 1  # the well-formed `handled` of G-NAIVE
    assert report.item_differences == 0 and report.live_facts_not_in_stream == 0
    assert report.identical is True and report.items == len(live)

    # Every event checked with its model: the same answer.
    strict = await replay.rebuild(h.rt.pool, h.rt.js, ctx, validate=True)
    assert strict.identical is True and strict.validated == len(messages)
    assert (strict.invalid, strict.facts, strict.items) == (2, report.facts, report.items)

    # Swapped in: the live items, row for row; the live projection carries on.
    applied = await replay.rebuild(h.rt.pool, h.rt.js, ctx, apply=True)
    assert applied.applied is True and applied.identical is True
    assert await items_of(h) == live
    late = ev.CaseRated(**dims("G-0002", CELL_A), occurred_at=T0 + 200 * HOUR, rating="satisfied")
    await h.publish(late)
    await h.settled()
    assert len(await items_of(h)) > len(live)
    again = await replay.rebuild(h.rt.pool, h.rt.js, ctx)
    assert again.identical is True and again.facts == report.facts + 1


# -- the oversight measures over the bus (issue 22) --------------------------------------------
async def test_falsification_v2_and_the_new_measures_reach_the_api_and_survive_a_rebuild(
    scoring: Harness,
) -> None:
    """Three cases in 东华门 (handling 2 h, 7 h late, and 1 h), one of them found falsified
    on case.verified v2 and reworked: the department's falsified count, the area's Jinhua
    deduction, the handling-time statistics per department and category, the steps, the
    catalogue; a rebuild from the stream gives the same numbers."""
    h = scoring
    first = history("C-F1", CELL_A, T0)
    late = history("C-F2", CELL_A, T0 + HOUR, handled_late=True, until="closed")
    falsified = history("C-F3", CELL_A, T0 + 2 * HOUR, until="signed")
    d = dims("C-F3", CELL_A)
    task = {"dept": "sanitation", "task_id": "T-C-F3", "deadline": T0 + 8 * HOUR}
    at = T0 + 4 * HOUR
    falsified += [
        ev.CaseHandled(**d, **task, occurred_at=at, result="已清运", completed_at=at),
        ev.CaseVerifiedV2(
            **d,
            **task,
            occurred_at=at + HOUR,
            actor=Actor(id="sup-001", role="supervisor"),
            passed=False,
            supervisor_id="sup-001",
            notes="照片非本处",
            falsified=True,
            falsification=ev.Falsification(
                notes="照片非本处",
                evidence=[{"url": "https://evidence.example.org/x.jpg"}],
                marked_by="sup-001",
                role="supervisor",
            ),
        ),
        ev.CaseReworked(**d, **task, occurred_at=at + HOUR, count=1, reason="弄虚作假"),
    ]
    for e in [*first, *late, *falsified]:
        await h.publish(e)
    await h.settled()
    month = {"period": "month", "date": DAY}
    san = (await h.measures("department", **month))["sanitation"]
    # handling 2 h (C-F1: 11:00 → 13:00), 7 h (C-F2: 12:00 → 19:00), 1 h (C-F3: 13:00 → 14:00):
    # mean 10/3, median the 2nd of 3 = 2, p90 the 3rd = 7
    assert san["falsified"] == 1 and san["overdue"] == 1 and san["to_handle"] == 3
    assert san["overdue_rate"] == pytest.approx(1 / 3)
    assert (san["handling_hours_count"], san["handling_hours_avg"]) == (3, 3.3333)
    assert (san["handling_hours_median"], san["handling_hours_p90"]) == (2, 7)
    category = (await h.measures("category", **month))["E0102"]
    assert (category["handling_hours_count"], category["handling_hours_p90"]) == (3, 7)
    area = (await h.measures("area", level="subdistrict", **month))["110101001"]
    assert (area["falsifications"], area["failed_verifications"]) == (1, 1)
    assert area["dispatches"] == 3 and area["dispatch_accuracy"] == 1.0
    jinhua = {
        r["subject_code"]: r for r in (await h.get("/rankings", rule_set="jinhua", **month))["rows"]
    }
    terms = {t["measure"]: t["points"] for t in jinhua["110101001"]["terms"]}
    assert terms["falsifications"] == -1.0 and terms["failed_verifications"] == -0.2
    drill = await h.get(
        "/drilldown",
        subject_kind="department",
        subject="sanitation",
        measure="handling_hours_p90",
        **month,
    )
    assert drill["value"] == 7 and drill["parts"][0]["case_ids"] == ["C-F1", "C-F2", "C-F3"]
    steps = {s["step"]: s for s in (await h.get("/steps", **month))["steps"]}
    assert steps["handle"]["count"] == 3 and steps["handle"]["median"] == 2
    assert steps["accept"]["median"] == 0.5 and steps["dispatch"]["median"] == 0.5
    catalogue = await h.get("/catalogue")
    assert "handling_hours_p90" in catalogue["category"]["distributions"][0]["statistics"]
    hours = catalogue["category"]["distributions"][0]
    assert (hours["label"], hours["label_en"]) == ("处置用时（小时）", "Handling time (h)")
    csv_text = await h.get("/measures.csv", subject_kind="department", **month)
    assert "handling_hours_p90" in csv_text.splitlines()[0]

    r = await h.post("/admin/rebuild", ADMIN)
    assert r.status_code == 200 and r.json()["identical"] is True, r.text


async def test_people_are_ranked_by_role_and_read_only_their_own_row(scoring: Harness) -> None:
    """The dispatchers' rule set ranks every dispatcher of users.yaml (one who placed a case
    from the queue after 1.5 hours: accuracy 1 → 60, one hour over half an hour costs 10 of
    40 → 30: 90);
    a dispatcher reads only their own row; people's rankings are not broadcast."""
    h = scoring
    d = dims("C-Q1", CELL_A)
    dispatcher = Actor(id="disp-01", role="dispatcher")
    for e in (
        ev.CaseAccepted(**d, occurred_at=T0, actor=OPERATOR, description="领导交办"),
        ev.CaseQueued(**d, occurred_at=T0, reason="无匹配的派遣规则"),
        ev.CaseDispatched(
            **d,
            occurred_at=T0 + 1.5 * HOUR,
            actor=dispatcher,
            dept="street-001",
            task_id="T-C-Q1",
            deadline=T0 + 9 * HOUR,
            kind="manual",
        ),
    ):
        await h.publish(e)
    await h.settled()
    month = {"period": "month", "date": DAY}
    ranking = await h.get("/rankings", rule_set="dispatchers", **month)
    city = load_city(DEMO_CITY)
    everyone = {u.id for u in city.users.values() if "dispatcher" in u.roles}
    assert {r["subject_code"] for r in ranking["rows"]} == everyone
    mine = next(r for r in ranking["rows"] if r["subject_code"] == "disp-01")
    assert mine["score"] == 90.0 and mine["measures"]["queue_hours_avg"] == 1.5
    own = await h.get("/rankings", "disp-01", rule_set="dispatchers", **month)
    assert [r["subject_code"] for r in own["rows"]] == ["disp-01"]
    r = await h.post("/publish", EVALUATOR, json={"period": "month", "date": DAY})
    assert r.status_code == 200, r.text
    assert "dispatchers" not in {p["rule_set"] for p in r.json()["published"]}


async def test_the_monthly_bulletin_as_data_csv_and_a_printable_page(scoring: Harness) -> None:
    """通报 of November: the departments' and sub-districts' rankings as /rankings gives them,
    the case with most marks first (C-LATE: overdue and reworked), for evaluators only."""
    h = scoring
    for e in [
        *history("C-OK", CELL_A, T0),
        *history("C-LATE", CELL_B, T0 + HOUR, handled_late=True, rework=True, until="closed"),
    ]:
        await h.publish(e)
    await h.settled()
    month = {"period": "month", "date": DAY}
    r = await h.http.get("/bulletin", params=month, headers={"X-User": "sup-001"})  # type: ignore[union-attr]
    assert r.status_code == 403
    b = await h.get("/bulletin", **month)
    assert b["title"] == "东城区网格化城市管理2026年11月考核通报"
    ranking = await h.get("/rankings", rule_set="department", **month)
    assert [(d["subject_code"], d["score"]) for d in b["departments"]] == [
        (row["subject_code"], row["score"]) for row in ranking["rows"]
    ]
    assert {a["subject_code"] for a in b["subdistricts"]} == {"110101001", "110101002"}
    assert b["worst_cases"][0]["case_id"] == "C-LATE"
    assert b["worst_cases"][0]["marks"] == {"overdue": 1, "reworked": 1}
    page = await h.get("/bulletin.html", **month)
    assert "<h1>东城区网格化城市管理2026年11月考核通报</h1>" in page
    assert 'data-case="C-LATE"' in page and "超期1次" in page and "<script" not in page
    text = await h.get("/bulletin.csv", **month)
    assert text.splitlines()[0].lstrip("\ufeff").startswith("section,rank,code,name,score")
    assert any(line.startswith("worst_case,1,C-LATE,") for line in text.splitlines())
    quarter = await h.get("/bulletin", period="quarter", date=DAY)
    assert quarter["title"].endswith("2026年第4季度考核通报")


# -- live reload of the city (city.updated) --------------------------------------------------
# Monday 23 November 2026 10:00 in Beijing (the harness's T0) is case A's day; Tuesday 24th
# 09:00 is case B's. The new version is taken on the 24th at 08:00, when the 23rd has closed.
DAY_A, DAY_B = "2026-11-23", "2026-11-24"
SWAP_AT = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 in Beijing
B_STARTS = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 09:00 in Beijing


def edited(dst: Path, change: Callable[[dict[str, Any], dict[str, Any]], None]) -> Path:
    """A copy of the demo city with scoring.yaml and departments.yaml changed by `change`."""
    shutil.copytree(DEMO_CITY, dst)
    scoring = yaml.safe_load((dst / "scoring.yaml").read_text(encoding="utf-8"))
    departments = yaml.safe_load((dst / "departments.yaml").read_text(encoding="utf-8"))
    change(scoring, departments)
    (dst / "scoring.yaml").write_text(yaml.safe_dump(scoring, allow_unicode=True), "utf-8")
    (dst / "departments.yaml").write_text(yaml.safe_dump(departments, allow_unicode=True), "utf-8")
    return dst


def heavier_handling(scoring: dict[str, Any], departments: dict[str, Any]) -> None:
    """handling_rate weighs 50 instead of 30 in the department rule set; 环卫 is renamed."""
    [rule_set] = [r for r in scoring["rule_sets"] if r["code"] == "department"]
    [rule] = [r for r in rule_set["rules"] if r["measure"] == "handling_rate"]
    rule["weight"] = 50
    [dept] = [d for d in departments["departments"] if d["code"] == "sanitation"]
    dept["name"] = "区城市环境服务中心"


def unknown_measure(scoring: dict[str, Any], departments: dict[str, Any]) -> None:
    heavier_handling(scoring, departments)
    [rule_set] = [r for r in scoring["rule_sets"] if r["code"] == "department"]
    rule_set["rules"].append({"measure": "smiles_per_case", "kind": "weighted", "weight": 5})


async def sanitation(h: Harness, day: str) -> dict[str, Any]:
    body = await h.get("/rankings", rule_set="department", period="day", date=day)
    [row] = [r for r in body["rows"] if r["subject_code"] == "sanitation"]
    out: dict[str, Any] = row
    return out


def refusals() -> float:
    labels = {"service": "scoring", "outcome": "refused"}
    return REGISTRY.get_sample_value("gridloop_city_reloads_total", labels) or 0.0


async def test_a_new_version_scores_later_cases_by_its_rules_and_a_bad_one_is_refused(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "versions"
    release(DEMO_CITY, root, "v1")
    async with started(database_url, nats_url, monkeypatch, city_versions_dir=str(root)) as h:
        handlers = h.rt.state
        for e in history("C-A", CELL_A, h.clock.now(), handled_late=True):
            await h.publish(e)
        await h.settled()
        # v1: handling 30 + on time 0 (late) + no rework 15 + signed on time 10 + B 0.8 × 15
        before = await sanitation(h, DAY_A)
        assert before["score"] == 67.0
        assert before["subject_name"] == "区环境卫生服务中心"

        h.clock.set(SWAP_AT)
        nc = await nats.connect(nats_url)
        try:
            await announce(nc, "v2", release(edited(tmp_path / "v2", heavier_handling), root, "v2"))
            await wait_for(lambda: handlers.ctx.version == "v2", what="scoring on version v2")

            for e in history("C-B", CELL_A, B_STARTS, handled_late=True):
                await h.publish(e)
            await h.settled()
            # the later case is scored by v2's weights and names …
            after = await sanitation(h, DAY_B)
            assert after["score"] == 87.0
            assert after["subject_name"] == "区城市环境服务中心"
            # … the earlier one, in a day closed before the swap, stays as it was scored
            assert (await sanitation(h, DAY_A))["score"] == 67.0

            async def recorded() -> list[dict[str, Any]] | None:
                body = await h.get("/rule-sets")
                history_ = body["history"]
                return history_ if len(history_) == 2 else None

            rows = await wait_for(recorded, what="v2's rules on record")
            assert [r["version"] for r in rows] == ["v1", "v2"]

            # a version whose rules name a measure scoring has not is refused; v2 stays
            refused_before = refusals()
            bad = edited(root / "v3", unknown_measure)  # past the release tool, by hand
            await announce(nc, "v3", digest(bad))
            await wait_for(lambda: refusals() > refused_before, what="version v3 refused")
            assert handlers.ctx.version == "v2"
            assert (await sanitation(h, DAY_B))["score"] == 87.0
        finally:
            await nc.close()

        # once the 24th has closed too, each day keeps the rules in force at its end
        h.clock.set(datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
        assert (await sanitation(h, DAY_B))["score"] == 87.0
        assert (await sanitation(h, DAY_A))["score"] == 67.0
        # the explicit recompute: a closed day with the rules in force now, on request
        rule_set = next(
            r for r in (await h.get("/rule-sets"))["rule_sets"] if r["code"] == "department"
        )
        r = await h.post(
            "/rankings/preview",
            "eval-01",
            json={"rule_set": rule_set, "period": "day", "date": DAY_A},
        )
        assert r.status_code == 200, r.text
        [row] = [x for x in r.json()["rows"] if x["subject_code"] == "sanitation"]
        assert row["score"] == 87.0


# -- 通报 published at the month's end ------------------------------------------------------
async def test_moving_past_a_month_end_publishes_one_bulletin_with_two_scoring_instances(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas share the period timers: at 1 December 00:00 in Beijing (+ the grace) the
    bulletin of November is generated once, stored, announced once, listed and downloadable;
    a second attempt (the other replica, a timer fired again) finds it and does nothing."""
    from gridloop_contracts.scores import BulletinPublishedV1
    from gridloop_scoring.api import handlers_of
    from gridloop_scoring.domain.periods import period_of_date

    periods = {"scoring_publish_periods": "month", "scoring_bulletin_periods": "month,quarter"}
    async with (
        started(database_url, nats_url, monkeypatch, **periods) as one,
        started(database_url, nats_url, monkeypatch, **periods) as two,
    ):
        bulletins = await EventTap(one.js, ("SCORES", "score.bulletin_published")).open()
        for e in [
            *history("C-OK", CELL_A, T0),
            *history("C-LATE", CELL_B, T0 + HOUR, handled_late=True, rework=True, until="closed"),
        ]:
            await one.publish(e)
        await one.settled()
        assert await one.get("/bulletins") == {"rows": []}

        # 30 November 23:59 in Beijing: November is not over yet.
        for h in (one, two):
            h.clock.set(datetime(2026, 11, 30, 15, 59, tzinfo=UTC))
        assert (await one.get("/bulletins"))["rows"] == []
        # 1 December 00:00:01 in Beijing (16:00:01 UTC): both replicas see the month close.
        for h in (one, two):
            h.clock.set(datetime(2026, 11, 30, 16, 0, 1, tzinfo=UTC))
        [env] = await bulletins.wait(None, 1)
        published = BulletinPublishedV1.model_validate(env.data)
        assert published.title == "东城区网格化城市管理2026年11月考核通报"
        assert published.period_start.isoformat() == "2026-11-01T00:00:00+08:00"
        assert (published.departments, published.worst_cases) == (1, 1)  # C-OK has no marks
        assert published.links.html == "/bulletins/month/2026-11-01.html"

        # December's timer is armed (the next month's end), and November's fired once.
        async def next_armed() -> bool:
            assert one.rt.pool is not None
            return bool(
                await one.rt.pool.fetchval(
                    "SELECT count(*) FROM timers WHERE kind = 'scoring-publish' "
                    "AND key = 'month:2026-12-01'"
                )
            )

        await wait_for(next_armed, timeout=15, what="December's publish timer")
        # The other replica tries again: the stored row says it is done, nothing is emitted.
        november = period_of_date(
            "month", datetime(2026, 11, 15).date(), handlers_of(two.rt).ctx.tz
        )
        assert two.rt.uow is not None
        async with two.rt.uow() as work:
            assert await handlers_of(two.rt).publish_bulletin(work, november) is False
        listed = (await two.get("/bulletins"))["rows"]
        assert [(r["period_kind"], r["event_id"]) for r in listed] == [("month", env.id)]
        page = await two.get(listed[0]["links"]["html"])
        assert "<h1>东城区网格化城市管理2026年11月考核通报</h1>" in page
        assert 'data-case="C-LATE"' in page
        text = await one.get(listed[0]["links"]["csv"])
        assert any(line.startswith("worst_case,1,C-LATE,") for line in text.splitlines())
        data = await one.get(listed[0]["links"]["data_json"])
        assert data["worst_cases"][0]["case_id"] == "C-LATE"
        # exactly one announcement on the bus, read back from the stream itself
        info = await one.js.stream_info("SCORES", subjects_filter="score.bulletin_published")
        assert info.state.subjects == {"score.bulletin_published": 1}
        # for evaluators and admins only; a period never published is 404
        assert one.http is not None
        r = await one.http.get("/bulletins", headers={"X-User": SUPERVISOR})
        assert r.status_code == 403
        r = await one.http.get("/bulletins/month/2026-10-01.html", headers={"X-User": ADMIN})
        assert r.status_code == 404 and "start" in r.text


def test_the_consumer_takes_batches_of_scorings_own_size() -> None:
    """Scoring's consumer fetches SCORING_BATCH (1,024) case events, not CONSUMER_BATCH: the
    more of a case's events one batch holds, the fewer times the case is folded again. A
    batch larger than CONSUMER_MAX_ACK_PENDING could never be delivered whole: refused,
    naming both."""
    base = {"SERVICE_NAME": "scoring", "CITY_DATA_DIR": str(DEMO_CITY), "CONSUMER_BATCH": 64}
    settings = ScoringSettings.model_validate(base)
    (spec,) = definition(settings)[0].consumers
    assert spec.batch == settings.batch == 1024
    assert ScoringSettings.model_validate({**base, "SCORING_BATCH": 300}).batch == 300
    with pytest.raises(ValidationError, match=r"SCORING_BATCH .* CONSUMER_MAX_ACK_PENDING"):
        ScoringSettings.model_validate({**base, "SCORING_BATCH": 5000})
