"""The console in a real browser (headless Chromium driven by Playwright) over the whole
system: one patrol report carried through the loop by clicking, as each role in turn —
supervisor reports, operator accepts, department signs and reports the result, supervisor
verifies, the case file shows it closed, the map shows it, the department's score moves.

Screenshots are kept in test-artifacts/console/. Without Chromium the test is skipped
locally and fails in CI (CI=true)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gridloop_city import City, load_city
from gridloop_runtime.devstack import LocalPostgres
from gridloop_runtime.launcher import SERVICES
from gridloop_runtime.testing import process_stack

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT = 30_000  # ms: the bus and the projections are asynchronous

if CHROMIUM is None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI needs Chromium for the console's browser tests", pytrace=False)
    pytest.skip("chromium is not installed", allow_module_level=True)

from playwright.sync_api import Page, Response, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


@pytest.fixture(scope="module")
def console_url(pg_server: LocalPostgres, work_dir: Path) -> Iterator[str]:
    """The five services and the console as real processes (AUTH_MODE=dev, a movable clock)."""
    with process_stack(
        work_dir / "console-e2e",
        pg_server.create_database("console_e2e"),
        services=(*SERVICES, "console"),
        timeout=180,
    ) as stack:
        yield stack.url("console")


@dataclass
class Browser:
    """One page with its watchers: console errors, page errors and 5xx answers."""

    page: Page
    base: str
    errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def watch(self) -> None:
        def on_console(msg: Any) -> None:
            if msg.type == "error":
                self.errors.append(f"console: {msg.text}")

        def on_response(response: Response) -> None:
            if response.status >= 500:
                self.errors.append(f"{response.status} {response.request.method} {response.url}")

        self.page.on("console", on_console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("response", on_response)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        self.shots.append(path)

    def login(self, role: str, user: str) -> None:
        page = self.page
        page.goto(self.base + "/#/map")
        if page.get_by_test_id("logout").count():
            page.get_by_test_id("logout").click()
        page.get_by_test_id("login-role").select_option(role)
        page.get_by_test_id("login-user").select_option(user)
        page.get_by_test_id("login-password").fill("demo")
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("current-user")).to_have_attribute("data-user", user)
        expect(page.get_by_test_id("live")).to_have_class(re.compile(r"\bon\b"), timeout=WAIT)

    def tab(self, name: str) -> None:
        self.page.get_by_test_id(f"tab-{name}").click()

    def case_file(self, case_id: str) -> None:
        self.page.goto(f"{self.base}/#/case/{case_id}")
        expect(self.page.get_by_test_id("case-id")).to_have_text(case_id, timeout=WAIT)


def score_of(b: Browser, dept: str) -> str | None:
    """The department's score on the Performance tab (None: not ranked in this period)."""
    b.tab("performance")
    expect(b.page.get_by_test_id("perf-ranking")).to_be_visible(timeout=WAIT)
    expect(b.page.get_by_test_id("perf-measures")).not_to_be_empty(timeout=WAIT)
    cell = b.page.get_by_test_id(f"score-{dept}")
    return cell.text_content() if cell.count() else None


def patrol_cell(city: City) -> tuple[str, str, str, tuple[float, float]]:
    """A cell taking every category whose primary supervisor is not trusted (so the report
    waits for an operator), with that supervisor, the department routing sends E0104 to, and
    a point inside it."""
    for cell, a in sorted(city.supervisors.items()):
        if city.users[a.primary].trusted or city.cells[cell].entry_list is not None:
            continue
        route = city.route("E0104", cell)
        if route is None:
            continue
        point = city.polygons[cell].representative_point()
        return cell, a.primary, route.dept, (point.y, point.x)
    raise AssertionError("the demo city has no cell for the patrol report")


