"""The supervisor's handheld (城管通) in a phone: headless Chromium in a phone's viewport with
touch, the position granted and set, over the whole system (the services and the console as
processes, a real S3 store). A patrol report with a photo in three taps; without signal a
second one waits on the phone, and with the signal back both are cases, once each; the
department's result comes with an after photo; the verification task arrives live and is
answered with a site photo; the case file shows before and after.

Screenshots go to test-artifacts/handheld/ (the README's come from there). Without Chromium
the test is skipped locally and fails in CI (CI=true)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from gridloop_city import City, distance_m, load_city
from gridloop_console.geo import likely_categories
from gridloop_devkit.devstack import LocalPostgres
from gridloop_devkit.launcher import SERVICES, Stack
from gridloop_devkit.testing import photo_bytes, process_stack

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "test-artifacts" / "handheld"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT = 30_000  # ms: the bus and the projections are asynchronous
# s: an upload goes to the object store, which may be slow to take its first file on a busy machine
HTTP_TIMEOUT_S = 30

if CHROMIUM is None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI needs Chromium for the console's browser tests", pytrace=False)
    pytest.skip("chromium is not installed", allow_module_level=True)

from playwright.sync_api import Page, ViewportSize, expect, sync_playwright  # noqa: E402
from shapely.geometry import Point  # noqa: E402

PHONE: ViewportSize = {"width": 390, "height": 844}

T = TypeVar("T")


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


@pytest.fixture(scope="module")
def stack(pg_server: LocalPostgres, work_dir: Path) -> Iterator[Stack]:
    """The five services and the console as processes, with their object store."""
    with process_stack(
        work_dir / "handheld-e2e",
        pg_server.create_database("handheld_e2e"),
        services=(*SERVICES, "console"),
        timeout=180,
    ) as s:
        yield s


def until(condition: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    """Poll `condition` until it gives something (a condition, not a sleep, decides)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def patrol_point(city: City) -> tuple[str, str, str, str, tuple[float, float]]:
    """A cell whose primary supervisor is trusted (the report is accepted at once), a
    category likely there that is accepted from them and routed, its department, and a point
    inside the cell."""
    for cell, a in sorted(city.supervisors.items()):
        if not city.users[a.primary].trusted or city.cells[cell].entry_list is not None:
            continue
        for code in likely_categories(city, cell):
            category = city.categories[code]
            route = city.route(code, cell)
            if route is None or category.requires_confirmation:
                continue
            if category.auto_accept_from_trusted:
                point = city.polygons[cell].representative_point()
                return cell, a.primary, code, route.dept, (point.y, point.x)
    raise AssertionError("the demo city has no cell for the handheld's report")


def point_apart(city: City, cell: str, lat: float, lon: float) -> tuple[float, float]:
    """The point of `cell` farthest from (lat, lon) on a grid over it, at least 10 m beyond
    the duplicate search's reach (intake.yaml duplicate.distance_m), so a report there opens a
    case of its own whatever another test left open at (lat, lon)."""
    polygon = city.polygons[cell]
    west, south, east, north = polygon.bounds
    grid = [
        (west + (east - west) * j / 20, south + (north - south) * i / 20)
        for i in range(1, 20)
        for j in range(1, 20)
    ]
    inside = [p for p in grid if polygon.contains(Point(p))]
    x, y = max(inside, key=lambda p: distance_m(p, (lon, lat)))
    apart = city.intake.duplicate.distance_m + 10
    assert distance_m((x, y), (lon, lat)) > apart, f"cell {cell}: no point {apart} m apart"
    return y, x


def other_point(city: City, not_cell: str) -> tuple[str, tuple[float, float]]:
    """Another cell taking every category, far enough not to be a duplicate."""
    for cell in sorted(city.cells):
        if cell != not_cell and city.cells[cell].entry_list is None and cell in city.polygons:
            point = city.polygons[cell].representative_point()
            return cell, (point.y, point.x)
    raise AssertionError("no second cell")


