"""The simulated actors of the closed loop in a process of their own: the sanitation
department's system (the department kit, services/handling/examples/department_system.py,
signing and reporting every task) and the supervisors passing every verification. Apart from
the load generator, so the CPU of each is measured on its own (bench/cpu.py).

    python -m bench.actors --nats nats://... --verify http://...

prints `ready` once the department's feed consumer exists and the supervisors listen, works
until SIGTERM/SIGINT (or until its stdin closes: the bench that started it is gone) and then
prints its counters as one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats
import uvloop
from gridloop_devkit.testing import load_module

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "services" / "handling" / "examples" / "department_system.py"
PHOTO = "https://evidence.example.org/bench/verified.jpg"
DEPT = "sanitation"
# The department system reads handling's answers on its own inbox, not on its feed (the kit's
# `--answers inbox`: each command names the inbox with `answerfeed: none`); BENCH_ANSWERS=feed
# measures the other way.
ANSWERS = os.environ.get("BENCH_ANSWERS", "inbox")


async def supervisors(
    verify_url: str, stop: asyncio.Event, counter: dict[str, int], nc: Any = None
) -> None:
    """Supervisors passing every verification task. With a NATS connection each hears of a
    task as it is assigned (their app's notice, case.verification_assigned, which names the
    task) and passes it, and a sweep of everybody's open tasks every few seconds catches
    anything missed; without one they only sweep, continuously. `verify_url`: one base URL,
    or several comma-separated (the replicas of verify), each request to the next in turn."""
    urls = itertools.cycle(verify_url.split(","))
    heard: asyncio.Queue[tuple[str, str, str | None]] = asyncio.Queue()
    if nc is not None:

        async def on_assigned(msg: Any) -> None:
            data = json.loads(msg.data)
            if data.get("purpose", "verification") == "verification":
                heard.put_nowait(
                    (data["supervisor_id"], data["case_id"], data.get("verification_task_id"))
                )

        await nc.subscribe("case.verification_assigned", cb=on_assigned)
    # aiohttp, not httpx: the supervisors' phones are not the system, and httpx's pool took
    # about 4 ms of CPU per closed loop on the machine the services share (bench/README.md)
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        # the tasks answered or being answered: a person passes a task once; the sweep
        # (which lists open tasks while their notices' answers are on their way) does not
        # send them again, so verify's work per loop is one verdict, as in the field
        answered: set[str] = set()

        async def passed(t: dict[str, Any]) -> None:
            if t["task_id"] in answered:
                return
            answered.add(t["task_id"])
            try:
                async with http.post(
                    f"{next(urls)}/tasks/{t['task_id']}/verification",
                    json={"passed": True, "command_id": t["task_id"], "photos": [PHOTO]},
                    headers={"X-User": t["supervisor_id"]},
                ) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError):  # as a phone would: the next sweep
                answered.discard(t["task_id"])  # sends it again
                counter["transport_errors"] = counter.get("transport_errors", 0) + 1
                return
            if status < 300:
                counter["verified"] += 1
            else:
                answered.discard(t["task_id"])
                counter["verify_errors"] = counter.get("verify_errors", 0) + 1

        async def listed(user: str, **params: Any) -> list[dict[str, Any]]:
            params |= {"status": "open", "purpose": "verification"}
            try:
                async with http.get(
                    next(urls) + "/tasks", params=params, headers={"X-User": user}
                ) as r:
                    if r.status != 200:
                        counter["list_errors"] = counter.get("list_errors", 0) + 1
                        return []
                    tasks: list[dict[str, Any]] = await r.json()
            except (aiohttp.ClientError, TimeoutError):
                counter["transport_errors"] = counter.get("transport_errors", 0) + 1
                return []
            return tasks

        async def on_notice(supervisor: str, case_id: str, task_id: str | None) -> None:
            if task_id:  # the notice names the task: answer it at once
                await passed({"task_id": task_id, "supervisor_id": supervisor})
                return
            for t in await listed(supervisor):  # a notice from before tasks were named
                if t["case_id"] == case_id:
                    await passed(t)

        sweep_every = 5.0 if nc is not None else 0.05
        next_sweep = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_sweep:
                tasks = await listed("admin", limit=500)
                await asyncio.gather(*(passed(t) for t in tasks if t.get("supervisor_id")))
                next_sweep = time.monotonic() + sweep_every
            notices: list[tuple[str, str, str | None]] = []
            with contextlib.suppress(TimeoutError):
                notices.append(await asyncio.wait_for(heard.get(), timeout=0.2))
            while not heard.empty() and len(notices) < 32:
                notices.append(heard.get_nowait())
            await asyncio.gather(*(on_notice(*notice) for notice in notices))


async def work(nats_url: str, verify_url: str, stop: asyncio.Event) -> dict[str, int]:
    """The department kit and the supervisors until `stop`; their counters."""
    nc = await nats.connect(nats_url.split(","))  # one server, or every node of a cluster
    counter = {"verified": 0}
    kit = load_module(KIT, "department_system")
    tasks = [
        asyncio.create_task(
            kit.run(
                nats_url, DEPT, behaviour="handle", stop=stop, say=lambda _: None, answers=ANSWERS
            )
        ),
        asyncio.create_task(supervisors(verify_url, stop, counter, nc)),
    ]
    try:
        js = nc.jetstream()
        for _ in range(600):  # the feed consumer dispatch keeps for the department is there
            with contextlib.suppress(Exception):
                await js.consumer_info("DISPATCH", f"dept-{DEPT}")
                break
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        await stop.wait()
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        counter["actor_failures"] = len(failed)
        print(f"actors: {failed!r}", file=sys.stderr)
    return counter


def main() -> int:
    p = argparse.ArgumentParser(description="The bench's department kit and supervisors.")
    p.add_argument("--nats", required=True)
    p.add_argument(
        "--verify", required=True, help="the verify service's base URL (comma-separated: replicas)"
    )
    args = p.parse_args()

    async def go() -> dict[str, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def watch_stdin() -> None:  # EOF: whoever started us is gone
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read would hold
            # its lock at interpreter shutdown
            with contextlib.suppress(OSError):
                while os.read(0, 4096):
                    pass
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, daemon=True).start()
        return await work(args.nats, args.verify, stop)

    # uvloop, as the services run: the simulated people take less of the machine they share
    print(json.dumps(uvloop.run(go())), flush=True)
    return 0


class Actors:
    """The actors process as the load generator sees it."""

    def __init__(self, nats_url: str, verify_url: str) -> None:
        self.args = ["--nats", nats_url, "--verify", verify_url]
        self.proc: asyncio.subprocess.Process | None = None
        self.counter: dict[str, int] = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 60) -> Actors:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.actors",
            *self.args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if line.strip() != b"ready":
            await self.stop()
            raise RuntimeError(f"bench.actors did not start: {line!r}")
        return self

    async def stop(self, timeout: float = 60) -> dict[str, int]:
        proc = self.proc
        if proc is None:
            return self.counter
        self.proc = None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
        for line in reversed(out.decode(errors="replace").splitlines()):
            if line.startswith("{"):
                self.counter = json.loads(line)
                break
        return self.counter


if __name__ == "__main__":
    raise SystemExit(main())
