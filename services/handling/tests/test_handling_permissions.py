"""Handling and the department integration kit under the NATS permissions `make run` and
deploy/ use (tools/gen_nats_config.py for the demo city): handling logs in as `handling`,
the department's system as `dept-sanitation`, and still every command is executed and
answered — on `dispatch.sanitation.answer` and on a reply subject in the department's own
inbox space."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import nats
import orjson
import pytest
from gridloop_contracts import Envelope, to_binary
from gridloop_contracts import cases as ev
from gridloop_contracts.department import CaseSummary, TaskAssigned, TaskOverdueWithdrawn
from gridloop_devkit.devstack import LocalNats
from gridloop_devkit.testing import EventTap, running, settings_for, wait_for
from gridloop_handling.bootstrap import definition
from gridloop_handling.settings import HandlingSettings
from gridloop_runtime import bus
from gridloop_runtime.bus import Feed
from gridloop_runtime.clock import FakeClock
from nats.aio.client import Client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DEMO_CITY = ROOT / "data" / "demo-city"
# Monday 23 November 2026, 10:00 in Beijing.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses with string annotations look their module up while it executes.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def secured_nats(tmp_path: Path) -> Any:
    gen = load("handling_gen_nats_config", ROOT / "tools" / "gen_nats_config.py")
    config = tmp_path / "nats.conf"
    config.write_text(
        gen.render_local_conf(gen.read_city(DEMO_CITY), DEMO_CITY, store_dir=str(tmp_path / "js")),
        encoding="utf-8",
    )
    server = LocalNats(tmp_path, config_file=config, log_file=tmp_path / "nats.log").start()
    yield server
    server.stop()


async def login(url: str, user: str, **kw: Any) -> Client:
    return await nats.connect(url, user=user, password=f"gridloop-dev-{user}", **kw)


@pytest.fixture
async def as_dispatch(secured_nats: LocalNats) -> AsyncIterator[Client]:
    nc = await login(secured_nats.url, "dispatch")
    yield nc
    await nc.close()


async def test_the_kit_and_direct_replies_work_under_the_generated_permissions(
    secured_nats: LocalNats,
    as_dispatch: Client,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for(
        "handling",
        database_url,
        secured_nats.url,
        HandlingSettings,
        city_data_dir=str(DEMO_CITY),
        nats_user="handling",
        nats_password="gridloop-dev-handling",
    )
    assert isinstance(settings, HandlingSettings)
    definition_, state = definition(settings)
    clock = FakeClock(T0)
    example = load("handling_department_system", HERE.parent / "examples" / "department_system.py")
    stop = asyncio.Event()
    said: list[str] = []
    async with running(settings, definition_, clock=clock, state=state):
        js = as_dispatch.jetstream()
        cases = await EventTap(js, ("CASES", "case.>")).open()
        # dispatch keeps the department's feed consumer; the department only binds to it.
        await bus.ensure_feeds(js, [Feed.department("sanitation")])

        async def publish(subject: str, event: Any) -> None:
            env = Envelope.of(event, source="/gridloop/dispatch", subject="P-1", time=clock.now())
            headers, body = to_binary(env)
            await js.publish(subject, body, headers=headers)

        # dispatch's part: the task and the department's feed.
        deadline = T0 + timedelta(days=1)
        await publish(
            "case.dispatched",
            ev.CaseDispatched(
                case_id="P-1",
                occurred_at=T0,
                dept="sanitation",
                task_id="T-P-1",
                deadline=deadline,
                category_code="E0102",
            ),
        )
        summary = CaseSummary(
            case_id="P-1",
            task_id="T-P-1",
            category_code="E0102",
            description="垃圾",
            deadline=deadline,
        )
        system = asyncio.create_task(
            example.run(
                secured_nats.url,
                "sanitation",
                stop=stop,
                say=said.append,
                user="dept-sanitation",
                password="gridloop-dev-dept-sanitation",
                clock=clock.now,
            )
        )
        try:
            await publish(
                "dispatch.sanitation.assigned",
                TaskAssigned(dept="sanitation", case=summary, sent_at=T0),
            )
            await cases.wait(ev.CaseHandled, timeout=15)
            await wait_for(
                lambda: any("answer handled P-1: accepted" in s for s in said),
                timeout=10,
                what=f"the answer on dispatch.sanitation.answer ({said})",
            )
            # 超期撤回 on the feed: the kit says so and goes on (nothing to do about it)
            await publish(
                "dispatch.sanitation.overdue_withdrawn",
                TaskOverdueWithdrawn(
                    dept="sanitation",
                    case=summary,
                    sent_at=T0,
                    note="超期通知撤回：处置结果已在期限内反馈 / the overdue notice is void",
                ),
            )
            await wait_for(
                lambda: any("on time after all for P-1: 超期通知撤回" in s for s in said),
                timeout=10,
                what=f"the withdrawal on the feed ({said})",
            )
        finally:
            stop.set()
            await system

        # A direct reply, to a subject in the department's own inbox space.
        dept = await login(
            secured_nats.url, "dept-sanitation", inbox_prefix="_INBOX.dept-sanitation"
        )
        try:
            inbox = dept.new_inbox()
            sub = await dept.subscribe(inbox)
            headers = {
                "ce-specversion": "1.0",
                "ce-id": "direct-1",
                "ce-source": "/departments/sanitation",
                "ce-type": "gridloop.handling.progress.v1",
                "ce-time": clock.now().isoformat(),
                "ce-replyto": inbox,
                "content-type": "application/json",
            }
            data = {"command_id": "direct-1", "case_id": "P-1", "dept": "sanitation", "by": "x"}
            await dept.jetstream().publish(
                "handling.sanitation.progress",
                orjson.dumps({**data, "note": "补充"}),
                headers=headers,
            )
            answer = orjson.loads((await sub.next_msg(timeout=10)).data)
            # The result is in: the note is refused, and the refusal reaches the department.
            assert answer["accepted"] is False and answer["errors"][0]["code"] == "already-handled"
        finally:
            await dept.close()
