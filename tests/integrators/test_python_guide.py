"""docs/integrate.md's Python programs, run as written against the five services on a NATS with
the users and permissions generated from the demo city (only the server's address is this
stack's): the sanitation department's system, then a video detection and a 12345 call.

The detection becomes a case and is dispatched; the video program hears it on its notify
feed and ends by itself. The call is heard as waiting for its on-site confirmation, and the
hotline program ends by itself. The department's program signs for and handles the detection's
task, both commands answered accepted on its inbox; with handling away, it asks again until
handling is back."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import Any

import nats
import pytest
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for
from nats.js import JetStreamContext

from .conftest import ROOT

GUIDE = ROOT / "docs" / "integrate.md"
DEMO_NATS = "nats://127.0.0.1:4222"


def programs() -> dict[str, str]:
    """The guide's Python programs by the user each logs in as."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)
    found: dict[str, str] = {}
    for code in blocks:
        user = re.search(r'user=f?"([^"]+)"', code)
        assert user is not None, code
        found[user.group(1).replace("{DEPT}", "sanitation")] = code
    assert set(found) == {"src-12345", "src-video-ai", "dept-sanitation"}, set(found)
    return found


def loaded(code: str, nats_url: str, said: list[str]) -> Callable[[], Coroutine[Any, Any, None]]:
    """The program's `main`, on this stack's NATS, its `print` into `said`."""
    assert code.count(DEMO_NATS) == 1 and code.rstrip().endswith("asyncio.run(main())"), code
    code = code.replace(DEMO_NATS, nats_url).rstrip().removesuffix("asyncio.run(main())")

    def said_line(*args: Any) -> None:
        said.append(" ".join(str(a) for a in args))

    namespace: dict[str, Any] = {"__name__": "guide", "print": said_line}
    exec(compile(code, str(GUIDE), "exec"), namespace)  # the guide's own code
    main: Callable[[], Coroutine[Any, Any, None]] = namespace["main"]
    return main


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every connection the programs open, to close when the test ends."""
    opened: list[Any] = []
    connect = nats.connect

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        nc = await connect(*args, **kwargs)
        opened.append(nc)
        return nc

    monkeypatch.setattr(nats, "connect", recorded)
    return opened


async def ended(program: Coroutine[Any, Any, None], said: list[str], timeout: float) -> None:
    """The program run until it ends by itself; one still running after `timeout` seconds
    fails the test with what it printed. Not `asyncio.wait_for`: that waits for the
    cancelled program to end, and a program cancelled inside nats-py's fetch can see the
    cancellation as the fetch's own timeout and ask again, so the test hung until
    pytest's timeout ended it, telling nothing."""
    task = asyncio.create_task(program)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        pytest.fail(f"still running after {timeout} s; it printed {said}")
    task.result()


async def stopped(program: asyncio.Task[None], connections: list[Any]) -> None:
    """A program that runs until stopped (the department's), stopped: its connections closed
    first, so it ends on the closed connection where it waits in a fetch. A cancellation
    alone can be taken inside nats-py for the fetch's own timeout and asked again (see
    `ended`), and awaiting the program then hung the test until pytest's timeout, hiding what
    had failed."""
    for nc in connections:
        if not nc.is_closed:
            await nc.close()
    program.cancel()
    await asyncio.wait({program}, timeout=5)
    if program.done() and not program.cancelled():
        program.exception()  # ended on the closed connection: retrieved, not logged


def handled_line(department: asyncio.Task[None], said: list[str]) -> Callable[[], list[str] | None]:
    """The department program's `handled` lines, once there are any (while it still runs)."""

    def handled() -> list[str] | None:
        assert not department.done(), department
        lines = [line for line in said if line.startswith("handled ")]
        return lines or None

    return handled


