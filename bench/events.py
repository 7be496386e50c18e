"""A million case lifecycle events for the scoring replay, published straight into CASES.

Cases run the loop the way the five services emit it (reported, merged, rejected, accepted,
dispatched, returned and redispatched, signed, extensions, reminders, overdue, escalated,
handled, verification, rework, closed, rated), over the demo city's cells, categories,
departments and supervisors, spread over a few months. Each event type's envelope is built
once from the contract model (`Envelope.of` + `to_binary`); per event only the ids, times
and dimensions change, so generation costs a dict update and one `orjson.dumps`.

The stream gets what a real one has: events of many cases interleaved in time order, some
delivered late (out of order) and some re-published under a new message id (duplicates that
only scoring's event-id keys catch).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from gridloop_city import City
from gridloop_contracts import Actor, Envelope, to_binary
from gridloop_contracts import cases as ev

START = datetime(2026, 6, 1, tzinfo=UTC)
SPAN = timedelta(days=120)
H = 3600.0
PHOTO = "https://evidence.example.org/bench/p.jpg"
OPERATORS = [Actor(id=f"op-{i:02d}", role="operator") for i in range(1, 9)]
RULE = Actor(id="intake", role="system")

# One template per event type: a valid instance of the contract model, whose varying fields
# are overwritten per event.
_T0 = START
_D = {
    "case_id": "C",
    "occurred_at": _T0,
    "category_code": "E0102",
    "cell_code": "c",
    "community_code": "m",
    "subdistrict_code": "s",
}
_TASK = {"dept": "sanitation", "task_id": "T", "deadline": _T0}
_TEMPLATES: dict[str, tuple[str, ev.CaseEvent]] = {
    "reported": (
        "intake",
        ev.CaseReported(
            **_D,
            report_id="R",
            channel="hotline",
            source="hotline-12345",
            description="垃圾堆积，影响通行",
            reported_at=_T0,
        ),
    ),
    "merged": (
        "intake",
        ev.CaseMerged(**_D, report_id="R", source="hotline-12345", channel="hotline"),
    ),
    "accepted": (
        "intake",
        ev.CaseAccepted(**_D, description="垃圾堆积", standard="垃圾堆积面积超过1平方米"),
    ),
    "rejected": (
        "intake",
        ev.CaseRejected(**_D, reason_code="not-in-scope", reason="不属于城管受理范围"),
    ),
    "dispatched": ("dispatch", ev.CaseDispatched(**_D, **_TASK, sign_in_due=_T0)),
    "signed": ("handling", ev.CaseSigned(**_D, **_TASK)),
    "returned": ("handling", ev.CaseReturned(**_D, **_TASK, reason="不属于本单位职责")),
    "extension_requested": (
        "handling",
        ev.CaseExtensionRequested(**_D, **_TASK, reason="需协调物业", proposed_deadline=_T0),
    ),
    "extension_decided": (
        "dispatch",
        ev.CaseExtensionDecided(**_D, **_TASK, granted=True, new_deadline=_T0),
    ),
    "reminded": ("dispatch", ev.CaseReminded(**_D, **_TASK)),
    "overdue": ("dispatch", ev.CaseOverdue(**_D, **_TASK)),
    "escalated": (
        "dispatch",
        ev.CaseEscalated(**_D, **_TASK, level=1, to_role="dispatcher", reason="超期未处置"),
    ),
    "handled": (
        "handling",
        ev.CaseHandled(
            **_D,
            **_TASK,
            result="已清运完毕",
            completed_at=_T0,
            evidence=[{"url": PHOTO, "kind": "photo"}],
        ),
    ),
    "verification_assigned": (
        "verify",
        ev.CaseVerificationAssigned(**_D, **_TASK, supervisor_id="sup", due=_T0),
    ),
    "verified": (
        "verify",
        ev.CaseVerified(
            **_D,
            **_TASK,
            passed=True,
            supervisor_id="sup",
            photos=[{"url": PHOTO, "kind": "photo"}],
        ),
    ),
    "reworked": ("verify", ev.CaseReworked(**_D, **_TASK, count=1, reason="仍有垃圾")),
    "closed": ("verify", ev.CaseClosed(**_D, **_TASK, closed_by="sup", on_time=True)),
    "rated": ("intake", ev.CaseRated(**_D, rating="satisfied", source="hotline-12345")),
}


@dataclass(frozen=True)
class Template:
    subject: str
    headers: dict[str, str]
    data: dict[str, Any]


def templates() -> dict[str, Template]:
    out = {}
    for token, (service, event) in _TEMPLATES.items():
        headers, body = to_binary(Envelope.of(event, source=f"/gridloop/{service}", subject="C"))
        out[token] = Template(f"case.{token}", headers, orjson.loads(body))
    return out


class CityDims:
    """The demo city as the generator draws from it: cells with their territory and
    supervisors, categories with their department."""

    def __init__(self, city: City) -> None:
        self.cells = [
            (code, c.community_code, c.subdistrict_code) for code, c in sorted(city.cells.items())
        ]
        self.roster = {code: (a.primary, a.backup) for code, a in city.supervisors.items()}
        self.categories = [
            (code, _dept_of(city, code)) for code, c in sorted(city.categories.items())
        ]
        self.depts = sorted(city.departments)


def _dept_of(city: City, category: str) -> str:
    best = ("", "urban-mgmt")
    for rule in city.routing:
        pattern = rule.category
        if fnmatch.fnmatchcase(category, pattern) and len(pattern) > len(best[0]):
            best = (pattern, rule.dept)
    return best[1]


Event = tuple[float, str, dict[str, Any]]  # (seconds since START, token, varying data)


def case_events(rng: random.Random, dims: CityDims, n: int, t: float) -> list[Event]:
    """One case's lifecycle from its report at `t` (seconds since START)."""
    cell, community, subdistrict = rng.choice(dims.cells)
    category, dept = rng.choice(dims.categories)
    case_id = f"C{n:07d}"
    base = {
        "case_id": case_id,
        "category_code": category,
        "cell_code": cell,
        "community_code": community,
        "subdistrict_code": subdistrict,
    }
    primary, backup = dims.roster.get(cell, ("sup-001", "sup-002"))
    out: list[Event] = []

    def add(at: float, token: str, **data: Any) -> None:
        out.append((at, token, {**base, **data}))

    patrol = rng.random() < 0.35
    reporter = (primary if rng.random() < 0.8 else backup) if patrol else None
    if patrol:
        add(
            t,
            "reported",
            report_id=f"R{n}",
            channel="patrol",
            source="patrol-app",
            reporter_user_id=reporter,
            reported_at=_iso(t),
        )
    else:
        add(t, "reported", report_id=f"R{n}", reported_at=_iso(t))
    t += rng.uniform(60, 1800)
    if rng.random() < 0.05:
        add(t, "merged", report_id=f"R{n}m")
    if rng.random() < 0.05:
        add(t, "rejected", actor=_actor(rng))
        return out
    if patrol:
        add(
            t,
            "accepted",
            auto=True,
            actor=RULE.model_dump(exclude_none=True),
            reporter_user_id=reporter,
        )
    else:
        add(t, "accepted", actor=_actor(rng))
    if rng.random() < 0.04:
        return out  # still waiting for dispatch
    task = f"T{n}"
    t += rng.uniform(60, 1200)
    limit = rng.choice((4, 8, 24, 72)) * H
    deadline = t + limit
    sign_due = t + 1800
    add(
        t,
        "dispatched",
        dept=dept,
        task_id=task,
        deadline=_iso(deadline),
        sign_in_due=_iso(sign_due),
    )
    if rng.random() < 0.03:
        t += rng.uniform(300, 3600)
        add(t, "returned", dept=dept, task_id=task, deadline=_iso(deadline))
        dept = rng.choice(dims.depts)
        task = f"T{n}b"
        t += rng.uniform(60, 1200)
        deadline = t + limit
        add(
            t,
            "dispatched",
            dept=dept,
            task_id=task,
            deadline=_iso(deadline),
            sign_in_due=_iso(t + 1800),
            kind="redispatch",
        )
    task_d = {"dept": dept, "task_id": task, "deadline": _iso(deadline)}
    t += rng.uniform(60, 2400)
    add(t, "signed", **task_d, on_time=t <= sign_due)
    if rng.random() < 0.05:
        t += rng.uniform(600, 7200)
        add(t, "extension_requested", **task_d, proposed_deadline=_iso(deadline + limit))
        granted = rng.random() < 0.7
        t += rng.uniform(300, 3600)
        if granted:
            deadline += limit
            add(t, "extension_decided", **task_d, granted=True, new_deadline=_iso(deadline))
            task_d["deadline"] = _iso(deadline)
        else:
            add(t, "extension_decided", **task_d, granted=False, new_deadline=None)
    if rng.random() < 0.05:
        return out  # still being handled
    duration = limit * rng.uniform(0.2, 1.4)
    if rng.random() < 0.1:
        add(t + duration * 0.6, "reminded", **task_d)
    done = t + duration
    if done > deadline:
        add(deadline, "overdue", **task_d)
        if rng.random() < 0.3:
            add(deadline + 600, "escalated", **task_d, level=1, to_role="dispatcher")
    t = done
    add(t, "handled", **task_d, completed_at=_iso(t), on_time=t <= deadline)
    sup = primary
    for attempt in range(3):
        t += rng.uniform(60, 600)
        due = t + 2 * H
        add(t, "verification_assigned", **task_d, supervisor_id=sup, due=_iso(due))
        t += rng.uniform(600, 3 * H)
        passed = attempt == 2 or rng.random() < 0.9
        add(
            t,
            "verified",
            **task_d,
            supervisor_id=sup,
            passed=passed,
            on_time=t <= due,
            falsified=True if not passed and rng.random() < 0.1 else None,
        )
        if passed:
            break
        add(t, "reworked", **task_d, count=attempt + 1, new_deadline=_iso(t + limit))
        t += rng.uniform(0.2, 0.9) * limit
        add(t, "handled", **task_d, completed_at=_iso(t), on_time=None)
    add(t, "closed", **task_d, closed_by=sup, on_time=t <= deadline)
    if not patrol and rng.random() < 0.45:
        t += rng.uniform(H, 48 * H)
        rating = rng.choices(RATINGS, (80, 15, 5))[0]
        add(t, "rated", rating=rating, dept=dept)
    return out