class Phone:
    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.shots: list[Path] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on(
            "response",
            lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 500 else None,
        )

    def shot(self, name: str) -> None:
        """What the phone's screen shows (the viewport, as a person would see it)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)

    def show(self, testid: str, *, last: bool = False) -> None:
        """Scroll the element into the middle of the screen, for a shot: found and scrolled
        in one step in the page, so a list the app redraws meanwhile cannot detach it
        between the two (a locator's scroll fails on an element replaced under it)."""
        self.page.evaluate(
            "([id, last]) => { const all = document.querySelectorAll(`[data-testid='${id}']`);"
            " const e = last ? all[all.length - 1] : all[0];"
            " if (!e) throw new Error(`nothing shows ${id}`);"
            " e.scrollIntoView({ block: 'center' }); }",
            [testid, last],
        )

    def report(self, photo: Path, category: str, cell: str) -> None:
        """Three taps: the camera, a likely category, send (the position is the phone's)."""
        page = self.page
        expect(page.get_by_test_id("hh-cell")).to_have_attribute("data-cell", cell, timeout=WAIT)
        page.get_by_test_id("hh-camera-input").set_input_files(str(photo))  # 1: the camera
        expect(page.get_by_test_id("hh-camera-preview")).to_be_visible()
        page.get_by_test_id(f"hh-category-{category}").tap()  # 2: the category
        page.get_by_test_id("hh-send").tap()  # 3: send


def case_ids(page: Page) -> list[str]:
    items = page.get_by_test_id("hh-report-item")
    return [items.nth(i).get_attribute("data-case") or "" for i in range(items.count())]


def test_a_supervisors_day_on_the_handheld_with_and_without_signal(
    stack: Stack, city: City, tmp_path: Path
) -> None:
    cell, supervisor, category, dept, (lat, lon) = patrol_point(city)
    cell2, (lat2, lon2) = other_point(city, cell)
    dept_user = next(u.id for u in city.users.values() if u.dept == dept)
    before, second, after, site = (tmp_path / f"{n}.jpg" for n in ("a", "b", "c", "d"))
    before.write_bytes(photo_bytes(lat, lon, color=(170, 90, 40)))
    second.write_bytes(photo_bytes(lat2, lon2, color=(90, 90, 160)))
    after.write_bytes(photo_bytes(lat, lon, color=(60, 150, 70)))
    site.write_bytes(photo_bytes(lat, lon, color=(70, 170, 90)))
    console = stack.url("console")
    intake = httpx.Client(
        base_url=stack.url("intake"), headers={"X-User": "op-01"}, timeout=HTTP_TIMEOUT_S
    )
    handling = httpx.Client(
        base_url=stack.url("handling"), headers={"X-User": dept_user}, timeout=HTTP_TIMEOUT_S
    )

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = chromium.new_context(
            viewport=PHONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="zh-CN",
            geolocation={"latitude": lat, "longitude": lon, "accuracy": 8},
            permissions=["geolocation"],
        )
        phone = Phone(context.new_page(), console)
        page = phone.page
        try:
            # sign in on the phone: a supervisor lands on the handheld
            page.goto(console)
            page.get_by_test_id("login-role").select_option("supervisor")
            page.get_by_test_id("login-user").select_option(supervisor)
            page.get_by_test_id("login-password").fill("demo")
            page.get_by_test_id("login-submit").tap()
            expect(page.get_by_test_id("handheld")).to_be_visible(timeout=WAIT)
            expect(page.get_by_test_id("hh-online")).to_have_attribute("data-online", "true")

            # a patrol report with a photo: the cell is shown before it is sent
            expect(page.get_by_test_id("hh-cell")).to_have_attribute(
                "data-cell", cell, timeout=WAIT
            )
            phone.shot("report-located")
            phone.report(before, category, cell)
            first = page.get_by_test_id("hh-report-item").first
            expect(first).to_have_attribute("data-state", "sent", timeout=WAIT)
            case1 = first.get_attribute("data-case") or ""
            assert re.fullmatch(r"\d{6}-\d{8}-\d{6}", case1), case1
            phone.shot("report-sent")

            # no signal: the second report waits on the phone, with its client-made id
            context.set_offline(True)
            expect(page.get_by_test_id("hh-online")).to_have_attribute("data-online", "false")
            context.set_geolocation({"latitude": lat2, "longitude": lon2, "accuracy": 8})
            page.get_by_test_id("hh-tab-tasks").tap()
            page.get_by_test_id("hh-tab-report").tap()
            phone.report(second, next(iter(city.categories)), cell2)
            waiting = page.get_by_test_id("hh-report-item").first
            expect(waiting).to_have_attribute("data-state", "waiting", timeout=WAIT)
            expect(page.get_by_test_id("hh-pending")).to_have_text("1")
            phone.show("hh-report-item")
            phone.shot("offline-waiting")

            # the signal is back: it is sent by itself; both reports are cases, once each
            context.set_offline(False)
            expect(page.get_by_test_id("hh-report-item").first).to_have_attribute(
                "data-state", "sent", timeout=WAIT
            )
            expect(page.get_by_test_id("hh-pending")).to_have_text("0")
            cases = case_ids(page)
            assert len(cases) == 2 and len(set(cases)) == 2 and case1 in cases, cases
            case2 = next(c for c in cases if c != case1)
            phone.show("hh-report-item", last=True)
            phone.shot("back-online-sent")
            for case_id, n_files in ((case1, 1), (case2, 1)):
                got = intake.get(f"/cases/{case_id}").json()
                assert got["reports"] == 1 and len(got["files"]) == n_files, got
            assert got["cell_code"] == cell2

            # the department reports the result with an after photo (its own API)
            until(
                lambda: handling.get(f"/departments/{dept}/cases/{case1}").status_code == 200,
                f"{case1} in {dept}'s inbox",
            )
            assert handling.post(f"/departments/{dept}/cases/{case1}/sign").status_code == 200
            up = handling.post(
                "/attachments", files={"file": ("after.jpg", after.read_bytes(), "image/jpeg")}
            )
            assert up.status_code == 201, up.text
            result: dict[str, Any] = {
                "result": "已修复",
                "attachment_ids": [up.json()["attachment_id"]],
            }
            r = handling.post(f"/departments/{dept}/cases/{case1}/result", json=result)
            assert r.status_code == 200, r.text

            # the verification task arrives live; before and after side by side; a site photo
            page.get_by_test_id("hh-tab-tasks").tap()
            task = page.locator(f'[data-testid="hh-task"][data-case="{case1}"]')
            expect(task).to_be_visible(timeout=WAIT)
            phone.shot("tasks-live")
            task.tap()
            expect(page.get_by_test_id("hh-verify-case")).to_have_text(case1, timeout=WAIT)
            for side in ("before", "after"):
                expect(page.get_by_test_id(f"{side}-img").first).to_have_attribute(
                    "data-loaded", "true", timeout=WAIT
                )
            page.get_by_test_id("hh-verify-camera-input").set_input_files(str(site))
            page.get_by_test_id("hh-verify-notes").fill("现场已修复")
            phone.show("before-after")
            phone.shot("verify-before-after")
            page.get_by_test_id("hh-pass").tap()
            expect(page.locator(f'[data-testid="hh-task"][data-case="{case1}"]')).to_have_count(
                0, timeout=WAIT
            )
            page.get_by_test_id("hh-tab-outbox").tap()
            sent = page.locator('[data-testid="hh-outbox-item"][data-kind="verification"]')
            expect(sent).to_have_attribute("data-state", "sent", timeout=WAIT)
            phone.shot("outbox-all-sent")

            # the case file: closed, the report's photo before, the result's and the site's after
            page.goto(f"{console}/#/case/{case1}")
            expect(page.get_by_test_id("case-status")).to_have_attribute(
                "data-status", "closed", timeout=WAIT
            )
            expect(page.get_by_test_id("before-img")).to_have_count(1)
            expect(page.get_by_test_id("after-img")).to_have_count(2, timeout=WAIT)
            for i in range(2):
                expect(page.get_by_test_id("after-img").nth(i)).to_have_attribute(
                    "data-loaded", "true", timeout=WAIT
                )
            phone.show("before-after")
            phone.shot("case-file-before-after")
        except Exception:
            phone.shot("failure")
            raise
        finally:
            context.close()
            chromium.close()
            intake.close()
            handling.close()
    assert not phone.errors, phone.errors


HEARD = """
window.__heard = [];
const Feed = window.EventSource;
window.EventSource = class extends Feed {
  constructor(...args) {
    super(...args);
    this.addEventListener("case", (e) => window.__heard.push(e.data));
  }
};
"""


def test_a_task_assigned_while_the_list_loads_is_shown(
    stack: Stack, city: City, tmp_path: Path
) -> None:
    """The task list's first load reads before verify has the task, and the live event that
    announces it lands while that load is still on its way: the list shows the task (it was
    lost when the screen began to listen only after its first load), and the late answer of
    the first load does not wipe it (only the latest load is shown)."""
    cell, supervisor, category, dept, centre = patrol_point(city)
    # not where the other test reports: its case may still be open if that test failed
    lat, lon = point_apart(city, cell, *centre)
    dept_user = next(u.id for u in city.users.values() if u.dept == dept)
    intake = httpx.Client(
        base_url=stack.url("intake"), headers={"X-User": supervisor}, timeout=HTTP_TIMEOUT_S
    )
    handling = httpx.Client(
        base_url=stack.url("handling"), headers={"X-User": dept_user}, timeout=HTTP_TIMEOUT_S
    )
    tasks_url = re.compile(r"/api/verify/tasks\?")
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        context.add_init_script(HEARD)
        page = context.new_page()
        try:
            page.goto(stack.url("console"))
            page.get_by_test_id("login-role").select_option("supervisor")
            page.get_by_test_id("login-user").select_option(supervisor)
            page.get_by_test_id("login-password").fill("demo")
            page.get_by_test_id("login-submit").tap()
            expect(page.get_by_test_id("handheld")).to_be_visible(timeout=WAIT)
            page.route(tasks_url, hold_the_first)
            with page.expect_request(tasks_url, timeout=WAIT):
                page.get_by_test_id("hh-tab-tasks").tap()

            # meanwhile a report becomes a case, the department answers, verify opens a task
            report = {
                "channel": "patrol",
                "description": "井盖缺失",
                "category_code": category,
                "location": {"lat": lat, "lon": lon},
            }
            r = intake.post("/reports", json=report)
            assert r.status_code == 201, r.text
            case_id = r.json()["case_id"]
            until(
                lambda: handling.get(f"/departments/{dept}/cases/{case_id}").status_code == 200,
                f"{case_id} in {dept}'s inbox",
            )
            assert handling.post(f"/departments/{dept}/cases/{case_id}/sign").status_code == 200
            after = photo_bytes(lat, lon, color=(60, 150, 70))
            up = handling.post("/attachments", files={"file": ("after.jpg", after, "image/jpeg")})
            assert up.status_code == 201, up.text
            result = {"result": "已修复", "attachment_ids": [up.json()["attachment_id"]]}
            r = handling.post(f"/departments/{dept}/cases/{case_id}/result", json=result)
            assert r.status_code == 200, r.text
            page.wait_for_function(
                "c => window.__heard.some((d) => d.includes(c)"
                " && d.includes('verification_assigned'))",
                arg=case_id,
                timeout=WAIT,
            )

            # the first load's answer comes last, from before the task existed
            held[0].fulfill(status=200, content_type="application/json", body="[]")
            task = page.locator(f'[data-testid="hh-task"][data-case="{case_id}"]')
            expect(task).to_be_visible(timeout=WAIT)
        finally:
            context.close()
            chromium.close()
            intake.close()
            handling.close()
