"""The department integration kit closes the loop: dispatch routes an accepted case, the
example department system (`examples/department_system.py`) signs for it and reports the
result over NATS, handling turns that into case events, verify's supervisor passes it and the
case closes — dispatch, handling and verify in-process on one real NATS and PostgreSQL.

The services run on the real clock here: the department's system stamps its own times."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import nats
import pytest
from gridloop_contracts import Attachment, Envelope, Location, to_binary
from gridloop_contracts import cases as ev
from gridloop_contracts.department import CaseSummary, TaskAssigned, TaskRecalled
from gridloop_devkit.testing import (
    EventTap,
    http_client,
    load_module,
    running,
    settings_for,
    wait_for,
)
from gridloop_dispatch.bootstrap import definition as dispatch_definition
from gridloop_dispatch.settings import DispatchSettings
from gridloop_handling.bootstrap import definition as handling_definition
from gridloop_handling.settings import HandlingSettings
from gridloop_runtime import bus
from gridloop_runtime.bus import Feed
from gridloop_runtime.service import Runtime, ServiceDefinition
from gridloop_runtime.settings import ServiceSettings
from gridloop_verify.bootstrap import definition as verify_definition
from gridloop_verify.settings import VerifySettings
from nats.aio.client import Client

if TYPE_CHECKING:
    from .conftest import Harness

HERE = Path(__file__).resolve().parent
DEMO_CITY = HERE.parents[2] / "data" / "demo-city"
# A cell of 东华门街道 whose supervisors are sup-001 (primary) and sup-002 (supervisors.csv).
CELL, COMMUNITY, SUBDISTRICT = "1101010010010001", "110101001001", "110101001"
PHOTO = "https://evidence.example.org/report/e2e.jpg"


def load_example() -> Any:
    return load_module(
        HERE.parent / "examples" / "department_system.py", "handling_department_system"
    )


class Loop:
    """dispatch, handling and verify running, a tap on CASES, and intake's part played."""

    def __init__(self, nc: Client, runtimes: dict[str, Runtime]) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.rt = runtimes
        self.cases = EventTap(self.js, ("CASES", "case.>"))

    async def open(self) -> None:
        await self.cases.open()

    async def accept(self, case_id: str, category: str, description: str) -> None:
        """立案, as intake announces it."""
        event = ev.CaseAccepted(
            case_id=case_id,
            occurred_at=datetime.now(UTC),
            category_code=category,
            cell_code=CELL,
            community_code=COMMUNITY,
            subdistrict_code=SUBDISTRICT,
            description=description,
            location=Location(lat=39.9142, lon=116.3975),
            attachments=[Attachment(url=PHOTO)],
        )
        headers, body = to_binary(Envelope.of(event, source="/gridloop/intake", subject=case_id))
        await self.js.publish("case.accepted", body, headers=headers)

    async def wait(self, model: type[ev.CaseEvent], **data: Any) -> Envelope:
        """The first `model` event on CASES matching `data`."""
        return (await self.cases.wait(model, timeout=20, **data))[0]


@asynccontextmanager
async def loop(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Loop]:
    monkeypatch.setenv("AUTH_MODE", "dev")
    city = {"city_data_dir": str(DEMO_CITY)}
    # Each service's settings class, and its definition (which takes settings of that class).
    wiring: dict[str, tuple[type[ServiceSettings], Callable[[Any], tuple[ServiceDefinition, Any]]]]
    wiring = {
        "dispatch": (DispatchSettings, dispatch_definition),
        "handling": (HandlingSettings, handling_definition),
        "verify": (VerifySettings, verify_definition),
    }
    async with AsyncExitStack() as stack:
        runtimes: dict[str, Runtime] = {}
        for name, (cls, build) in wiring.items():
            # One database, a schema per service (as in production).
            settings = settings_for(name, database_url, nats_url, cls, db_pool_max=4, **city)
            definition, state = build(settings)
            runtimes[name] = await stack.enter_async_context(
                running(settings, definition, state=state)
            )
        nc = await nats.connect(nats_url)
        stack.push_async_callback(nc.close)
        lp = Loop(nc, runtimes)
        await lp.open()
        yield lp


async def rest(rt: Runtime, method: str, path: str, user: str, **kw: Any) -> httpx.Response:
    async with http_client(rt) as client:
        return await client.request(method, path, headers={"X-User": user}, **kw)


