"""docs/integrate.md's Python programs, run as written against the five services on a NATS with
the users and permissions generated from the demo city (only the server's address is this
stack's): the sanitation department's system, then a video detection and a 12345 call.

The detection becomes a case and is dispatched; the video program hears it on its notify
feed and ends by itself. The call is heard as waiting for its on-site confirmation, and the
hotline program ends by itself. The department's program signs for and handles the detection's
task, both commands answered accepted on its inbox."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import Any

import nats
import pytest
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for

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


async def test_the_guides_python_programs_run_as_written(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.nats_url
    code = programs()
    # the department's program runs until stopped: its connection is closed afterwards
    connections: list[Any] = []
    connect = nats.connect

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        nc = await connect(*args, **kwargs)
        connections.append(nc)
        return nc

    monkeypatch.setattr(nats, "connect", recorded)

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

        def handled() -> list[str] | None:
            assert not department.done(), department
            lines = [line for line in dept_said if line.startswith("handled ")]
            return lines or None

        done = await wait_for(handled, timeout=90, what=f"the department handles: {dept_said}")
        case_id = done[0].split()[1]
        assert f"signed {case_id} True" in dept_said, dept_said
        assert done[0].startswith(f"handled {case_id} True"), dept_said
    finally:
        # The connections closed first: the department's program, waiting in a fetch, then
        # ends on the closed connection. A cancellation alone can be taken inside nats-py
        # for the fetch's own timeout and asked again (see `ended`), and awaiting the
        # program then hung the test until pytest's timeout, hiding what had failed.
        for nc in connections:
            if not nc.is_closed:
                await nc.close()
        department.cancel()
        await asyncio.wait({department}, timeout=5)
        if department.done() and not department.cancelled():
            department.exception()  # ended on the closed connection: retrieved, not logged
