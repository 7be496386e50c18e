"""The bus contract with a second client stack: the Node kits (nats.js 2 and the CloudEvents JS
SDK, at the clients' default settings) against the five services on a NATS with the users
and permissions generated from the demo city.

A video analytics platform (`src-video-ai`, structured CloudEvents) and the 12345 hotline
(`src-12345`, binary mode) send reports with `services/intake/examples/node/integrator.mjs`;
each report becomes a case and its status changes arrive on the sender's notify feed.
The sanitation department's system (`dept-sanitation`,
`services/handling/examples/node/department_system.mjs`) binds its feed, signs for each of the
four tasks and reports its result, and gets every answer on its `ce-replyto` inbox; a task
recalled while it works on it is worked on no more."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from gridloop_city import City, load_city
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for

from .conftest import ROOT

# The async tests share the module's stack, and so its event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")
DEPT = "sanitation"
HOTLINE_CATEGORY = "E0104"  # 暴露垃圾: sanitation's, confirmed on site when phoned in
VIDEO_CATEGORY = "E0102"  # 积存垃圾渣土: sanitation's, detectable, auto-accepted when sure
# What a status line of the integrator kit prints: `notify <ce-type> <data as JSON>`.
NOTIFY = re.compile(r"^notify (\S+) (\{.*\})$")


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


class Script:
    """One of the kits' scripts running under Node; what it prints goes to a file."""

    def __init__(self, kit: Path, script: str, args: list[str], log: Path) -> None:
        self.name, self.log = script, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["node", script, *args],
                cwd=kit,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NODE_NO_WARNINGS": "1"},
            )

    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def notified(self) -> list[tuple[str, dict[str, Any]]]:
        """The integrator's answers from its notify feed: (CloudEvents type, data)."""
        found = (NOTIFY.match(line) for line in self.lines())
        return [(m.group(1), json.loads(m.group(2))) for m in found if m]

    async def finished(self, timeout: float) -> int:
        await wait_for(
            lambda: self.proc.poll() is not None,
            timeout=timeout,
            interval=0.2,
            what=f"{self.name} to finish; it said:\n" + "\n".join(self.lines()[-40:]),
        )
        return int(self.proc.returncode)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Scripts:
    """Start the kits' scripts against the stack, each logged in as its NATS user."""

    def __init__(self, stack: Stack, kits: dict[str, Path]) -> None:
        self.stack, self.kits = stack, kits
        self.running: list[Script] = []
        self.http = httpx.AsyncClient(timeout=10)

    def start(self, kit: str, script: str, user: str, *args: str) -> Script:
        log = self.stack.state_dir / f"{user}-{uuid.uuid4().hex[:6]}.log"
        login = ["--nats", self.stack.nats_url or "", "--user", user]
        login += ["--password", f"gridloop-dev-{user}"]
        s = Script(self.kits[kit], script, [*login, *args], log)
        self.running.append(s)
        return s

    async def department(self, *args: str) -> Script:
        """The department's Node system, once it has bound its feed."""
        script = self.start(
            "department", "department_system.mjs", f"dept-{DEPT}", "--dept", DEPT, *args
        )
        await wait_for(
            lambda: any(f"bound to dept-{DEPT} on DISPATCH" in line for line in script.lines()),
            timeout=30,
            what=f"the department's system bound to its feed: {script.lines()}",
        )
        return script

    async def dispatched_detections(self, detections: list[dict[str, Any]]) -> Script:
        """Video analytics (structured mode) sends the detections and waits until each case
        is dispatched; the finished script."""
        video = self.start(
            "integrator",
            "integrator.mjs",
            "src-video-ai",
            *("--source", "video-ai", "--channel", "video", "--structured"),
            *("--file", self.reports(detections), "--until", "dispatched"),
        )
        assert await video.finished(timeout=90) == 0, video.lines()
        return video

    def reports(self, reports: list[dict[str, Any]]) -> str:
        path = self.stack.state_dir / f"reports-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(reports, ensure_ascii=False), encoding="utf-8")
        return str(path)

    async def get(self, service: str, path: str, user: str, **params: Any) -> Any:
        r = await self.http.get(
            self.stack.url(service) + path, headers={"X-User": user}, params=params
        )
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    async def post(self, service: str, path: str, body: dict[str, Any], user: str) -> Any:
        r = await self.http.post(
            self.stack.url(service) + path, headers={"X-User": user}, json=body
        )
        assert r.status_code < 300, (path, r.status_code, r.text)
        return r.json()

    async def confirm(self, case_id: str) -> None:
        """The cell's supervisor confirms a phoned-in problem on site (核实)."""

        async def task() -> dict[str, Any] | None:
            tasks = await self.get("verify", "/tasks", "admin", status="open")
            found = [t for t in tasks if t["case_id"] == case_id and t["supervisor_id"]]
            return found[0] if found else None

        t: dict[str, Any] = await wait_for(task, timeout=30, what=f"confirmation of {case_id}")
        body = {"confirmed": True}
        await self.post("verify", f"/tasks/{t['task_id']}/confirmation", body, t["supervisor_id"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scripts(stack: Stack, node_kits: dict[str, Path]) -> AsyncIterator[Scripts]:
    s = Scripts(stack, node_kits)
    try:
        yield s
    finally:
        for script in s.running:
            script.stop()
        await s.http.aclose()


APART_M = 500.0  # far beyond the demo city's duplicate distance: no two reports merge


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance between two (lat, lon) points, near enough for a district."""
    dy = (a[0] - b[0]) * 111_320.0
    dx = (a[1] - b[1]) * 111_320.0 * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


def apart(points: list[tuple[float, float]], p: tuple[float, float]) -> bool:
    return all(metres(p, q) > APART_M for q in points)


def places(city: City, category: str, n: int) -> list[dict[str, float]]:
    """`n` points in cells with a supervisor, where `category` is taken and goes to the
    department under test, far apart (so no two reports are one problem)."""
    out: list[tuple[float, float]] = []
    for cell in sorted(city.supervisors):
        route = city.route(category, cell)
        if not city.may_accept(category, cell) or route is None or route.dept != DEPT:
            continue
        part = next((p for p in city.parts.values() if p.cell_code == cell), None)
        if part is not None and apart(out, (part.lat, part.lon)):
            out.append((part.lat, part.lon))
        if len(out) == n:
            return [{"lat": lat, "lon": lon} for lat, lon in out]
    raise AssertionError(f"the demo city has no {n} cells for {category}")


def cameras(city: City, n: int) -> list[str]:
    """`n` cameras of video-ai, far apart, looking at cells where the detection goes to the
    department."""
    found: list[str] = []
    seen: list[tuple[float, float]] = []
    for c in sorted(city.cameras.values(), key=lambda c: c.camera_id):
        route = city.route(VIDEO_CATEGORY, c.cell_code)
        if (
            c.source == "video-ai"
            and city.may_accept(VIDEO_CATEGORY, c.cell_code)
            and route is not None
            and route.dept == DEPT
            and apart(seen, (c.lat, c.lon))
        ):
            found.append(c.camera_id)
            seen.append((c.lat, c.lon))
    assert len(found) >= n, found
    return found[:n]


def case_ids(script: Script, external_ids: list[str]) -> dict[str, str]:
    """The case each report became, from the status lines its sender heard."""
    out = {}
    for ce_type, data in script.notified():
        assert ce_type == "gridloop.case.status.v1", (ce_type, data)
        if data.get("external_id") in external_ids:
            out[data["external_id"]] = data["case_id"]
    return out


def test_the_kits_use_the_clients_defaults() -> None:
    """No switched-off API check, no consumer of their own: what a newcomer would write."""
    for script in (
        ROOT / "services/handling/examples/node/department_system.mjs",
        ROOT / "services/intake/examples/node/integrator.mjs",
    ):
        text = script.read_text(encoding="utf-8")
        assert "jetstreamManager()" in text and "checkAPI" not in text, script
        assert "consumers.get(" in text and "consumers.add(" not in text, script


@in_module_loop
async def test_node_department_and_integrators_run_the_loop_under_the_generated_permissions(
    scripts: Scripts, city: City
) -> None:
    # The department's system, until it has had four results accepted.
    department = await scripts.department("--results", "4")

    # Video analytics, structured mode: two sure detections are accepted and dispatched.
    tag = uuid.uuid4().hex[:6]
    detections: list[dict[str, Any]] = [
        {
            "external_id": f"det-{tag}-{i}",
            "camera_id": camera,
            "category_code": VIDEO_CATEGORY,
            "confidence": 0.95,
        }
        for i, camera in enumerate(cameras(city, 2))
    ]
    video = await scripts.dispatched_detections(detections)
    video_cases = case_ids(video, [str(d["external_id"]) for d in detections])
    assert len(video_cases) == 2, video.lines()

    # The hotline, binary mode: two calls, confirmed on site before they become cases.
    calls: list[dict[str, Any]] = [
        {
            "external_id": f"call-{tag}-{i}",
            "description": "人行道上有暴露垃圾",
            "location": where,
            "category_code": HOTLINE_CATEGORY,
            "reporter": {"name": "张三", "phone": "13812345678"},
        }
        for i, where in enumerate(places(city, HOTLINE_CATEGORY, 2))
    ]
    hotline = scripts.start(
        "integrator",
        "integrator.mjs",
        "src-12345",
        *("--source", "12345", "--channel", "hotline"),
        *("--file", scripts.reports(calls), "--until", "handled,verifying"),
    )
    call_ids = [str(c["external_id"]) for c in calls]

    def both_cases() -> dict[str, str] | None:
        found = case_ids(hotline, call_ids)
        return found if len(found) == 2 else None

    hotline_cases = await wait_for(
        both_cases,
        timeout=60,
        what=f"both calls' cases on notify.12345: {hotline.lines()}",
    )
    for case_id in hotline_cases.values():
        case = await scripts.get("intake", f"/cases/{case_id}", "op-01")
        assert case["status"] == "pending_confirmation", case
        await scripts.confirm(case_id)

    # The department signed for and handled all four, and heard each answer on its inbox.
    assert await department.finished(timeout=120) == 0, department.lines()
    said = department.lines()
    assert not [line for line in said if "REFUSED" in line or "failed" in line], said
    for case_id in [*video_cases.values(), *hotline_cases.values()]:
        for action in ("signed", "handled"):
            assert f"[{DEPT}] answer {action} {case_id}: accepted" in said, (case_id, said)
        case = await scripts.get("intake", f"/cases/{case_id}", "op-01")
        assert case["status"] in ("handled", "verifying"), case

    # ... and the hotline heard its calls' cases through to the result.
    assert await hotline.finished(timeout=60) == 0, hotline.lines()
    heard = {
        (data["external_id"], data["status"])
        for _, data in hotline.notified()
        if data.get("external_id") in call_ids
    }
    for ext in call_ids:
        assert (ext, "pending_confirmation") in heard, heard
        assert {(ext, "handled"), (ext, "verifying")} & heard, heard


@in_module_loop
async def test_the_node_department_stops_work_on_a_recalled_task(
    scripts: Scripts, city: City
) -> None:
    """撤回 while the department's Node system works on the task (signed, its result an hour
    away): the kit aborts that work, so no result follows the recall."""
    department = await scripts.department("--delay", "3600")
    # a camera of its own (a detection at a camera with an open case folds into that case)
    camera = cameras(city, 3)[2]
    ext = f"det-recall-{uuid.uuid4().hex[:6]}"
    detection = {
        "external_id": ext,
        "camera_id": camera,
        "category_code": VIDEO_CATEGORY,
        "confidence": 0.95,
    }
    video = await scripts.dispatched_detections([detection])
    case_id = case_ids(video, [ext])[ext]
    await wait_for(
        lambda: any(f"[{DEPT}] answer signed {case_id}: accepted" in x for x in department.lines()),
        timeout=30,
        what=f"the department signed for {case_id}: {department.lines()}",
    )
    await scripts.post("dispatch", f"/cases/{case_id}/recall", {"reason": "派遣错误"}, "disp-01")
    await wait_for(
        lambda: any(f"stopped work on {case_id}: recalled" in x for x in department.lines()),
        timeout=30,
        what=f"the work on the recalled task stopped: {department.lines()}",
    )
    department.stop()
    assert not any("handled" in x and case_id in x for x in department.lines()), department.lines()


@in_module_loop
async def test_a_malformed_report_from_node_is_answered_naming_the_field(
    scripts: Scripts,
) -> None:
    ext = f"nowhere-{uuid.uuid4().hex[:6]}"
    nowhere = [{"external_id": ext, "description": "有垃圾", "category_code": HOTLINE_CATEGORY}]
    hotline = scripts.start(
        "integrator",
        "integrator.mjs",
        "src-12345",
        *("--source", "12345", "--file", scripts.reports(nowhere)),
    )
    assert await hotline.finished(timeout=60) == 0, hotline.lines()
    rejected = [d for t, d in hotline.notified() if t == "gridloop.report.rejected.v1"]
    assert [d["external_id"] for d in rejected] == [ext], hotline.lines()
    assert rejected[0]["errors"][0]["field"] == "data.location", rejected


def test_the_guides_snippets_parse_and_keep_to_the_permissions(
    node_kits: dict[str, Path], tmp_path: Path
) -> None:
    """docs/integrate.md: each Node and Python program parses, binds its feed rather than
    creating one, and leaves the clients' API check on (the Node kits above run here, the
    Python programs as written in test_python_guide.py)."""
    guide = (ROOT / "docs" / "integrate.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(js|python)\n(.*?)```", guide, flags=re.S)
    assert [lang for lang, _ in blocks].count("js") == 3, blocks
    assert [lang for lang, _ in blocks].count("python") == 3, blocks
    for i, (lang, code) in enumerate(blocks):
        assert "checkAPI" not in code and "add_consumer" not in code
        assert "consumers.add" not in code and "pull_subscribe(" not in code
        assert "inboxPrefix" in code or "inbox_prefix" in code, code
        if lang == "python":
            compile(code, f"integrate.md block {i}", "exec")
            continue
        script = tmp_path / f"block{i}.mjs"
        script.write_text(code, encoding="utf-8")
        checked = subprocess.run(["node", "--check", str(script)], capture_output=True, text=True)
        assert checked.returncode == 0, (code, checked.stderr)
