"""Verify against a real nats-server and PostgreSQL: upstream events are published as the
other services would, the supervisors and the shift leader use the REST API, and the tests
watch what verify puts on the bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gridloop_contracts import Attachment, Envelope, to_binary
from gridloop_contracts import cases as ev
from gridloop_devkit.testing import (
    EventTap,
    http_client,
    publish_case_event,
    service_running,
    settings_for,
    wait_for,
)
from gridloop_runtime.auth import AuthSettings, issue_token
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.service import Runtime
from gridloop_verify.bootstrap import definition
from gridloop_verify.domain.rules import case_of_task
from gridloop_verify.settings import VerifySettings
from nats.js import JetStreamContext

# Monday 23 November 2026, 10:00 in Beijing: a working day, inside office hours.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"
# A cell of the demo city: supervisors.csv gives sup-001 (primary) and sup-002 (backup, AB 角).
CELL, COMMUNITY, SUBDISTRICT = "1101010010010001", "110101001001", "110101001"
PHOTO = "https://evidence.example.org/site/1.jpg"
SUP, BACKUP, OTHER_SUP = "sup-001", "sup-002", "sup-003"
LEAD, DISPATCHER, DEPT_USER = "lead-01", "disp-01", "sanitation-ops"


class Harness:
    """A running verify, a tap on the CASES stream, and the people who call it."""

    def __init__(self, rt: Runtime, clock: FakeClock, js: JetStreamContext) -> None:
        self.rt = rt
        self.clock = clock
        self.js = js
        self.tap = EventTap(js, ("CASES", "case.>"))
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        await self.tap.open()

    # -- the bus --------------------------------------------------------------------
    async def upstream(self, event: ev.CaseEvent, service: str, id: str | None = None) -> None:
        """Publish a case event as another service would."""
        await publish_case_event(self.js, event, service, at=self.clock.now(), id=id)

    async def poll(self) -> None:
        await self.tap.poll()

    def emitted(self, model: type[ev.CaseEvent], **data: Any) -> list[Envelope]:
        """What verify published of a type, matching `data` (JSON values)."""
        return self.tap.of(model, source="/gridloop/verify", **data)

    async def wait(self, model: type[ev.CaseEvent], n: int = 1, **data: Any) -> list[Envelope]:
        return await self.tap.wait(model, n, source="/gridloop/verify", **data)

    def verdicts_now(self, **data: Any) -> list[dict[str, Any]]:
        """The verdicts verify published matching `data`: each case.verified, and the one a
        case.closed v2 carries (a pass that closed the case at once)."""
        found = []
        for env in self.tap.of(None, source="/gridloop/verify"):
            if env.type == ev.CaseVerifiedV2.type_name:
                verdict = env.data
            elif env.type == ev.CaseClosedV2.type_name and env.data.get("verdict"):
                verdict = env.data["verdict"]
            else:
                continue
            if all(verdict.get(k) == v for k, v in data.items()):
                found.append(verdict)
        return found

    async def verdicts(self, n: int = 1, **data: Any) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            await self.tap.poll()
            found = self.verdicts_now(**data)
            return found if len(found) >= n else None

        found: list[dict[str, Any]] = await wait_for(enough, what=f"{n} verdicts {data}")
        return found

    def closings_now(self, **data: Any) -> list[Envelope]:
        """The closings verify published matching `data`: case.closed v1 or v2."""
        return [
            *self.emitted(ev.CaseClosed, **data),
            *self.emitted(ev.CaseClosedV2, **data),
        ]

    async def closings(self, n: int = 1, **data: Any) -> list[Envelope]:
        async def enough() -> list[Envelope] | None:
            await self.tap.poll()
            found = self.closings_now(**data)
            return found if len(found) >= n else None

        found: list[Envelope] = await wait_for(enough, what=f"{n} closings {data}")
        return found

    # -- REST -----------------------------------------------------------------------
    async def call(
        self, method: str, path: str, user: str | None, json: Any = None, **params: Any
    ) -> httpx.Response:
        assert self._http is not None
        headers = {"X-User": user} if user else {}
        return await self._http.request(method, path, headers=headers, json=json, params=params)

    async def my_tasks(self, user: str, **params: Any) -> list[dict[str, Any]]:
        r = await self.call("GET", "/tasks", user, **params)
        assert r.status_code == 200, r.text
        tasks: list[dict[str, Any]] = r.json()
        return tasks

    async def task_of(self, case_id: str, user: str = LEAD, purpose: str = "verification") -> str:
        """The open task of a case, once verify has made it."""

        async def found() -> str | None:
            for t in await self.my_tasks(user, purpose=purpose):
                if t["case_id"] == case_id:
                    return str(t["task_id"])
            return None

        task_id = await wait_for(found, timeout=10, what=f"an open task of {case_id}")
        assert task_id is not None
        return task_id

    async def verdict(
        self, task_id: str, passed: bool, user: str | None = SUP, **body: Any
    ) -> httpx.Response:
        payload: dict[str, Any] = {"passed": passed, "photos": [PHOTO]}
        if not passed:
            payload["notes"] = "仍有垃圾残留"
        payload.update(body)
        return await self.call("POST", f"/tasks/{task_id}/verification", user, json=payload)

    # -- upstream events ------------------------------------------------------------
    def dims(self, case_id: str, category: str = "E0102") -> dict[str, Any]:
        return {
            "case_id": case_id,
            "category_code": category,
            "cell_code": CELL,
            "community_code": COMMUNITY,
            "subdistrict_code": SUBDISTRICT,
        }

    async def handled(
        self, case_id: str, *, category: str = "E0102", deadline: datetime | None = None
    ) -> None:
        now = self.clock.now()
        await self.upstream(
            ev.CaseHandled(
                **self.dims(case_id, category),
                occurred_at=now,
                dept="sanitation",
                task_id=f"T-{case_id}",
                deadline=deadline or T0 + timedelta(days=2),
                result="垃圾已清运",
                evidence=[Attachment(url=PHOTO)],
                completed_at=now,
            ),
            "handling",
        )


@asynccontextmanager
async def started(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> AsyncIterator[Harness]:
    # X-User is honoured in dev mode only (as `make run` starts the services).
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for(
        "verify", database_url, nats_url, VerifySettings, city_data_dir=str(DEMO_CITY), **extra
    )
    assert isinstance(settings, VerifySettings)
    clock = FakeClock(T0)
    async with service_running(settings, definition, nats_url, clock=clock) as (rt, nc):
        h = Harness(rt, clock, nc.jetstream())
        await h.open()
        async with http_client(rt) as client:
            h._http = client
            yield h


@pytest.fixture
async def verify(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    async with started(database_url, nats_url, monkeypatch) as h:
        yield h


# -- pass closes --------------------------------------------------------------------------
async def test_a_result_goes_to_the_cell_supervisor_and_a_pass_closes(verify: Harness) -> None:
    await verify.handled("C-PASS")
    [assigned] = await verify.wait(ev.CaseVerificationAssigned, case_id="C-PASS")
    assert assigned.data["supervisor_id"] == SUP and assigned.data["backup_used"] is False
    assert assigned.data["purpose"] == "verification"
    assert assigned.data["dept"] == "sanitation" and assigned.data["task_id"] == "T-C-PASS"
    # 4 working hours from Monday 10:00 (calendar.yaml), over the lunch break: 15:30.
    assert datetime.fromisoformat(assigned.data["due"]) == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)

    [mine] = await verify.my_tasks(SUP)
    assert mine["case_id"] == "C-PASS" and mine["case"]["result"] == "垃圾已清运"
    assert await verify.my_tasks(OTHER_SUP) == []

    verify.clock.advance(timedelta(hours=1))
    r = await verify.verdict(
        mine["task_id"], True, position={"lat": 39.93, "lon": 116.41}, notes="已清理干净"
    )
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "closed" and r.json()["status"] == "passed"

    [verified] = await verify.verdicts(case_id="C-PASS")
    assert verified["passed"] is True and verified["on_time"] is True
    assert verified["position"] == {"lat": 39.93, "lon": 116.41}
    assert [p["url"] for p in verified["photos"]] == [PHOTO]
    [closed] = await verify.closings(case_id="C-PASS")
    assert closed.data["closed_by"] == SUP and closed.data["on_time"] is True
    assert closed.data["reworks"] == 0 and "approved_by" not in closed.data
    # Dimensions travel: scoring and intake need no call-back.
    assert closed.data["dept"] == "sanitation" and closed.data["cell_code"] == CELL
    assert closed.data["category_code"] == "E0102" and closed.data["task_id"] == "T-C-PASS"
    assert await verify.my_tasks(SUP) == []


async def test_closing_after_the_department_deadline_is_not_on_time(verify: Harness) -> None:
    await verify.handled("C-LATE", deadline=T0 + timedelta(minutes=30))
    task_id = await verify.task_of("C-LATE")
    verify.clock.advance(timedelta(hours=1))
    assert (await verify.verdict(task_id, True)).status_code == 200
    [closed] = await verify.closings(case_id="C-LATE")
    assert closed.data["on_time"] is False
    # ... while the verification itself was in time.
    [verified] = await verify.verdicts(case_id="C-LATE")
    assert verified["on_time"] is True


# -- fail, rework, verify again, escalate --------------------------------------------------
async def test_failures_rework_each_result_is_verified_again_and_the_third_escalates(
    verify: Harness,
) -> None:
    for n in (1, 2, 3):
        await verify.handled("C-FAIL")
        await verify.wait(ev.CaseVerificationAssigned, n=n, case_id="C-FAIL")
        task_id = await verify.task_of("C-FAIL")
        assert task_id == f"C-FAIL:V{n}"
        r = await verify.verdict(task_id, False)
        assert r.status_code == 200, r.text
        [reworked] = await verify.wait(ev.CaseReworked, case_id="C-FAIL", count=n)
        assert reworked.data["dept"] == "sanitation" and reworked.data["task_id"] == "T-C-FAIL"
        assert reworked.data["reason"] == "仍有垃圾残留"
        failed = await verify.verdicts(n=n, case_id="C-FAIL", passed=False)
        assert failed[-1]["failures"] == n
        escalated = verify.emitted(ev.CaseEscalated, case_id="C-FAIL")
        # The third failure (VERIFY_ESCALATE_AFTER_FAILURES, default 3) escalates, not before;
        # the events of one verdict commit together, so the rework proves the escalation is in.
        assert len(escalated) == (1 if n == 3 else 0)
        assert r.json()["outcome"] == ("escalated" if n == 3 else "reworked")
    [escalation] = escalated
    assert escalation.data["level"] == 1 and escalation.data["to_role"] == "efficiency-office"
    assert escalation.data["dept"] == "sanitation"

    # The department finally gets it right: closed, counting the reworks.
    await verify.handled("C-FAIL")
    task_id = await verify.task_of("C-FAIL")
    assert (await verify.verdict(task_id, True)).status_code == 200
    [closed] = await verify.closings(case_id="C-FAIL")
    assert closed.data["reworks"] == 3
    r = await verify.call("GET", "/cases/C-FAIL", LEAD)
    body = r.json()
    assert body["stage"] == "closed" and body["failures"] == 3
    assert [t["status"] for t in body["tasks"]] == ["failed", "failed", "failed", "passed"]


async def test_escalation_threshold_is_configurable(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with started(database_url, nats_url, monkeypatch, verify_escalate_after_failures=1) as h:
        await h.handled("C-ESC1")
        assert (await h.verdict(await h.task_of("C-ESC1"), False)).status_code == 200
        [escalated] = await h.wait(ev.CaseEscalated, case_id="C-ESC1")
        assert escalated.data["level"] == 1


async def test_a_failure_needs_notes_and_a_pass_needs_a_photo(verify: Harness) -> None:
    await verify.handled("C-EVID")
    task_id = await verify.task_of("C-EVID")
    r = await verify.verdict(task_id, False, notes="  ")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "notes"
    r = await verify.verdict(task_id, True, photos=[])
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "photos"
    r = await verify.verdict(task_id, True, position={"lat": 123, "lon": 116})
    assert r.status_code == 422 and "position" in str(r.json()["detail"][0]["loc"])
    r = await verify.verdict(task_id, True, photos=["not a url"])
    assert r.status_code == 422
    # Nothing was decided: the task is still open and the pass goes through.
    assert (await verify.verdict(task_id, True)).status_code == 200


# -- approval -----------------------------------------------------------------------------
async def test_a_category_needing_approval_closes_only_when_the_shift_leader_approves(
    verify: Harness,
) -> None:
    # E0101 私搭乱建: close_requires_approval in categories.yaml.
    await verify.handled("C-APPR", category="E0101")
    await verify.handled("C-REFUSE", category="E0101")
    for case_id in ("C-APPR", "C-REFUSE"):
        r = await verify.verdict(await verify.task_of(case_id), True)
        assert r.json()["outcome"] == "awaiting_approval"
    await verify.verdicts(n=2, passed=True)
    queue = (await verify.call("GET", "/approvals", LEAD)).json()
    assert {c["case_id"] for c in queue} == {"C-APPR", "C-REFUSE"}
    assert {c["passed_by"] for c in queue} == {SUP}

    for user, status in ((SUP, 403), (DEPT_USER, 403), (DISPATCHER, 403)):
        r = await verify.call("POST", "/cases/C-APPR/approval", user, json={"approved": True})
        assert r.status_code == status, r.text
    r = await verify.call("POST", "/cases/C-APPR/approval", LEAD, json={"approved": True})
    assert r.status_code == 200, r.text
    [closed] = await verify.closings(case_id="C-APPR")
    assert closed.data["approved_by"] == LEAD and closed.data["closed_by"] == SUP

    r = await verify.call("POST", "/cases/C-REFUSE/approval", LEAD, json={"approved": False})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "notes"
    r = await verify.call(
        "POST", "/cases/C-REFUSE/approval", LEAD, json={"approved": False, "notes": "未拆除干净"}
    )
    assert r.status_code == 200 and r.json()["outcome"] == "reworked"
    [reworked] = await verify.wait(ev.CaseReworked, case_id="C-REFUSE")
    assert "未拆除干净" in reworked.data["reason"] and reworked.data["count"] == 1
    assert verify.closings_now(case_id="C-REFUSE") == []
    assert (await verify.call("GET", "/approvals", LEAD)).json() == []
    r = await verify.call("POST", "/cases/C-APPR/approval", LEAD, json={"approved": True})
    assert r.status_code == 409


async def test_a_falsified_result_is_marked_with_evidence_by_a_supervisor_or_the_shift_leader(
    verify: Harness,
) -> None:
    """弄虚作假 on case.verified v2: the supervisor on site, or the shift leader refusing to
    close on the evidence; refused without evidence or on a pass, naming the field."""
    await verify.handled("C-FALSE")
    task = await verify.task_of("C-FALSE")
    for body, field in (
        ({"passed": True, "falsified": True}, "passed"),
        ({"passed": False, "falsified": True, "photos": []}, "photos"),
    ):
        r = await verify.verdict(task, **body)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
    r = await verify.verdict(task, False, notes="反馈照片拍的是隔壁门口", falsified=True)
    assert r.status_code == 200 and r.json()["falsified"] is True, r.text
    [v] = await verify.wait(ev.CaseVerifiedV2, case_id="C-FALSE")
    assert v.data["falsified"] is True and v.data["passed"] is False
    assert v.data["falsification"]["evidence"] == [{"url": PHOTO, "kind": "photo"}]
    assert v.data["falsification"]["role"] == "supervisor"
    await verify.wait(ev.CaseReworked, case_id="C-FALSE")
    case = (await verify.call("GET", "/cases/C-FALSE", LEAD)).json()
    assert case["falsifications"] == 1 and case["tasks"][0]["falsified"] is True

    # the shift leader, reviewing a pass before closing (E0101 needs approval)
    await verify.handled("C-REVIEW", category="E0101")
    r = await verify.verdict(await verify.task_of("C-REVIEW"), True)
    assert r.json()["outcome"] == "awaiting_approval"
    approval = {"approved": False, "notes": "照片与现场不符", "falsified": True}
    r = await verify.call("POST", "/cases/C-REVIEW/approval", LEAD, json=approval)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "photos", r.text
    r = await verify.call("POST", "/cases/C-REVIEW/approval", "admin", json=approval)
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "falsified", r.text
    r = await verify.call(
        "POST", "/cases/C-REVIEW/approval", LEAD, json={**approval, "photos": [PHOTO]}
    )
    assert r.status_code == 200 and r.json()["falsifications"] == 1, r.text
    [review] = await verify.wait(ev.CaseVerifiedV2, case_id="C-REVIEW", passed=False)
    assert review.data["actor"]["role"] == "shift-leader" and review.data["supervisor_id"] == SUP
    assert review.data["falsification"]["marked_by"] == LEAD
    await verify.wait(ev.CaseReworked, case_id="C-REVIEW")


# -- AB 角 --------------------------------------------------------------------------------
async def test_the_backup_takes_tasks_while_the_primary_is_absent(verify: Harness) -> None:
    # A task the primary already holds ...
    await verify.handled("C-HELD")
    held = await verify.task_of("C-HELD", SUP)
    # ... then the shift leader records the primary's leave.
    leave = {
        "user_id": SUP,
        "starts_at": (T0 - timedelta(hours=1)).isoformat(),
        "ends_at": (T0 + timedelta(days=1)).isoformat(),
        "reason": "病假",
    }
    for user in (SUP, DEPT_USER):
        assert (await verify.call("POST", "/absences", user, json=leave)).status_code == 403
    r = await verify.call("POST", "/absences", LEAD, json=leave)
    assert r.status_code == 201, r.text
    assert r.json()["tasks_handed_over"] == [held]
    [moved] = await verify.wait(ev.CaseVerificationAssigned, case_id="C-HELD", supervisor_id=BACKUP)
    assert moved.data["backup_used"] is True

    # New results in the cell go straight to the backup.
    await verify.handled("C-NEW")
    [new] = await verify.wait(ev.CaseVerificationAssigned, case_id="C-NEW")
    assert new.data["supervisor_id"] == BACKUP and new.data["backup_used"] is True
    assert await verify.my_tasks(SUP) == []
    assert {t["case_id"] for t in await verify.my_tasks(BACKUP)} == {"C-HELD", "C-NEW"}

    # The backup verifies; the case closes in the backup's name.
    r = await verify.verdict(await verify.task_of("C-NEW", BACKUP), True, user=BACKUP)
    assert r.status_code == 200, r.text
    [closed] = await verify.closings(case_id="C-NEW")
    assert closed.data["closed_by"] == BACKUP

    # Leave over: the next result goes to the primary again.
    [absence] = (await verify.call("GET", "/absences", LEAD)).json()
    assert absence["user_id"] == SUP and absence["set_by"] == LEAD
    huge = await verify.call("DELETE", "/absences/19838120025154431959038246780928", LEAD)
    assert huge.status_code == 422 and huge.json()["detail"][0]["loc"][-1] == "absence_id"
    assert (await verify.call("DELETE", f"/absences/{absence['id']}", LEAD)).status_code == 200
    assert (await verify.call("GET", "/absences", LEAD)).json() == []
    await verify.handled("C-BACK")
    [back] = await verify.wait(ev.CaseVerificationAssigned, case_id="C-BACK")
    assert back.data["supervisor_id"] == SUP and back.data["backup_used"] is False


async def test_a_leave_that_begins_later_hands_over_when_it_begins(verify: Harness) -> None:
    await verify.handled("C-SOON")
    held = await verify.task_of("C-SOON", SUP)
    leave = {
        "user_id": SUP,
        "starts_at": (T0 + timedelta(minutes=30)).isoformat(),
        "ends_at": (T0 + timedelta(days=1)).isoformat(),
    }
    r = await verify.call("POST", "/absences", LEAD, json=leave)
    assert r.status_code == 201 and r.json()["tasks_handed_over"] == []
    verify.clock.advance(timedelta(minutes=31))
    [moved] = await verify.wait(ev.CaseVerificationAssigned, case_id="C-SOON", supervisor_id=BACKUP)
    assert moved.data["backup_used"] is True
    assert [t["task_id"] for t in await verify.my_tasks(BACKUP)] == [held]


async def test_with_both_supervisors_away_the_shift_leader_assigns(verify: Harness) -> None:
    for user in (SUP, BACKUP):
        leave = {
            "user_id": user,
            "starts_at": T0.isoformat(),
            "ends_at": (T0 + timedelta(days=1)).isoformat(),
        }
        assert (await verify.call("POST", "/absences", LEAD, json=leave)).status_code == 201
    await verify.handled("C-NOBODY")

    async def unstaffed() -> list[dict[str, Any]]:
        return await verify.my_tasks(LEAD, unassigned="true")

    [task] = await wait_for(unstaffed, what="an unassigned task")
    assert task["supervisor_id"] is None
    r = await verify.call(
        "POST", f"/tasks/{task['task_id']}/assign", LEAD, json={"supervisor_id": DEPT_USER}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "supervisor_id"
    r = await verify.call(
        "POST", f"/tasks/{task['task_id']}/assign", LEAD, json={"supervisor_id": OTHER_SUP}
    )
    assert r.status_code == 200, r.text
    [assigned] = await verify.wait(ev.CaseVerificationAssigned, case_id="C-NOBODY")
    assert assigned.data["supervisor_id"] == OTHER_SUP and assigned.data["backup_used"] is True
    # The assigned supervisor may now act, though not of the cell's pair.
    assert (await verify.verdict(task["task_id"], True, user=OTHER_SUP)).status_code == 200
    await verify.closings(case_id="C-NOBODY", closed_by=OTHER_SUP)


# -- 核实 (confirmation before acceptance) -------------------------------------------------
async def test_pre_acceptance_confirmation_confirms_or_rejects_a_report(verify: Harness) -> None:
    due = T0 + timedelta(hours=3)
    for case_id in ("C-REAL", "C-FAKE"):
        await verify.upstream(
            ev.CaseConfirmationRequested(
                **verify.dims(case_id, "E0101"),
                occurred_at=T0,
                reason="热线上报，需现场核实",
                description="小区门口私搭乱建",
                address="东四北大街120号",
                due=due,
            ),
            "intake",
        )
    for case_id in ("C-REAL", "C-FAKE"):
        [asked] = await verify.wait(ev.CaseVerificationAssigned, case_id=case_id)
        assert asked.data["purpose"] == "confirmation" and asked.data["supervisor_id"] == SUP
        assert datetime.fromisoformat(asked.data["due"]) == due
    [task] = [
        t for t in await verify.my_tasks(SUP, purpose="confirmation") if t["case_id"] == "C-REAL"
    ]
    assert task["reason"] == "热线上报，需现场核实" and task["case"]["address"] == "东四北大街120号"

    # A verdict is not a confirmation, and a dispatcher confirms nothing.
    r = await verify.verdict(task["task_id"], True)
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "wrong-purpose"
    body = {
        "confirmed": True,
        "photos": [PHOTO],
        "notes": "现场属实",
        "position": {"lat": 39.93, "lon": 116.41},
    }
    r = await verify.call("POST", f"/tasks/{task['task_id']}/confirmation", DISPATCHER, json=body)
    assert r.status_code == 403

    r = await verify.call("POST", f"/tasks/{task['task_id']}/confirmation", SUP, json=body)
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    [yes] = await verify.wait(ev.CaseConfirmed, case_id="C-REAL")
    assert yes.data["confirmed"] is True and yes.data["supervisor_id"] == SUP
    assert yes.data["on_time"] is True and yes.data["cell_code"] == CELL
    assert yes.data["position"] == {"lat": 39.93, "lon": 116.41}

    fake = await verify.task_of("C-FAKE", SUP, purpose="confirmation")
    r = await verify.call(
        "POST",
        f"/tasks/{fake}/confirmation",
        BACKUP,  # the cell's other supervisor covers (AB 角)
        json={"confirmed": False, "notes": "现场未发现"},
    )
    assert r.status_code == 200, r.text
    [no] = await verify.wait(ev.CaseConfirmed, case_id="C-FAKE")
    assert no.data["confirmed"] is False and no.data["supervisor_id"] == BACKUP
    assert await verify.my_tasks(SUP, purpose="confirmation") == []


async def test_an_operator_accepting_first_settles_the_confirmation(verify: Harness) -> None:
    await verify.upstream(
        ev.CaseConfirmationRequested(**verify.dims("C-MOOT"), occurred_at=T0, reason="核实"),
        "intake",
    )
    task_id = await verify.task_of("C-MOOT", SUP, purpose="confirmation")
    await verify.upstream(
        ev.CaseAccepted(
            **{**verify.dims("C-MOOT"), "cell_code": CELL, "category_code": "E0102"},
            occurred_at=T0,
            description="积存垃圾",
        ),
        "intake",
    )

    async def cancelled() -> bool:
        r = await verify.call("GET", f"/tasks/{task_id}", SUP)
        return bool(r.json()["status"] == "cancelled")

    await wait_for(cancelled, what="the confirmation task cancelled")
    r = await verify.call(
        "POST", f"/tasks/{task_id}/confirmation", SUP, json={"confirmed": True, "photos": [PHOTO]}
    )
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "task-closed"


# -- satisfaction -------------------------------------------------------------------------
async def test_a_dissatisfied_rating_reopens_where_configured(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with started(
        database_url, nats_url, monkeypatch, verify_reopen_on_dissatisfied="E01*"
    ) as h:
        for case_id, category in (("C-HAPPY", "E0102"), ("C-P", "P0101"), ("C-SAD", "E0102")):
            await h.handled(case_id, category=category)
            assert (await h.verdict(await h.task_of(case_id), True)).status_code == 200
        closings = {e.data["case_id"]: e for e in await h.closings(n=3)}
        # The ratings arrive as intake emits them after the reporter's call-back.
        ratings = {"C-HAPPY": "satisfied", "C-P": "dissatisfied", "C-SAD": "dissatisfied"}
        for case_id, rating in ratings.items():
            closed = closings[case_id]
            await h.upstream(
                ev.CaseRated(
                    **{k: closed.data.get(k) for k in ("case_id", "category_code", "cell_code")},
                    occurred_at=h.clock.now(),
                    rating=rating,
                    comment="还是有味道",
                    source="12345",
                    dept=closed.data["dept"],
                ),
                "intake",
            )
        [reopened] = await h.wait(ev.CaseReopened)
        assert reopened.data["case_id"] == "C-SAD" and reopened.data["dept"] == "sanitation"
        [reworked] = await h.wait(ev.CaseReworked, case_id="C-SAD")
        assert reworked.data["count"] == 1 and "还是有味道" in reworked.data["reason"]
        assert reworked.data["task_id"] == "T-C-SAD"
        # Ratings are handled in stream order: the satisfied one and the one of a category
        # not configured to reopen (P0101) came first and reopened nothing.
        assert h.emitted(ev.CaseReopened, case_id="C-HAPPY") == []
        assert h.emitted(ev.CaseReopened, case_id="C-P") == []

        # The department's new result is verified again and closes the case again.
        await h.handled("C-SAD")
        assert (await h.verdict(await h.task_of("C-SAD"), True)).status_code == 200
        await h.closings(n=2, case_id="C-SAD")
        case = (await h.call("GET", "/cases/C-SAD", LEAD)).json()
        assert case["reopenings"] == 1 and case["reworks"] == 1 and case["failures"] == 0


async def test_without_configuration_a_dissatisfied_rating_only_feeds_scoring(
    verify: Harness,
) -> None:
    await verify.handled("C-RATED")
    assert (await verify.verdict(await verify.task_of("C-RATED"), True)).status_code == 200
    [closed] = await verify.closings(case_id="C-RATED")
    rated = ev.CaseRated(
        **verify.dims("C-RATED"),
        occurred_at=verify.clock.now(),
        rating="dissatisfied",
        source="12345",
        dept=closed.data["dept"],
    )
    await verify.upstream(rated, "intake")

    async def consumed() -> bool:
        assert verify.rt.pool is not None
        n = await verify.rt.pool.fetchval(
            "SELECT count(*) FROM inbox WHERE consumer = 'verify-cases'"
        )
        return bool(n >= 2)  # the handled and the rated event

    await wait_for(consumed, what="the rating consumed")
    await verify.poll()
    assert verify.emitted(ev.CaseReopened) == [] and verify.emitted(ev.CaseReworked) == []
    # The rating stays on CASES with the dimensions scoring folds (dept, cell, category).
    [on_bus] = verify.tap.of(ev.CaseRated)
    assert on_bus.data["dept"] == "sanitation" and on_bus.data["rating"] == "dissatisfied"
    r = await verify.call("GET", "/cases/C-RATED", LEAD)
    assert r.json()["stage"] == "closed"


# -- who may verify -----------------------------------------------------------------------
async def test_departments_and_dispatchers_may_not_verify_or_close(verify: Harness) -> None:
    await verify.handled("C-AUTH")
    task_id = await verify.task_of("C-AUTH")
    r = await verify.verdict(task_id, True, user=DEPT_USER)
    assert r.status_code == 403
    [err] = r.json()["detail"]
    assert err["code"] == "separation-of-duties" and "department" in err["reason"]
    r = await verify.verdict(task_id, True, user=DISPATCHER)
    assert r.status_code == 403 and "dispatcher" in r.json()["detail"][0]["reason"]
    r = await verify.verdict(task_id, True, user=OTHER_SUP)
    assert r.status_code == 403 and r.json()["detail"][0]["code"] == "not-assigned"
    r = await verify.verdict(task_id, True, user=None)
    assert r.status_code == 401
    r = await verify.verdict(task_id, True, user="nobody")
    assert r.status_code == 401 and r.json()["detail"][0]["field"] == "X-User"
    # A department's bearer token is refused the same way.
    token = issue_token(AuthSettings(), user_id="x", roles=["department"], dept="sanitation")
    assert verify._http is not None
    r = await verify._http.post(
        f"/tasks/{task_id}/verification",
        headers={"Authorization": f"Bearer {token}"},
        json={"passed": True, "photos": [PHOTO]},
    )
    assert r.status_code == 403 and r.json()["detail"][0]["code"] == "separation-of-duties"
    # Nor may they list the supervisors' tasks.
    assert (await verify.call("GET", "/tasks", DEPT_USER)).status_code == 403
    assert (await verify.call("GET", "/tasks", SUP, supervisor_id=BACKUP)).status_code == 403

    # Nothing was verified or closed by any of them: the task is still the supervisor's.
    await verify.poll()
    assert verify.verdicts_now() == [] and verify.closings_now() == []
    assert [t["task_id"] for t in await verify.my_tasks(SUP)] == [task_id]


async def test_a_case_is_read_by_its_supervisors_and_the_overseers_of_its_territory_only(
    verify: Harness,
) -> None:
    """The verification record (place, the department's result and evidence, the
    supervisor's notes, photos and position) is read by the case's own supervisors (AB 角),
    the shift leader, evaluators and grid heads of its territory. Anyone else of those roles
    is answered as for a case that does not exist, and the attempt is audited; departments
    and the command centre read none of it."""
    await verify.handled("C-READ")
    task_id = await verify.task_of("C-READ")
    r = await verify.verdict(task_id, True, notes="已清理", position={"lat": 39.93, "lon": 116.41})
    assert r.status_code == 200, r.text
    assert verify._http is not None

    def bearer(user: str, roles: list[str], territory: list[str] | None) -> dict[str, str]:
        token = issue_token(AuthSettings(), user_id=user, roles=roles, territory=territory)
        return {"Authorization": f"Bearer {token}"}

    async def get(path: str, user: str | dict[str, str]) -> httpx.Response:
        assert verify._http is not None
        headers = {"X-User": user} if isinstance(user, str) else user
        return await verify._http.get(path, headers=headers)

    readers: list[str | dict[str, str]] = [SUP, BACKUP, LEAD, "eval-01", "gh-0010010001"]
    for who in readers:
        for path in ("/cases/C-READ", f"/tasks/{task_id}"):
            r = await get(path, who)
            assert r.status_code == 200, (who, path, r.text)
    assert (await get("/cases/C-READ", SUP)).json()["tasks"][0]["notes"] == "已清理"

    far_lead = bearer("lead-far", ["shift-leader"], ["110101002"])
    outsiders: list[str | dict[str, str]] = [
        OTHER_SUP,  # a supervisor of the same sub-district, not of this cell
        "gh-0020010001",  # a grid head of other cells
        far_lead,  # a shift leader of another sub-district
        bearer("lead-none", ["shift-leader"], None),  # a token without a territory
    ]
    unknown = await get("/cases/C-NOWHERE", LEAD)
    assert unknown.status_code == 404
    for who in outsiders:
        r = await get("/cases/C-READ", who)
        assert r.status_code == 404, (who, r.text)
        assert r.json()["detail"][0] == {
            **unknown.json()["detail"][0],
            "reason": "no case 'C-READ'",
        }
        r = await get(f"/tasks/{task_id}", who)
        assert r.status_code == 404 and r.json()["detail"][0]["field"] == "task_id", (who, r.text)
    for who in (DEPT_USER, DISPATCHER):
        r = await get("/cases/C-READ", who)
        assert r.status_code == 403 and r.json()["detail"][0]["code"] == "forbidden"
    # Lists show the shift leader only the tasks of their territory.
    assert [t["case_id"] for t in (await get("/tasks?status=all", LEAD)).json()] == ["C-READ"]
    assert (await get("/tasks?status=all", far_lead)).json() == []

    async with verify.rt.pool.acquire() as conn:  # type: ignore[union-attr]
        trail = await conn.fetch(
            "SELECT user_id, case_id, task_id, code, status, reason FROM audit_log "
            "WHERE outcome = 'refused' AND command LIKE 'GET %' ORDER BY id"
        )
    refused = [(t["user_id"], t["case_id"], t["code"], t["status"]) for t in trail]
    assert refused == [
        *(
            x
            for user in (OTHER_SUP, "gh-0020010001", "lead-far", "lead-none")
            for x in ((user, "C-READ", "out-of-reach", 404), (user, "C-READ", "out-of-reach", 404))
        ),
        (DEPT_USER, "C-READ", "forbidden", 403),
        (DISPATCHER, "C-READ", "forbidden", 403),
    ]
    assert trail[1]["task_id"] == task_id and OTHER_SUP in trail[0]["reason"]


# -- timeliness ---------------------------------------------------------------------------
async def test_verification_tasks_are_reminded_then_overdue_and_a_late_verdict_says_so(
    verify: Harness,
) -> None:
    await verify.handled("C-SLOW")
    task_id = await verify.task_of("C-SLOW")
    # The reminder at 3/4 of the 4 working hours: 14:30 Beijing (06:30 UTC).
    verify.clock.set(datetime(2026, 11, 23, 6, 31, tzinfo=UTC))
    [reminded] = await verify.wait(ev.CaseReminded, case_id="C-SLOW")
    assert reminded.data["stage"] == "verification" and reminded.data["supervisor_id"] == SUP
    assert verify.emitted(ev.CaseOverdue) == []
    verify.clock.set(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))
    [overdue] = await verify.wait(ev.CaseOverdue, case_id="C-SLOW")
    assert overdue.data["stage"] == "verification" and overdue.data["supervisor_id"] == SUP
    assert datetime.fromisoformat(overdue.data["deadline"]) == datetime(
        2026, 11, 23, 7, 30, tzinfo=UTC
    )
    [listed] = await verify.my_tasks(SUP)
    assert listed["overdue"] is True

    assert (await verify.verdict(task_id, True)).status_code == 200
    [verified] = await verify.verdicts(case_id="C-SLOW")
    assert verified["on_time"] is False


async def test_an_answered_task_is_neither_reminded_nor_overdue(verify: Harness) -> None:
    await verify.handled("C-QUICK")
    await verify.handled("C-WATCH")
    # A task's deadline runs from when verify assigns it, so both must be assigned before
    # the clock moves: a task assigned after the jump would not be due until later.
    await verify.task_of("C-WATCH")
    assert (await verify.verdict(await verify.task_of("C-QUICK"), True)).status_code == 200
    verify.clock.set(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))
    # The other task is the witness that the timers have run.
    await verify.wait(ev.CaseOverdue, case_id="C-WATCH")
    assert verify.emitted(ev.CaseReminded, case_id="C-QUICK") == []
    assert verify.emitted(ev.CaseOverdue, case_id="C-QUICK") == []


# -- idempotency and cancellation ---------------------------------------------------------
async def test_a_resent_command_gets_the_first_answer_and_changes_nothing(
    verify: Harness,
) -> None:
    await verify.handled("C-AGAIN")
    task_id = await verify.task_of("C-AGAIN")
    first = await verify.verdict(task_id, False, command_id="cmd-42")
    again = await verify.verdict(task_id, False, command_id="cmd-42")
    assert first.status_code == again.status_code == 200
    assert first.json()["task_id"] == again.json()["task_id"]
    assert again.json()["outcome"] == "reworked"
    other = await verify.verdict(task_id, False, command_id="cmd-43")
    assert other.status_code == 409
    await verify.wait(ev.CaseReworked, case_id="C-AGAIN")
    assert len(verify.verdicts_now(case_id="C-AGAIN")) == 1
    assert len(verify.emitted(ev.CaseReworked, case_id="C-AGAIN")) == 1


async def test_verdicts_sent_together_share_a_transaction_each_answered_and_audited_as_its_own(
    verify: Harness,
) -> None:
    cases = [f"C-TOGETHER-{i}" for i in range(6)]
    for case_id in cases:
        await verify.handled(case_id)
    tasks = [await verify.task_of(case_id) for case_id in cases]
    # five passes by the supervisor, one by a supervisor it is not assigned to, all at once
    sent = [verify.verdict(t, True, command_id=f"v-{t}") for t in tasks[:5]]
    sent.append(verify.verdict(tasks[5], True, user=OTHER_SUP, command_id=f"v-{tasks[5]}"))
    answers = await asyncio.gather(*sent)
    for r in answers[:5]:
        assert r.status_code == 200, r.text
        assert r.json()["outcome"] == "closed"
    assert answers[5].status_code == 403
    assert answers[5].json()["detail"][0]["code"] == "not-assigned"
    service = verify.rt.state
    assert service.commands is not None and service.commands.grouped >= 2
    await verify.closings(5)
    assert {c.data["case_id"] for c in verify.closings_now()} == set(cases[:5])
    assert all(c.data["closed_by"] == SUP for c in verify.closings_now())
    # each entry names its own caller and case, as a verdict alone's does
    assert verify.rt.pool is not None
    async with verify.rt.pool.acquire() as conn:
        trail = await conn.fetch(
            "SELECT user_id, case_id, task_id, outcome, code FROM audit_log "
            "WHERE command = 'verification' ORDER BY id"
        )
    assert sorted((r["user_id"], r["task_id"], r["outcome"]) for r in trail) == sorted(
        [(SUP, t, "accepted") for t in tasks[:5]] + [(OTHER_SUP, tasks[5], "refused")]
    )
    assert all(r["case_id"] == case_of_task(r["task_id"]) for r in trail)
    # the refused one is still the supervisor's to answer
    assert [t["task_id"] for t in await verify.my_tasks(SUP)] == [tasks[5]]


async def test_a_redelivered_event_opens_no_second_task(verify: Harness) -> None:
    now = verify.clock.now()
    handled = ev.CaseHandled(
        **verify.dims("C-DUP"),
        occurred_at=now,
        dept="sanitation",
        task_id="T-C-DUP",
        result="已处理",
        completed_at=now,
    )
    # The same event id twice, past JetStream's duplicate window (as after a republish):
    # only verify's inbox stands between it and a second task.
    headers, body = to_binary(Envelope.of(handled, source="/gridloop/handling", time=now))
    for n in range(2):
        await verify.js.publish("case.handled", body, headers={**headers, "Nats-Msg-Id": f"m{n}"})
    await verify.handled("C-WITNESS")
    await verify.wait(ev.CaseVerificationAssigned, case_id="C-WITNESS")
    assert len(verify.emitted(ev.CaseVerificationAssigned, case_id="C-DUP")) == 1
    r = await verify.call("GET", "/cases/C-DUP", LEAD)
    assert [t["task_id"] for t in r.json()["tasks"]] == ["C-DUP:V1"]


async def test_recall_and_closing_elsewhere_cancel_open_tasks(verify: Harness) -> None:
    await verify.handled("C-RECALL")
    await verify.handled("C-ELSE")
    recall_task = await verify.task_of("C-RECALL")
    else_task = await verify.task_of("C-ELSE")
    await verify.upstream(
        ev.CaseRecalled(**verify.dims("C-RECALL"), occurred_at=T0, reason="派遣错误"), "dispatch"
    )
    await verify.upstream(
        ev.CaseClosed(**verify.dims("C-ELSE"), occurred_at=T0, closed_by="lead-01", on_time=True),
        "intake",
    )

    async def both_cancelled() -> bool:
        statuses = [
            (await verify.call("GET", f"/tasks/{t}", LEAD)).json()["status"]
            for t in (recall_task, else_task)
        ]
        return statuses == ["cancelled", "cancelled"]

    await wait_for(both_cancelled, what="both tasks cancelled")
    r = await verify.verdict(recall_task, True)
    assert r.status_code == 409 and r.json()["detail"][0]["code"] == "task-closed"
    assert await verify.my_tasks(SUP) == []
    # A result after a recall is verified again; one after closing is not (published first,
    # so it has been handled when the other's task appears).
    await verify.handled("C-ELSE")
    await verify.handled("C-RECALL")
    await verify.wait(ev.CaseVerificationAssigned, n=2, case_id="C-RECALL")
    assert [t["case_id"] for t in await verify.my_tasks(SUP)] == ["C-RECALL"]
