"""The residents' page in a real browser (headless Chromium driven by Playwright) over the
whole system (the five services and the console as processes, the stack's local SMTP server
keeping every message). A resident reports on /public/ with an e-mail, without a login: the
point clicked on the map, a bad e-mail first (named next to its field), then a good one; the
"accepted" mail arrives with the case's link; the loop is worked through to closed over the
services' APIs; the "closed" mail arrives with a rating link; the browser follows it and
rates; the public page shows the case closed and rated, and intake has the rating.

Screenshots go to test-artifacts/public/ (docs/screenshots/public/ are from there). Without
Chromium the test is skipped locally and fails in CI (CI=true)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from gridloop_city import City, load_city
from gridloop_devkit.devstack import LocalPostgres
from gridloop_devkit.launcher import SERVICES, Stack
from gridloop_devkit.testing import process_stack
from shapely.geometry import Point

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "test-artifacts" / "public"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT = 30_000  # ms: the bus, the projections and the mail are asynchronous
# s: an upload goes to the object store, which may be slow to take its first file on a busy machine
HTTP_TIMEOUT_S = 30
CATEGORY = "E0104"
ADDRESS = "resident@example.org"

if CHROMIUM is None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI needs Chromium for the console's browser tests", pytrace=False)
    pytest.skip("chromium is not installed", allow_module_level=True)

from playwright.sync_api import Page, Request, Response, expect, sync_playwright  # noqa: E402

T = TypeVar("T")


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


@pytest.fixture(scope="module")
def stack(pg_server: LocalPostgres, work_dir: Path) -> Iterator[Stack]:
    """The five services and the console as processes, with the local SMTP server (a mail
    the server did not take is tried again a second later)."""
    with process_stack(
        work_dir / "public-e2e",
        pg_server.create_database("public_e2e"),
        services=(*SERVICES, "console"),
        env={"MAIL_RETRY_S": "1"},
        timeout=180,
    ) as s:
        yield s


def until(condition: Callable[[], T | None], what: str, timeout: float = 45) -> T:
    """Poll `condition` until it gives something (a condition, not a sleep, decides)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def report_cell(city: City) -> tuple[str, str]:
    """A cell taking every category, where the category is routed to a department, whose
    middle (what a click on the cell lands on) is well inside it, the nearest such to the
    district's middle (it shows well on the map); and that department."""
    min_lon, min_lat, max_lon, max_lat = city.district.bbox
    middle_of_district = Point((min_lon + max_lon) / 2, (min_lat + max_lat) / 2)
    near_first = sorted(
        (c for c in city.cells if c in city.polygons),
        key=lambda c: city.polygons[c].centroid.distance(middle_of_district),
    )
    for code in near_first:
        if city.cells[code].entry_list is not None:
            continue
        route = city.route(CATEGORY, code)
        if route is None:
            continue
        poly = city.polygons[code]
        min_x, min_y, max_x, max_y = poly.bounds
        middle = Point((min_x + max_x) / 2, (min_y + max_y) / 2)
        if poly.buffer(-0.25 * min(max_x - min_x, max_y - min_y)).contains(middle):
            return code, route.dept
    raise AssertionError("the demo city has no cell for the resident's report")