async def test_the_guides_python_programs_run_as_written(
    stack: Stack, connections: list[Any]
) -> None:
    assert stack.nats_url
    code = programs()
    dept_said: list[str] = []
    department = asyncio.create_task(loaded(code["dept-sanitation"], stack.nats_url, dept_said)())
    try:
        video_said: list[str] = []
        await ended(loaded(code["src-video-ai"], stack.nats_url, video_said)(), video_said, 90)
        # gridloop.case.status.v1 dispatched: the last line, on which the program ended
        assert video_said and video_said[-1].endswith(" dispatched"), video_said

        call_said: list[str] = []
        await ended(loaded(code["src-12345"], stack.nats_url, call_said)(), call_said, 90)
        assert call_said[0].startswith("stored in INTAKE "), call_said
        last = call_said[-1]
        assert last.startswith("gridloop.case.status.v1 "), call_said
        assert "'status': 'pending_confirmation'" in last, call_said

        done = await wait_for(
            handled_line(department, dept_said),
            timeout=90,
            what=f"the department handles: {dept_said}",
        )
        case_id = done[0].split()[1]
        assert f"signed {case_id} True" in dept_said, dept_said
        assert done[0].startswith(f"handled {case_id} True"), dept_said
    finally:
        await stopped(department, connections)


async def test_the_guides_department_asks_again_while_handling_is_away(
    stack: Stack, connections: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With handling stopped, the department's sign-in goes unanswered: the program sends the
    same command again in a new message (its own ce-id), and again, and once handling is back
    each is answered with the one answer, and the program goes on to handle the task. The
    program as written, but waiting 2 s for an answer instead of 30."""
    assert stack.nats_url
    code = programs()
    waiting = "replies.next_msg(timeout=30)"
    assert code["dept-sanitation"].count(waiting) == 1
    department_code = code["dept-sanitation"].replace(waiting, "replies.next_msg(timeout=2)")
    sent: list[tuple[str, str]] = []  # (subject, ce-id) of what the programs published
    publish = JetStreamContext.publish

    async def recorded(self: JetStreamContext, subject: str, *args: Any, **kwargs: Any) -> Any:
        sent.append((subject, (kwargs.get("headers") or {}).get("ce-id", "")))
        return await publish(self, subject, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext, "publish", recorded)

    await asyncio.to_thread(stack.stop_service, "handling")
    dept_said: list[str] = []
    department = asyncio.create_task(loaded(department_code, stack.nats_url, dept_said)())
    try:
        # another camera: at the first test's, the detection would join its case
        camera = '"camera_id": "cam-0002"'
        assert code["src-video-ai"].count(camera) == 1
        video = code["src-video-ai"].replace(camera, '"camera_id": "cam-0001"')
        video_said: list[str] = []
        await ended(loaded(video, stack.nats_url, video_said)(), video_said, 90)
        assert video_said and video_said[-1].endswith(" dispatched"), video_said

        def asked_again() -> list[str] | None:
            assert not department.done(), department
            ids = [i for s, i in sent if s == "handling.sanitation.signed"]
            return ids if len(ids) >= 3 else None

        signed = await wait_for(asked_again, timeout=60, what=f"sign-ins sent: {sent}")
        # one command, each message an id of its own
        assert signed[1:3] == [f"{signed[0]}#1", f"{signed[0]}#2"], signed
        assert not [line for line in dept_said if line.startswith("signed ")], dept_said

        stack.start_service("handling")
        await asyncio.to_thread(stack.wait_ready, 120, ("handling",))
        done = await wait_for(
            handled_line(department, dept_said),
            timeout=90,
            what=f"the department handles once handling is back: {dept_said}",
        )
        case_id = done[0].split()[1]
        assert dept_said.count(f"signed {case_id} True") == 1, dept_said
        assert done[0].startswith(f"handled {case_id} True"), dept_said
    finally:
        await stopped(department, connections)
        if stack.procs["handling"].poll() is not None:  # failed before handling came back
            stack.start_service("handling")
            await asyncio.to_thread(stack.wait_ready, 120, ("handling",))