def test_one_case_through_the_whole_loop_by_clicking(console_url: str, city: City) -> None:
    _cell, supervisor, dept, (lat, lon) = patrol_cell(city)
    dept_user = next(u.id for u in city.users.values() if u.dept == dept)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        b = Browser(context.new_page(), console_url)
        b.watch()
        page = b.page
        try:
            page.goto(console_url)
            expect(page.get_by_test_id("login-form")).to_be_visible()
            b.shot("login")

            # the evaluator looks at the department ranking of the day before anything happens
            b.login("evaluator", "eval-01")
            before = score_of(b, dept)
            b.shot("performance-before")

            # a supervisor files a patrol report from the Report tab
            b.login("supervisor", supervisor)
            b.tab("report")
            form = page.get_by_test_id("report-form")
            expect(form).to_be_visible()
            page.get_by_test_id("report-category").select_option("E0104")
            page.get_by_test_id("report-description").fill("人行道上有暴露垃圾，影响通行")
            page.get_by_test_id("report-lat").fill(f"{lat:.6f}")
            page.get_by_test_id("report-lon").fill(f"{lon:.6f}")
            page.get_by_test_id("report-photo").fill("https://evidence.example.org/report.jpg")
            page.get_by_test_id("report-submit").click()
            link = page.get_by_test_id("report-case-id")
            expect(link).to_be_visible(timeout=WAIT)
            case_id = (link.text_content() or "").strip()
            assert re.fullmatch(r"\d{6}-\d{8}-\d{6}", case_id), case_id
            b.shot("supervisor-report")

            # the operator accepts it from the acceptance queue (立案)
            b.login("operator", "op-01")
            b.tab("queues")
            item = page.get_by_test_id(f"item-{case_id}")
            expect(item).to_be_visible(timeout=WAIT)
            expect(item).to_contain_text("人行道上有暴露垃圾")
            b.shot("operator-queue")
            page.get_by_test_id(f"accept-{case_id}").click()
            expect(item).to_have_count(0, timeout=WAIT)

            # the map shows the open case's marker
            b.tab("map")
            marker = page.get_by_test_id(f"marker-{case_id}")
            expect(marker).to_have_count(1, timeout=WAIT)
            b.shot("map-open-case")

            # the dispatcher sees it routed to the department (case file, tasks)
            b.login("dispatcher", "disp-01")
            b.tab("queues")
            expect(page.get_by_test_id("queue-dispatcher")).to_be_visible()
            b.shot("dispatcher-board")
            b.case_file(case_id)
            expect(page.get_by_test_id("case-dept")).to_contain_text(
                city.departments[dept].name, timeout=WAIT
            )

            # department staff sign and report the result
            b.login("department", dept_user)
            b.tab("queues")
            item = page.get_by_test_id(f"item-{case_id}")
            expect(item).to_be_visible(timeout=WAIT)
            b.shot("department-inbox")
            page.get_by_test_id(f"sign-{case_id}").click()
            page.get_by_test_id(f"result-text-{case_id}").fill("已清运完毕，现场恢复整洁")
            page.get_by_test_id(f"result-evidence-{case_id}").fill(
                "https://evidence.example.org/after.jpg"
            )
            page.get_by_test_id(f"result-submit-{case_id}").click()
            expect(item).to_contain_text("待核查", timeout=WAIT)

            # the supervisor verifies on site: pass
            b.login("supervisor", supervisor)
            b.tab("queues")
            passed = page.get_by_test_id(f"verify-pass-{case_id}")
            expect(passed).to_be_visible(timeout=WAIT)
            page.get_by_test_id(f"verify-notes-{case_id}").fill("现场已整改")
            page.get_by_test_id(f"verify-photo-{case_id}").fill(
                "https://evidence.example.org/verified.jpg"
            )
            b.shot("supervisor-verify")
            passed.click()
            expect(page.get_by_test_id(f"item-{case_id}")).to_have_count(0, timeout=WAIT)

            # the case file shows it closed, with the whole timeline; the operator records the
            # call-back's rating
            b.login("operator", "op-01")
            b.case_file(case_id)
            expect(page.get_by_test_id("case-status")).to_have_attribute(
                "data-status", "closed", timeout=WAIT
            )
            timeline = page.get_by_test_id("case-timeline")
            for step in ("reported", "accepted", "dispatched", "signed", "handled", "verified"):
                expect(timeline.get_by_test_id(f"tl-{step}")).not_to_have_count(0)
            expect(timeline.get_by_test_id("tl-closed")).to_have_count(1, timeout=WAIT)
            expect(page.get_by_test_id("case-reporter")).not_to_contain_text("13")
            page.get_by_test_id("rating-value").select_option("B")
            page.get_by_test_id("rate-submit").click()
            expect(page.get_by_test_id("case-rating")).to_contain_text("满意", timeout=WAIT)
            b.shot("case-file-closed")

            # the map shows the closed case's marker
            page.get_by_test_id("case-on-map").click()
            expect(page.get_by_test_id(f"marker-{case_id}")).to_have_attribute(
                "data-status", "closed", timeout=WAIT
            )
            b.shot("map-closed-case")

            # the department's score of the day has changed
            b.login("evaluator", "eval-01")
            b.tab("performance")
            expect(page.get_by_test_id(f"score-{dept}")).to_be_visible(timeout=WAIT)
            after = score_of(b, dept)
            assert after is not None and after != before, (before, after)
            b.shot("performance-after")

            # English on request
            page.get_by_test_id("lang-switch").click()
            expect(page.get_by_test_id("tab-map")).to_have_text("Map")
            b.shot("performance-english")
            page.get_by_test_id("lang-switch").click()
            expect(page.get_by_test_id("tab-map")).to_have_text("地图")

            # the platform's administrator sees the queues of the command centre
            b.login("admin", "admin")
            b.tab("queues")
            expect(page.get_by_test_id("queue-operator")).to_be_visible()
            expect(page.get_by_test_id("queue-dispatcher")).to_be_visible()
            b.shot("admin-queues")
        except Exception:
            b.shot("failure")
            raise
        finally:
            context.close()
            chromium.close()
    assert not b.errors, b.errors
    assert len(b.shots) >= 12
