"""Oversight that cannot be gamed, end to end (issue 22): the five services as processes on a
real NATS and PostgreSQL, the department kits answering, supervisors and the command centre on
the REST APIs. Each new measure is produced from real events and checked against a value
worked out here from those same events (the case file's timeline); falsification reaches the
Jinhua score; a case sent to the manual queue is visible as queued at once and is chased;
dispatchers and the shift leader chase by hand; after a rework the department signs again.

Each test works in cells (and so supervisors and sub-districts) of its own, so the numbers of
one never mix with another's. The clock moves forward only in the last three tests."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from gridloop_city import City, load_city
from gridloop_contracts.inbound import ReportV1
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for

from .conftest import clock_offset, move_clock
from .loop import ROOT, Loop, now, open_loop

pytestmark = pytest.mark.asyncio(loop_scope="module")
BJ = ZoneInfo("Asia/Shanghai")
PHOTO = "https://evidence.example.org/oversight.jpg"
KM_NORTH = 0.009  # about a kilometre of latitude


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def loop(stack: Stack, city: City) -> AsyncIterator[Loop]:
    async with open_loop(stack, city) as lp:
        yield lp


# -- places of their own for each test -----------------------------------------------------
def trusted_cells(city: City) -> list[tuple[str, str, str]]:
    """(primary, cell, sub-district) of cells whose primary supervisor is trusted and that
    take every category, one per sub-district and never the same supervisor twice."""
    out: list[tuple[str, str, str]] = []
    seen_subs: set[str] = set()
    seen_people: set[str] = set()
    for code, pair in sorted(city.supervisors.items()):
        cell = city.cells[code]
        if cell.entry_list is not None or not city.users[pair.primary].trusted:
            continue
        if cell.subdistrict_code in seen_subs or pair.primary in seen_people:
            continue
        seen_subs.add(cell.subdistrict_code)
        seen_people.update((pair.primary, pair.backup))
        out.append((pair.primary, code, cell.subdistrict_code))
    return out


@pytest.fixture(scope="module")
def places(city: City) -> dict[str, tuple[str, str, str]]:
    cells = trusted_cells(city)
    assert len(cells) >= 3, "the demo city has too few trusted supervisors"
    return {"measures": cells[0], "falsified": cells[1], "queue": cells[2]}


def cell_points(city: City, cell: str, n: int) -> list[dict[str, float]]:
    """`n` points inside the cell, spread over it (≥ 50 m apart in a 100 m cell)."""
    minx, miny, maxx, maxy = city.polygons[cell].bounds
    w, h = maxx - minx, maxy - miny
    grid = [(0.2, 0.2), (0.8, 0.2), (0.2, 0.8), (0.8, 0.8), (0.5, 0.5)]
    out = []
    for fx, fy in grid[:n]:
        lon, lat = minx + fx * w, miny + fy * h
        found = city.locate(lon, lat)
        assert found is not None and found.code == cell, (cell, lon, lat)
        out.append({"lat": lat, "lon": lon})
    return out


# -- reading what happened ----------------------------------------------------------------
def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def first(lines: list[dict[str, Any]], token: str, **data: Any) -> dict[str, Any]:
    """The first timeline line of a case event type (`gridloop.case.<token>.*`) whose data
    has these values."""
    for line in lines:
        kind = str(line["type"])
        if kind.startswith(f"gridloop.case.{token}.") and all(
            line["data"].get(k) == v for k, v in data.items()
        ):
            return line
    raise AssertionError(f"no {token} {data} in {[line['type'] for line in lines]}")


def hours(start: dict[str, Any], end: dict[str, Any]) -> float:
    return (at(end["occurred_at"]) - at(start["occurred_at"])).total_seconds() / 3600


def nearest_rank(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def covering(instants: Iterable[datetime]) -> dict[str, str]:
    """The smallest scoring period (local calendar) holding every instant: period and date."""
    days = sorted(i.astimezone(BJ).date() for i in instants)
    a, b = days[0], days[-1]
    if a == b:
        return {"period": "day", "date": a.isoformat()}
    if a.isocalendar()[:2] == b.isocalendar()[:2]:
        return {"period": "week", "date": a.isoformat()}
    if (a.year, a.month) == (b.year, b.month):
        return {"period": "month", "date": a.isoformat()}
    if (a.year, (a.month - 1) // 3) == (b.year, (b.month - 1) // 3):
        return {"period": "quarter", "date": a.isoformat()}
    if a.year != b.year:
        pytest.skip("the case's events fall in two years; no scoring period holds them all")
    return {"period": "year", "date": a.isoformat()}


async def measures(
    loop: Loop, kind: str, subject: str, period: dict[str, str], **params: Any
) -> dict[str, Any]:
    body = await loop.get(
        "scoring", "/measures", "eval-01", subject_kind=kind, subject=subject, **period, **params
    )
    rows = {r["subject_code"]: r["measures"] for r in body["rows"]}
    return dict(rows.get(subject, {}))


async def scored(
    loop: Loop, kind: str, subject: str, period: dict[str, str], want: dict[str, float], **kw: Any
) -> dict[str, Any]:
    """The subject's measures once scoring has folded every event that decides `want` (on
    time-out, the measures last read are in the failure)."""
    last: list[dict[str, Any]] = []

    async def ready() -> dict[str, Any] | None:
        m = await measures(loop, kind, subject, period, **kw)
        last[:] = [m]
        return m if all(m.get(k) == v for k, v in want.items()) else None

    try:
        found: dict[str, Any] = await wait_for(
            ready, timeout=45, what=f"{kind} {subject} to reach {want} in {period}"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the measures last read: {last}") from None
    return found


async def report(
    loop: Loop, channel: str, category: str, where: dict[str, float], by: str | None = None
) -> str:
    """A report over NATS (patrol: by the supervisor `by`; hotline: a resident); its case."""
    ext = f"{channel}-{uuid.uuid4().hex[:8]}"
    r = ReportV1(
        external_id=ext,
        description=f"{category} 监督检查",
        reported_at=now(),
        location=where,
        category_code=category,
        reporter_user_id=by,
        reporter=None if by else {"name": "王五", "phone": "13900001111"},
    )
    source = "patrol-app" if channel == "patrol" else "12345"
    await loop.publish(f"intake.{channel}.{source}", r)
    return await loop.case_of(ext)


async def open311(loop: Loop, category: str, where: dict[str, float]) -> str:
    form = {
        "api_key": "demo-open311-key",
        "service_code": category,
        "lat": str(where["lat"]),
        "long": str(where["lon"]),
        "description": f"{category} 市民反映",
    }
    r = await loop.http.post(loop.url("intake", "/open311/v2/requests.json"), data=form)
    assert r.status_code in (200, 201), r.text
    case_id = str(r.json()[0]["service_request_id"])
    await loop.wait_status(case_id, "pending_acceptance")
    await loop.post("intake", f"/cases/{case_id}/accept", {}, "op-01")
    return case_id


async def department_answers(loop: Loop, dept: str, case_id: str) -> None:
    """The department's staff sign for the task and report the result through the handling
    API (its own clock: the services')."""
    user = f"{dept}-ops"

    async def in_inbox() -> bool:
        r = await loop.http.get(
            loop.url("handling", f"/departments/{dept}/cases/{case_id}"),
            headers={"X-User": user},
        )
        return r.status_code == 200

    await wait_for(in_inbox, timeout=30, what=f"the task in {dept}'s inbox")
    for action, body in (
        ("sign", {}),
        ("result", {"result": "已处置完毕", "evidence": [{"url": PHOTO, "kind": "photo"}]}),
    ):
        r = await loop.http.post(
            loop.url("handling", f"/departments/{dept}/cases/{case_id}/{action}"),
            headers={"X-User": user},
            json=body,
        )
        assert r.status_code < 300, r.text


# -- the measures, from real events ---------------------------------------------------------
async def test_the_new_measures_come_out_of_real_events(
    loop: Loop, city: City, places: dict[str, tuple[str, str, str]]
) -> None:
    """Four cases in one cell: two found on patrol by its supervisor (E0104 to sanitation,
    E0201 to urban-mgmt), one called in by a resident (E0503: traffic-police returns it,
    urban-mgmt gets it), one reported on the web (E0106, an operator accepts it). Verified by
    the cell's supervisor: three at the case's place, one from a kilometre away."""
    sup, cell, _sub = places["measures"]
    pts = cell_points(city, cell, 4)
    patrol_bin = await report(loop, "patrol", "E0104", pts[0], by=sup)
    patrol_ad = await report(loop, "patrol", "E0201", pts[1], by=sup)
    hotline = await report(loop, "hotline", "E0503", pts[2])
    await loop.wait_status(hotline, "pending_confirmation")
    await loop.confirm(hotline)
    web = await open311(loop, "E0106", pts[3])
    cases = [patrol_bin, patrol_ad, hotline, web]
    for n, case_id in enumerate(cases):
        await loop.wait_status(case_id, "handled", "verifying")
        where = pts[n] if n != 1 else {"lat": pts[n]["lat"] + KM_NORTH, "lon": pts[n]["lon"]}
        await loop.verify(case_id, True, position=where)
        await loop.wait_status(case_id, "closed")

    lines = {c: await loop.lines(c) for c in cases}
    period = covering(at(line["occurred_at"]) for ls in lines.values() for line in ls)

    # areas: 主动发现率 2/4 (the patrol reports), 派遣准确率 1 − 1/5 (one dispatch returned)
    area = await scored(
        loop, "area", cell, period, {"accepted": 4, "dispatches": 5, "closed": 4}, level="cell"
    )
    assert (area["discovered"], area["discovery_rate"]) == (2, 0.5)
    assert (area["misdispatches"], area["dispatch_accuracy"]) == (1, 0.8)
    # the time to accept, by hand from the timelines: report → acceptance
    accept = [hours(first(ls, "reported"), first(ls, "accepted")) for ls in lines.values()]
    assert area["accept_hours_count"] == 4
    assert area["accept_hours_avg"] == pytest.approx(sum(accept) / 4, abs=1e-3)
    assert area["accept_hours_p90"] == pytest.approx(nearest_rank(accept, 0.9), abs=1e-3)

    # the cell's supervisor: 漏报率 2/4 (the hotline's and the web's cases were found by
    # others); 按时现场核查率 3/4 (one verdict from a kilometre away)
    person = await scored(
        loop, "person", sup, period, {"cell_cases": 4, "verification_tasks": 4, "verifications": 4}
    )
    assert (person["missed"], person["missed_report_rate"]) == (2, 0.5)
    assert person["verifications_on_time"] == 4
    assert (person["verifications_on_site"], person["on_site_verification_rate"]) == (3, 0.75)

    # urban-mgmt's handling time: first dispatch to it → its first result, per case
    taken = {
        c: hours(first(lines[c], "dispatched", dept="urban-mgmt"), first(lines[c], "handled"))
        for c in (patrol_ad, hotline)
    }
    dept = await scored(loop, "department", "urban-mgmt", period, {"handling_hours_count": 2})
    assert dept["handling_hours_avg"] == pytest.approx(sum(taken.values()) / 2, abs=1e-3)
    assert dept["handling_hours_median"] == pytest.approx(min(taken.values()), abs=1e-3)
    assert dept["handling_hours_p90"] == pytest.approx(max(taken.values()), abs=1e-3)
    assert (dept["to_handle"], dept["overdue"], dept["overdue_rate"]) == (2, 0, 0.0)
    # and per category: one case each
    for category, case_id in (("E0201", patrol_ad), ("E0503", hotline)):
        m = await scored(loop, "category", category, period, {"handling_hours_count": 1})
        assert m["handling_hours_p90"] == pytest.approx(taken[case_id], abs=1e-3)
    # traffic-police returned its one dispatch: to_handle 0, its dispatch counted and returned
    police = await measures(loop, "department", "traffic-police", period)
    assert (police["dispatched"], police["returned"], police["to_handle"]) == (1, 1, 0)

    # the loop's median times per step over the district, for the wall screen
    steps = {s["step"]: s for s in (await loop.get("scoring", "/steps", **period))["steps"]}
    assert steps["accept"]["count"] >= 4 and steps["verify"]["count"] >= 4
    assert all(steps[s]["median"] is not None for s in ("accept", "dispatch", "handle"))


# -- falsification, and the rework signed for again ------------------------------------------
async def test_a_falsified_result_counts_in_the_jinhua_score_and_the_rework_is_signed_again(
    loop: Loop, city: City, places: dict[str, tuple[str, str, str]]
) -> None:
    sup, cell, sub = places["falsified"]
    [where] = cell_points(city, cell, 1)
    case_id = await report(loop, "patrol", "E0104", where, by=sup)
    await loop.wait_status(case_id, "handled", "verifying")
    await loop.verify(
        case_id,
        False,
        notes="反馈照片拍摄于隔壁门口，现场垃圾未清运",
        falsified=True,
        position=where,
    )
    # back to sanitation for rework: the kit signs for the rework round again, then handles
    await loop.wait_status(case_id, "reworking", "dispatched", "signed", "handled", "verifying")

    async def verifiable() -> bool:
        tasks = await loop.get("verify", "/tasks", "admin", status="open", purpose="verification")
        return any(t["case_id"] == case_id for t in tasks)

    await wait_for(verifiable, timeout=45, what="a second verification task after rework")
    await loop.verify(case_id, True, position=where)
    await loop.wait_status(case_id, "closed")

    lines = await loop.lines(case_id)
    verdict = first(lines, "verified", falsified=True)
    assert verdict["type"] == "gridloop.case.verified.v2"
    assert verdict["data"]["falsification"]["marked_by"] == sup
    rework = first(lines, "dispatched", kind="rework")
    assert rework["data"]["sign_in_due"] is not None
    signed = [line for line in lines if str(line["type"]).startswith("gridloop.case.signed.")]
    assert len(signed) == 2 and at(signed[1]["occurred_at"]) >= at(rework["occurred_at"])

    # dispatch's own view of the task learns of a signature when its held events are
    # handled (up to CONSUMER_PATIENT_LINGER_S after it came), not when the case closed
    async def rework_signed_in_dispatch() -> bool:
        task = (await loop.get("dispatch", f"/cases/{case_id}", "disp-01"))["tasks"][0]
        assert task["kind"] == "rework" and task["sign_in_due"] is not None
        return bool(task["signed_at"])

    await wait_for(rework_signed_in_dispatch, timeout=15, what="dispatch's view signed")

    period = covering(at(line["occurred_at"]) for line in lines)
    area = await scored(
        loop, "area", sub, period, {"falsifications": 1, "closed": 1}, level="subdistrict"
    )
    assert area["failed_verifications"] == 1
    drill = await loop.get(
        "scoring",
        "/drilldown",
        "eval-01",
        subject_kind="department",
        subject="sanitation",
        measure="falsified",
        **period,
    )
    assert drill["parts"][0]["case_ids"] == [case_id]
    ranking = await loop.get(
        "scoring", "/rankings", "eval-01", rule_set="jinhua", level="subdistrict", **period
    )
    [row] = [r for r in ranking["rows"] if r["subject_code"] == sub]
    terms = {t["measure"]: t["points"] for t in row["terms"]}
    # the Jinhua rules: each falsification costs 1, a failed verification 0.2
    assert (terms["falsifications"], terms["failed_verifications"]) == (-1.0, -0.2)


# -- no silent waits ---------------------------------------------------------------------------
async def test_a_recalled_case_is_queued_everywhere_at_once_chased_and_placed_by_hand(
    loop: Loop, stack: Stack, city: City, places: dict[str, tuple[str, str, str]]
) -> None:
    """E0302 goes to housing (its kit signs and asks for more time). The dispatcher and the
    shift leader chase it by hand, then the dispatcher recalls it: case.queued, seen as
    待人工派遣 by the case file and the dispatch queue; left there, it is
    chased to the dispatcher (30 min) and the shift leader (2 h); then placed by hand."""
    _sup, cell, _sub = places["queue"]
    [where] = cell_points(city, cell, 1)
    case_id = await open311(loop, "E0302", where)
    await loop.wait_status(case_id, "dispatched", "signed")
    for user in ("disp-01", "lead-01"):
        await loop.post(
            "dispatch", f"/cases/{case_id}/reminder", {"note": f"{user} 催办：请尽快处置"}, user
        )
    heard: asyncio.Queue[float] = asyncio.Queue()

    async def on_queued(msg: Any) -> None:
        if json.loads(msg.data).get("case_id") == case_id:
            heard.put_nowait(time.monotonic())

    sub = await loop.nc.subscribe("case.queued", cb=on_queued)
    try:
        await loop.post("dispatch", f"/cases/{case_id}/recall", {"reason": "统一改派"}, "disp-01")
        queued_at = await asyncio.wait_for(heard.get(), timeout=15)
    finally:
        await sub.unsubscribe()

    async def in_case_file() -> bool:
        return await loop.status(case_id) == "manual_dispatch"

    async def in_queue() -> bool:
        waiting = await loop.get("dispatch", "/queue", "disp-01")
        return any(c["case_id"] == case_id for c in waiting)

    # how soon is measured by make bench (max_queued_to_case_file_ms and
    # max_queued_to_dispatch_queue_ms), not asserted here: a busy machine is not a fault
    await wait_for(in_case_file, timeout=30, interval=0.05, what="待人工派遣 in the case file")
    await wait_for(in_queue, timeout=30, interval=0.05, what="the case in the dispatch queue")
    print(f"queued → in the case file and the queue: {time.monotonic() - queued_at:.2f} s")
    case = await loop.get("intake", f"/cases/{case_id}", "op-01")
    assert "待人工派遣" in case["status_notes"]

    move_clock(stack, 31 * 60)

    async def chased(level: int) -> dict[str, Any] | None:
        lines = await loop.lines(case_id)
        done = [
            line
            for line in lines
            if str(line["type"]).startswith("gridloop.case.queue_chased.")
            and line["data"]["level"] == level
        ]
        return done[0] if done else None

    one = await wait_for(lambda: chased(1), timeout=45, what="the queue chased to the dispatcher")
    assert one["data"]["to_role"] == "dispatcher"
    move_clock(stack, 90 * 60)
    two = await wait_for(lambda: chased(2), timeout=45, what="the queue chased to the leader")
    assert two["data"]["to_role"] == "shift-leader"
    [waiting] = [
        c for c in await loop.get("dispatch", "/queue", "disp-01") if c["case_id"] == case_id
    ]
    assert waiting["queue_chase_level"] == 2

    # placed by hand with a sub-district office, which answers through the handling API (the
    # kits' clocks are the real one, two hours behind the services' by now)
    await loop.post("dispatch", f"/cases/{case_id}/dispatch", {"dept": "street-001"}, "disp-01")
    await loop.wait_status(case_id, "dispatched")
    await department_answers(loop, "street-001", case_id)
    await loop.wait_status(case_id, "handled", "verifying")
    await loop.verify(case_id, True, position=where)
    await loop.wait_status(case_id, "closed")

    lines = await loop.lines(case_id)
    period = covering(at(line["occurred_at"]) for line in lines)
    manual = [
        line
        for line in lines
        if str(line["type"]).startswith("gridloop.case.reminded.") and line["data"].get("manual")
    ]
    assert [m["data"]["actor"]["role"] for m in manual] == ["dispatcher", "shift-leader"]
    # counted like the automatic ones: housing was chased twice, both by hand
    housing = await scored(loop, "department", "housing", period, {"reminders": 2})
    assert housing["dispatched"] == 1
    dispatcher = await scored(loop, "person", "disp-01", period, {"dispatches": 1})
    assert dispatcher["dispatch_accuracy"] == 1.0


async def test_overdue_rate_from_a_silent_department(
    loop: Loop, stack: Stack, city: City, places: dict[str, tuple[str, str, str]]
) -> None:
    """Two trees reported to greening (no kit): one signed and handled at once through the
    handling API, the other left until its deadline passes: 超期率 1/2."""
    used = {c for _, c, _ in places.values()}
    trees = [
        p
        for p in sorted(city.parts.values(), key=lambda p: p.code)
        if p.category_code == "P0401"
        and p.cell_code not in used
        and p.cell_code in city.supervisors
        and city.users[city.supervisors[p.cell_code].primary].trusted
        and city.cells[p.cell_code].entry_list is None
    ]
    chosen = [trees[0], next(t for t in trees if t.cell_code != trees[0].cell_code)]
    cases = []
    for tree in chosen:
        ext = f"tree-{uuid.uuid4().hex[:8]}"
        tree_report = ReportV1(
            external_id=ext,
            description="行道树倾斜",
            reported_at=now(),
            part_code=tree.code,
            reporter_user_id=city.supervisors[tree.cell_code].primary,
        )
        await loop.publish("intake.patrol.patrol-app", tree_report)
        cases.append(await loop.case_of(ext))
    done, silent = cases
    for case_id in cases:
        await loop.wait_status(case_id, "dispatched")

    await department_answers(loop, "greening", done)
    await loop.wait_status(done, "handled", "verifying")

    # The clock may move only once dispatch, which keeps the deadlines, has heard the result
    # too (intake's status can be ahead of it): else the handled task is chased as well.
    async def dispatch_heard_the_result() -> bool:
        task = (await loop.get("dispatch", f"/cases/{done}", "disp-01"))["tasks"][0]
        return task["handled_at"] is not None

    await wait_for(dispatch_heard_the_result, timeout=45, what="dispatch to hear the result")

    task = (await loop.get("dispatch", f"/cases/{silent}", "disp-01"))["tasks"][0]
    deadline = at(task["deadline"])
    service_now = datetime.now(UTC) + timedelta(seconds=clock_offset(stack))
    move_clock(stack, max(0.0, (deadline - service_now).total_seconds()) + 60)

    async def overdue() -> dict[str, Any] | None:
        for line in await loop.lines(silent):
            if str(line["type"]).startswith("gridloop.case.overdue.") and (
                line["data"].get("stage") == "handling"
            ):
                return line
        return None

    late = await wait_for(overdue, timeout=45, what="the silent task overdue")
    lines = [*await loop.lines(done), *await loop.lines(silent)]
    period = covering([*(at(line["occurred_at"]) for line in lines), at(late["occurred_at"])])
    green = await scored(loop, "department", "greening", period, {"to_handle": 2, "overdue": 1})
    assert green["overdue_rate"] == 0.5 and green["handled"] == 1


async def test_an_overdue_case_climbs_the_ladder_to_the_grid_head_of_its_cell(
    loop: Loop, stack: Stack, city: City, places: dict[str, tuple[str, str, str]]
) -> None:
    """A resident's report of bicycles parked across the pavement in a cell with a grid head,
    routed to a sub-district office without a system (nobody answers): past the deadline the
    dispatcher is chased, and half a working day later the ladder's grid-head rung names the
    grid head of the cell (users.yaml), who sees it in their queue."""
    # away from the other tests' sub-districts (a resident's report is a missed report of the
    # cell's supervisor)
    theirs = {sub for _, _, sub in places.values()}
    cell = next(
        code
        for code in sorted(city.cells)
        if city.grid_heads_of(code)
        and city.cells[code].subdistrict_code not in theirs
        and city.cells[code].entry_list is None
        and (r := city.route("E0504", code)) is not None
        and r.dept not in ("sanitation", "urban-mgmt", "traffic-police", "housing")
    )
    [head] = city.grid_heads_of(cell)
    [where] = cell_points(city, cell, 1)
    case_id = await open311(loop, "E0504", where)
    await loop.wait_status(case_id, "dispatched")

    async def next_rung() -> datetime:
        view = await loop.get("dispatch", f"/cases/{case_id}", "disp-01")
        due = [t for t in view["pending_timers"] if t["kind"] == "escalate:2"]
        assert due, view["pending_timers"]
        return at(due[0]["due_at"])

    rung = await next_rung()
    service_now = datetime.now(UTC) + timedelta(seconds=clock_offset(stack))
    move_clock(stack, max(0.0, (rung - service_now).total_seconds()) + 60)

    async def climbed() -> dict[str, Any] | None:
        for line in await loop.lines(case_id):
            if str(line["type"]).startswith("gridloop.case.escalated.") and (
                line["data"].get("level") == 2
            ):
                return line
        return None

    line = await wait_for(climbed, timeout=60, what="the grid-head rung")
    assert line["data"]["to_role"] == "grid-head"
    assert line["data"]["to_user_ids"] == [head]
    assert at(line["occurred_at"]) == rung

    async def in_queue() -> dict[str, Any] | None:
        rows = await loop.get("intake", "/grid-head/queue", head)
        mine = [r for r in rows if r["case_id"] == case_id and r["escalated_to_me"]]
        return mine[0] if mine else None

    item = await wait_for(in_queue, timeout=30, what="the case in the grid head's queue")
    assert item["why"] == "overdue" and item["escalated_to_me"]["level"] == 2


async def test_the_places_are_apart(places: dict[str, tuple[str, str, str]]) -> None:
    """The tests above read numbers of their own cells, supervisors and sub-districts."""
    assert len({s for s, _, _ in places.values()}) == len(places)
    assert len({sub for _, _, sub in places.values()}) == len(places)