class Resident:
    """One browser page with its watchers: page errors, console errors, 5xx answers, and
    anything that would be a login (a sign-in call, a token sent)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.logins: list[str] = []
        self.shots: list[Path] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console: {msg.text}")
                if msg.type == "error" and "422" not in msg.text
                else None
            ),
        )
        page.on("response", self._response)
        page.on("request", self._request)

    def _response(self, r: Response) -> None:
        if r.status >= 500:
            self.errors.append(f"{r.status} {r.request.method} {r.url}")

    def _request(self, r: Request) -> None:
        headers = r.headers
        if "/api/login" in r.url or "authorization" in headers or "x-user" in headers:
            self.logins.append(f"{r.method} {r.url}")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)


def mails(stack: Stack, subject: str) -> list[EmailMessage]:
    assert stack.smtp is not None
    return [m for m in stack.smtp.messages() if m["To"] == ADDRESS and subject in str(m["Subject"])]


def test_a_resident_reports_hears_by_mail_and_rates_without_a_login(
    stack: Stack, city: City
) -> None:
    cell, dept = report_cell(city)
    dept_user = next(u.id for u in city.users.values() if u.dept == dept)
    console = stack.url("console")
    intake = httpx.Client(
        base_url=stack.url("intake"), headers={"X-User": "op-01"}, timeout=HTTP_TIMEOUT_S
    )
    handling = httpx.Client(
        base_url=stack.url("handling"), headers={"X-User": dept_user}, timeout=HTTP_TIMEOUT_S
    )
    verify = httpx.Client(base_url=stack.url("verify"), timeout=HTTP_TIMEOUT_S)

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
        resident = Resident(context.new_page())
        page = resident.page
        try:
            # the public page: the map of public cases, no sign-in screen anywhere
            page.goto(f"{console}/public/")
            expect(page.get_by_test_id("pub-count")).to_contain_text("0", timeout=WAIT)
            expect(page.get_by_test_id("login-form")).to_have_count(0)

            # the report form: the point clicked on the map, a bad e-mail first
            page.get_by_test_id("pub-tab-report").click()
            page.get_by_test_id("pub-category").select_option(CATEGORY)
            page.get_by_test_id("pub-description").fill("小区门口人行道上堆放垃圾")
            page.get_by_test_id("pub-submit").click()  # no place yet: named
            expect(page.get_by_test_id("err-location")).to_have_text(
                "请在地图上点选本区网格内的位置，或填写地址", timeout=WAIT
            )
            page.locator(f'.cells path[data-cell="{cell}"]').click()
            expect(page.get_by_test_id("pub-where")).to_contain_text(city.cells[cell].name)
            page.get_by_test_id("pub-email").fill("not-an-address")
            page.get_by_test_id("pub-submit").click()
            expect(page.get_by_test_id("err-email")).to_have_text(
                "电子邮箱格式不正确", timeout=WAIT
            )
            expect(page.get_by_test_id("err-location")).to_be_empty()
            expect(page.locator('.field[data-field="email"]')).to_have_class(
                re.compile(r"\binvalid\b")
            )
            expect(page.get_by_test_id("pub-request-id")).to_have_count(0)
            resident.shot("report-bad-email")

            page.get_by_test_id("pub-email").fill(ADDRESS)
            page.get_by_test_id("pub-name").fill("张三")
            page.get_by_test_id("pub-submit").click()
            expect(page.get_by_test_id("pub-request-id")).to_have_text(
                re.compile(r"\d{6}-\d{8}-\d{6}"), timeout=WAIT
            )
            case_id = page.get_by_test_id("pub-request-id").inner_text()
            resident.shot("report-sent")
            case = intake.get(f"/cases/{case_id}").json()
            assert case["cell_code"] == cell and case["channel"] == "web", case

            # the operator accepts it: the "accepted" mail, with the case's public link
            until(
                lambda: intake.get(f"/cases/{case_id}").json()["status"] == "pending_acceptance",
                f"{case_id} waiting for acceptance",
            )
            r = intake.post(f"/cases/{case_id}/accept", json={})
            assert r.status_code == 200, r.text
            [accepted] = until(lambda: mails(stack, "已立案"), "the accepted mail")
            assert f"{console}/public/#/case/{case_id}" in accepted.get_content()

            # the case link of the mail: its steps in public terms, no names
            page.goto(f"{console}/public/#/case/{case_id}")
            expect(page.get_by_test_id("pub-case-id")).to_have_text(case_id, timeout=WAIT)
            steps = page.get_by_test_id("pub-steps")
            expect(steps.locator('[data-step="accepted"]')).to_have_count(1)

            # the department signs and reports the result; the supervisor verifies
            until(
                lambda: handling.get(f"/departments/{dept}/cases/{case_id}").status_code == 200,
                f"{case_id} in {dept}'s inbox",
            )
            assert handling.post(f"/departments/{dept}/cases/{case_id}/sign").status_code == 200
            r = handling.post(
                f"/departments/{dept}/cases/{case_id}/result",
                json={
                    "result": "垃圾已清运",
                    "evidence": [
                        {"url": "https://evidence.example.org/after.jpg", "kind": "photo"}
                    ],
                },
            )
            assert r.status_code == 200, r.text

            def verification_task() -> dict[str, Any] | None:
                tasks = verify.get(
                    "/tasks",
                    params={"status": "open", "purpose": "verification"},
                    headers={"X-User": "admin"},
                ).json()
                return next(
                    (t for t in tasks if t["case_id"] == case_id and t["supervisor_id"]), None
                )

            task = until(verification_task, f"the verification task of {case_id}")
            r = verify.post(
                f"/tasks/{task['task_id']}/verification",
                json={
                    "passed": True,
                    "notes": "现场已清理",
                    "photos": ["https://evidence.example.org/v.jpg"],
                },
                headers={"X-User": task["supervisor_id"]},
            )
            assert r.status_code in (200, 201), r.text
            until(
                lambda: intake.get(f"/cases/{case_id}").json()["status"] == "closed",
                f"{case_id} closed",
            )

            # the "closed" mail with its rating link; the browser follows it and rates
            [closed] = until(lambda: mails(stack, "处理完毕"), "the closed mail")
            link = re.search(r"(http\S+/public/#/rate/\S+)", closed.get_content())
            assert link is not None and link[1].startswith(console), closed.get_content()
            page.goto(link[1])
            expect(page.get_by_test_id("pub-rating")).to_be_visible(timeout=WAIT)
            expect(page.get_by_test_id("pub-result-text")).to_have_text("垃圾已清运")
            page.get_by_test_id("pub-rate-submit").click()  # no level chosen: named
            expect(page.get_by_test_id("err-rating")).not_to_be_empty()
            page.get_by_test_id("pub-level-B").check()
            page.get_by_test_id("pub-comment").fill("处理及时")
            resident.shot("rating")
            page.get_by_test_id("pub-rate-submit").click()
            expect(page.get_by_test_id("pub-rating-done")).to_have_attribute(
                "data-rating", "B", timeout=WAIT
            )
            resident.shot("rated")
            rating = until(
                lambda: intake.get(f"/cases/{case_id}").json()["rating"],
                "the rating in intake's case file",
            )
            assert rating == "B", rating

            # the public page shows the case closed and rated
            page.goto(f"{console}/public/#/case/{case_id}")
            expect(page.get_by_test_id("pub-case-status")).to_have_attribute(
                "data-status", "closed", timeout=WAIT
            )
            expect(page.get_by_test_id("pub-case-rated")).to_have_text("已评价")
            for step in ("reported", "accepted", "dispatched", "handled", "closed", "rated"):
                expect(
                    page.get_by_test_id("pub-steps").locator(f'[data-step="{step}"]')
                ).to_have_count(1)
            text = page.locator("main").inner_text()
            for private in (ADDRESS, "张三", dept_user, task["supervisor_id"], "op-01"):
                assert private not in text, private
            resident.shot("case-closed")

            page.goto(f"{console}/public/#/map?status=closed")
            row = page.get_by_test_id(f"pub-case-{case_id}")
            expect(row).to_have_attribute("data-status", "closed", timeout=WAIT)
            expect(page.get_by_test_id(f"marker-{case_id}")).to_have_attribute(
                "data-status", "closed"
            )
            resident.shot("map")

            # in English with one click
            page.get_by_test_id("lang-switch").click()
            expect(page.get_by_test_id("pub-tab-report")).to_have_text("Report a problem")
            resident.shot("map-en")

            # on a phone: the panels stack, the map below the list
            page.set_viewport_size({"width": 390, "height": 844})
            page.get_by_test_id("lang-switch").click()
            expect(page.get_by_test_id(f"marker-{case_id}")).to_be_visible(timeout=WAIT)
            expect(page.get_by_test_id("pub-tab-report")).to_be_in_viewport()
            resident.shot("phone")
        except Exception:
            resident.shot("failure")
            raise
        finally:
            context.close()
            chromium.close()
            intake.close()
            handling.close()
            verify.close()
    assert not resident.errors, resident.errors
    assert not resident.logins, resident.logins