RATINGS = ("satisfied", "basically_satisfied", "dissatisfied")


def _actor(rng: random.Random) -> dict[str, Any]:
    return rng.choice(OPERATORS).model_dump(exclude_none=True)


_DAYS = [(START + timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(3 * 366)]


def _iso(seconds: float) -> str:
    """RFC 3339 (whole seconds, UTC) without a datetime per call."""
    day, s = divmod(int(seconds), 86400)
    return f"{_DAYS[day]}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z"


def generate(
    dims: CityDims,
    count: int,
    *,
    seed: int = 7,
    block: int = 2000,
    late: float = 0.01,
    duplicates: float = 0.005,
) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """`count` messages (subject, body, headers) in stream order: cases start evenly over
    SPAN, blocks of cases are interleaved by time, a `late` share of each block arrives with
    the next one, and a `duplicates` share is sent again under a new message id."""
    rng = random.Random(seed)
    tpl = templates()
    cases = max(1, count // 9)
    step = SPAN.total_seconds() / cases
    sent = 0
    n = 0
    carried: list[tuple[float, str, dict[str, Any]]] = []
    while sent < count:
        events: list[Event] = []
        for _ in range(block):
            events.extend(case_events(rng, dims, n, n * step + rng.uniform(0, step)))
            n += 1
        events.sort(key=lambda e: e[0])
        now, carried = carried, []
        for e in events:
            (carried if rng.random() < late else now).append(e)
        for at, token, data in now:
            if sent >= count:
                return
            t = tpl[token]
            data = {k: v for k, v in data.items() if v is not None}
            data["occurred_at"] = _iso(at)
            body = orjson.dumps({**t.data, **data})
            event_id = f"{token[:3]}-{sent:09d}"
            headers = {
                **t.headers,
                "ce-id": event_id,
                "Nats-Msg-Id": event_id,
                "ce-subject": data["case_id"],
                "ce-time": data["occurred_at"],
            }
            yield t.subject, body, headers
            sent += 1
            if sent < count and rng.random() < duplicates:
                yield t.subject, body, {**headers, "Nats-Msg-Id": f"{event_id}-again"}
                sent += 1


async def publish(nc: Any, messages: Iterator[tuple[str, bytes, dict[str, str]]]) -> int:
    """Publish pipelined on one connection (JetStream stores them in order; the caller waits
    until the stream holds them all instead of awaiting an ack per message)."""
    n = 0
    for subject, body, headers in messages:
        await nc.publish(subject, body, headers=headers)
        n += 1
        if n % 20_000 == 0:
            await nc.flush(timeout=60)
    await nc.flush(timeout=60)
    return n