async def test_the_department_system_closes_the_loop_with_dispatch_and_verify(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example()
    said: list[str] = []
    stop = asyncio.Event()
    async with loop(database_url, nats_url, monkeypatch) as lp:
        system = asyncio.create_task(
            example.run(nats_url, "sanitation", stop=stop, say=said.append)
        )
        try:
            await lp.accept("E2E-1", "E0102", "东华门大街12号门前积存垃圾")
            dispatched = await lp.wait(ev.CaseDispatched, case_id="E2E-1")
            assert dispatched.data["dept"] == "sanitation"  # routing.yaml: E01* → sanitation

            signed = await lp.wait(ev.CaseSigned, case_id="E2E-1")
            assert signed.source == "/gridloop/handling"
            assert signed.data["actor"]["id"] == "sanitation-system"
            handled = await lp.wait(ev.CaseHandled, case_id="E2E-1")
            assert handled.data["task_id"] == dispatched.data["task_id"]
            assert handled.data["on_time"] is True and handled.data["evidence"]

            # verify gives the result to the cell's supervisor, who passes it on site.
            assigned = await lp.wait(ev.CaseVerificationAssigned, case_id="E2E-1")
            supervisor = assigned.data["supervisor_id"]
            tasks = (await rest(lp.rt["verify"], "GET", "/tasks", supervisor)).json()
            [task] = [t for t in tasks if t["case_id"] == "E2E-1"]
            verdict = await rest(
                lp.rt["verify"],
                "POST",
                f"/tasks/{task['task_id']}/verification",
                supervisor,
                json={"passed": True, "photos": ["https://evidence.example.org/check/e2e.jpg"]},
            )
            assert verdict.status_code == 200, verdict.text
            # closed at once by the pass: case.closed v2, carrying the verdict
            closed = await lp.wait(ev.CaseClosedV2, case_id="E2E-1")
            assert closed.data["verdict"]["passed"] is True
            assert closed.data["dept"] == "sanitation" and closed.data["on_time"] is True

            # The department's inbox keeps it in the history, closed.
            async def archived() -> bool:
                r = await rest(
                    lp.rt["handling"],
                    "GET",
                    "/departments/sanitation/cases",
                    "sanitation-ops",
                    params={"state": "closed"},
                )
                return any(i["state"] == "closed" for i in r.json()["items"])

            await wait_for(archived, timeout=10, what="the closed case in the history")
            # The system saw its commands answered on dispatch.sanitation.answer.
            await wait_for(
                lambda: any("answer handled E2E-1: accepted" in line for line in said),
                timeout=10,
                what=f"the answer to the result (said: {said})",
            )
            assert any("answer signed E2E-1: accepted" in line for line in said)
        finally:
            stop.set()
            await system


async def test_co_handling_units_contribute_through_their_systems_and_the_lead_reports(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example()
    said: list[str] = []
    stop = asyncio.Event()
    async with loop(database_url, nats_url, monkeypatch) as lp:
        # routing.yaml: a gas leak (E0401) goes to gas, the lead, with fire and emergency.
        systems = [
            asyncio.create_task(
                example.run(
                    nats_url, dept, stop=stop, say=said.append, delay=2.0 if dept == "gas" else 0
                )
            )
            for dept in ("gas", "fire", "emergency")
        ]
        try:
            await lp.accept("E2E-GAS", "E0401", "东华门大街12号燃气泄漏")
            dispatched = await lp.wait(ev.CaseDispatched, case_id="E2E-GAS")
            assert dispatched.data["lead"] == "gas"
            assert sorted(dispatched.data["co_handlers"]) == ["emergency", "fire"]
            handled = await lp.wait(ev.CaseHandled, case_id="E2E-GAS")
            assert handled.data["dept"] == "gas"
            parts = {c["dept"] for c in handled.data["contributions"]}
            assert parts == {"fire", "emergency"}
        finally:
            stop.set()
            await asyncio.gather(*systems)


async def test_the_kit_returns_or_asks_for_time_as_configured(
    handling: Harness, nats_url: str
) -> None:
    """The department systems on handling alone; the feed published as dispatch would."""
    # dispatch's part: the departments' feed consumers, then their messages.
    await bus.ensure_feeds(handling.js, [Feed.department("water"), Feed.department("roads")])
    example = load_example()
    stop = asyncio.Event()
    said: list[str] = []
    systems = [
        asyncio.create_task(
            example.run(
                nats_url,
                dept,
                behaviour=behaviour,
                stop=stop,
                say=said.append,
                clock=handling.clock.now,
            )
        )
        for dept, behaviour in (("water", "return"), ("roads", "extension"))
    ]
    try:
        for case_id, dept in (("KIT-RET", "water"), ("KIT-EXT", "roads")):
            await handling.accepted(case_id, "E0404")
            task_id = await handling.dispatched(case_id, dept, category="E0404")
            summary = CaseSummary(
                case_id=case_id,
                task_id=task_id,
                category_code="E0404",
                description="路面冒水",
                deadline=handling.clock.now() + timedelta(days=1),
            )
            feed = TaskAssigned(dept=dept, case=summary, sent_at=handling.clock.now())
            headers, body = to_binary(
                Envelope.of(feed, source="/gridloop/dispatch", subject=case_id)
            )
            await handling.js.publish(f"dispatch.{dept}.assigned", body, headers=headers)
        [returned] = await handling.wait(ev.CaseReturned, case_id="KIT-RET")
        assert returned.data["dept"] == "water" and returned.data["reason"]
        [asked] = await handling.wait(ev.CaseExtensionRequested, case_id="KIT-EXT")
        assert asked.data["dept"] == "roads"
        assert datetime.fromisoformat(asked.data["proposed_deadline"]) > datetime.fromisoformat(
            asked.data["deadline"]
        )
        await handling.wait(ev.CaseSigned, case_id="KIT-EXT")
    finally:
        stop.set()
        await asyncio.gather(*systems)


async def feed_assigned(handling: Harness, case_id: str, task_id: str) -> None:
    """What dispatch puts on sanitation's feed for a new task (E0102, due in a day)."""
    summary = CaseSummary(
        case_id=case_id,
        task_id=task_id,
        category_code="E0102",
        description="垃圾堆放",
        deadline=handling.clock.now() + timedelta(days=1),
    )
    feed = TaskAssigned(dept="sanitation", case=summary, sent_at=handling.clock.now())
    headers, body = to_binary(Envelope.of(feed, source="/gridloop/dispatch", subject=case_id))
    await handling.js.publish("dispatch.sanitation.assigned", body, headers=headers)


async def test_the_kit_sends_a_result_again_when_its_clock_was_ahead(
    handling: Harness, nats_url: str
) -> None:
    """A department system whose clock runs ahead of gridloop's beyond the allowed skew has
    its result refused for `completed_at`; it reads its clock again and sends the result
    once more, so the task does not stay signed for ever."""
    await bus.ensure_feeds(handling.js, [Feed.department("sanitation")])
    example = load_example()
    stop = asyncio.Event()
    said: list[str] = []

    def kit_clock() -> datetime:
        # a day ahead until handling has refused something, then right
        ahead = not any("REFUSED" in line for line in said)
        return handling.clock.now() + (timedelta(days=1) if ahead else timedelta(0))

    system = asyncio.create_task(
        example.run(nats_url, "sanitation", stop=stop, say=said.append, clock=kit_clock)
    )
    try:
        await handling.accepted("KIT-AHEAD", "E0102")
        task_id = await handling.dispatched("KIT-AHEAD", "sanitation")
        await feed_assigned(handling, "KIT-AHEAD", task_id)
        [handled] = await handling.wait(ev.CaseHandled, case_id="KIT-AHEAD")
        assert datetime.fromisoformat(handled.data["completed_at"]) <= handling.clock.now()
        refused = [line for line in said if "REFUSED" in line]
        assert refused and all("completed_at" in line for line in refused), refused
    finally:
        stop.set()
        await system


async def test_the_kit_reads_its_answers_on_its_inbox_only(
    handling: Harness, nats_url: str
) -> None:
    """`answers="inbox"`: the kit names its own inbox in each command with `answerfeed: none`,
    so its task is signed and handled on answers that never appear on its feed."""
    await bus.ensure_feeds(handling.js, [Feed.department("sanitation")])
    example = load_example()
    stop = asyncio.Event()
    said: list[str] = []
    system = asyncio.create_task(
        example.run(
            nats_url,
            "sanitation",
            stop=stop,
            say=said.append,
            clock=handling.clock.now,
            answers="inbox",
        )
    )
    try:
        await handling.accepted("KIT-INBOX", "E0102")
        task_id = await handling.dispatched("KIT-INBOX", "sanitation")
        # handling has the task before the kit hears of it: no command waits parked (a parked
        # command is answered on both)
        await handling.in_inbox("sanitation", "KIT-INBOX")
        await feed_assigned(handling, "KIT-INBOX", task_id)
        await handling.wait(ev.CaseHandled, case_id="KIT-INBOX")
        await wait_for(
            lambda: any("answer handled KIT-INBOX: accepted" in line for line in said),
            timeout=10,
            what=f"the answer to the result on the inbox (said: {said})",
        )
        assert any("answer signed KIT-INBOX: accepted" in line for line in said)
        # the feed has the task and what followed, and no answer of the kit's
        await handling.feed.poll()
        answers = handling.feed.of(None, subject="dispatch.sanitation.answer")
        assert [a for a in answers if a.data.get("case_id") == "KIT-INBOX"] == []
    finally:
        stop.set()
        await system


async def test_the_kit_stops_work_on_a_recalled_task(handling: Harness, nats_url: str) -> None:
    """撤回 while the department works on the task (signed, the result not yet due): the
    kit stops that work, so no result follows the recall; the next task is worked as usual."""
    await bus.ensure_feeds(handling.js, [Feed.department("sanitation")])
    example = load_example()
    stop = asyncio.Event()
    said: list[str] = []
    system = asyncio.create_task(
        example.run(
            nats_url, "sanitation", delay=3600, stop=stop, say=said.append, clock=handling.clock.now
        )
    )
    try:
        await handling.accepted("KIT-RECALL", "E0102")
        task_id = await handling.dispatched("KIT-RECALL", "sanitation")
        await feed_assigned(handling, "KIT-RECALL", task_id)
        await handling.wait(ev.CaseSigned, case_id="KIT-RECALL")
        summary = CaseSummary(
            case_id="KIT-RECALL",
            task_id=task_id,
            category_code="E0102",
            description="垃圾堆放",
            deadline=handling.clock.now() + timedelta(days=1),
        )
        recall = TaskRecalled(
            dept="sanitation", case=summary, sent_at=handling.clock.now(), reason="派遣错误"
        )
        headers, body = to_binary(
            Envelope.of(recall, source="/gridloop/dispatch", subject="KIT-RECALL")
        )
        await handling.js.publish("dispatch.sanitation.recalled", body, headers=headers)
        await wait_for(
            lambda: any("stopped work on KIT-RECALL: recalled" in line for line in said),
            timeout=10,
            what=f"the work on the recalled task stopped (said: {said})",
        )
        assert not any(line.startswith("[sanitation] handled") for line in said), said
    finally:
        stop.set()
        await system


async def test_the_kit_asks_again_when_handling_had_not_heard_of_its_dispatch(
    handling: Harness, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed can bring a task before handling has heard of its dispatch (handling catching
    up after an outage): the sign waits parked, and if that wait runs out it is refused as
    `not-found`. The kit asks again until handling knows the task, so the case does not stay
    dispatched for ever."""
    await bus.ensure_feeds(handling.js, [Feed.department("sanitation")])
    example = load_example()
    monkeypatch.setattr(example, "NOT_FOUND_RETRY_S", 0.2)
    stop = asyncio.Event()
    said: list[str] = []
    system = asyncio.create_task(
        example.run(nats_url, "sanitation", stop=stop, say=said.append, clock=handling.clock.now)
    )
    try:
        await handling.accepted("KIT-EARLY", "E0102")
        await feed_assigned(handling, "KIT-EARLY", "T-KIT-EARLY")

        async def refused_as_unknown() -> bool:
            # the park's wait runs out (HANDLING_PARK_S) while no dispatch has come
            handling.clock.advance(timedelta(seconds=301))
            return any("REFUSED" in line and "KIT-EARLY" in line for line in said)

        await wait_for(refused_as_unknown, timeout=20, what="the sign refused as not found")
        assert not handling.emitted(ev.CaseSigned, case_id="KIT-EARLY")
        await handling.dispatched("KIT-EARLY", task_id="T-KIT-EARLY")
        [signed] = await handling.wait(ev.CaseSigned, case_id="KIT-EARLY")
        assert signed.data["task_id"] == "T-KIT-EARLY"
        await handling.wait(ev.CaseHandled, case_id="KIT-EARLY")
    finally:
        stop.set()
        await system
