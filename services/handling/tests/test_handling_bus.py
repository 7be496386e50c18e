"""Handling against a real nats-server and PostgreSQL: upstream events are published as intake
and dispatch would, departments use the REST API and their own systems over NATS, and the
tests watch what handling puts on the bus and answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from gridloop_contracts import CaseStatus, Envelope, decode
from gridloop_contracts import cases as ev
from gridloop_devkit.testing import wait_for
from gridloop_handling.handlers import own_inbox
from gridloop_runtime.auth import AuthSettings, issue_token
from gridloop_runtime.outbox import Work

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from .conftest import Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(days=1)
PHOTO = "https://evidence.example.org/report/1.jpg"
DONE = "https://evidence.example.org/done/1.jpg"


def result_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "result": "垃圾已清运，路面已冲洗",
        "evidence": [{"url": DONE, "kind": "photo"}],
        "completed_at": T0.isoformat(),
    }
    body.update(kw)
    return body


def reply_inbox(handling: Harness, dept: str) -> str:
    """A fresh subject under the department's own inbox prefix (where handling answers)."""
    return own_inbox(dept) + handling.nc.new_inbox().rsplit(".", 1)[-1]


def detail(r: Any) -> dict[str, Any]:
    [error] = r.json()["detail"]
    return dict(error)


# -- the inbox ----------------------------------------------------------------------------
async def test_a_dispatched_case_is_in_the_inbox_with_what_where_and_the_deadline(
    handling: Harness,
) -> None:
    await handling.accepted("C-1", urgency="urgent")
    await handling.dispatched("C-1", sign_in_due=T0 + timedelta(hours=2), urgency="urgent")
    item = await handling.in_inbox("sanitation", "C-1")
    assert (item["task_id"], item["role"], item["stage"], item["state"]) == (
        "T-C-1",
        "sole",
        "to_sign",
        "dispatched",
    )
    assert item["urgency"] == "urgent" and item["status"] == "dispatched"
    assert datetime.fromisoformat(item["deadline"]) == DEADLINE
    # Monday 10:00 → Tuesday 10:00: 24 clock hours, one working day of 7.5 working hours.
    assert (item["remaining_s"], item["remaining_working_s"]) == (86400, 27000)
    assert item["overdue"] is False
    case = item["case"]
    assert case["description"] == "东华门大街12号门前垃圾堆放"
    assert case["location"] == {"lat": 39.9142, "lon": 116.3975}
    assert [a["url"] for a in case["attachments"]] == [PHOTO]
    assert case["category_name"] == "积存垃圾渣土" and case["closing_standard"]
    # Other departments do not see it; the command centre may look.
    assert (await handling.inbox("water"))["items"] == []
    assert (await handling.inbox("sanitation", "disp-01"))["total"] == 1
    summary = await handling.call("GET", "/departments/sanitation/summary", "sanitation-ops")
    assert summary.json()["to_sign"] == 1 and summary.json()["overdue"] == 0

    handling.clock.advance(timedelta(days=2))
    [late] = (await handling.inbox("sanitation", overdue=True))["items"]
    assert late["overdue"] is True and late["overdue_by_s"] == 86400
    assert (await handling.inbox("sanitation", overdue=False))["items"] == []

    # Only its department and the command centre read an inbox.
    other = await handling.call("GET", "/departments/sanitation/cases", "water-ops")
    assert other.status_code == 403 and detail(other)["code"] == "wrong-department"
    supervisor = await handling.call("GET", "/departments/sanitation/cases", "sup-001")
    assert supervisor.status_code == 403 and detail(supervisor)["code"] == "forbidden"
    nobody = await handling.call("GET", "/departments/sanitation/cases", None)
    assert nobody.status_code == 401
    unknown = await handling.call("GET", "/departments/no-such-dept/cases", "disp-01")
    assert unknown.status_code == 404 and detail(unknown)["field"] == "dept"
    bad = await handling.call("GET", "/departments/sanitation/cases", "disp-01", sort="nope")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "sort"]


async def test_inbox_filters_sorts_and_keeps_the_history(handling: Harness) -> None:
    await handling.accepted("C-LATER")
    await handling.dispatched("C-LATER", deadline=DEADLINE + timedelta(days=2))
    await handling.accepted("C-SOON", urgency="urgent")
    await handling.dispatched("C-SOON", deadline=DEADLINE, urgency="urgent")
    await handling.accepted("C-MID", description="王府井大街路面积水")
    await handling.dispatched("C-MID", deadline=DEADLINE + timedelta(days=1))
    await handling.in_inbox("sanitation", "C-MID")

    def ids(page: dict[str, Any]) -> list[str]:
        return [i["case_id"] for i in page["items"]]

    assert ids(await handling.inbox("sanitation")) == ["C-SOON", "C-MID", "C-LATER"]
    assert ids(await handling.inbox("sanitation", sort="-deadline")) == [
        "C-LATER",
        "C-MID",
        "C-SOON",
    ]
    assert ids(await handling.inbox("sanitation", urgency="urgent")) == ["C-SOON"]
    assert ids(await handling.inbox("sanitation", q="王府井")) == ["C-MID"]
    page = await handling.inbox("sanitation", limit=1, offset=1)
    assert ids(page) == ["C-MID"] and page["total"] == 3

    assert (await handling.rest("sign", "sanitation", "C-MID")).status_code == 200
    assert ids(await handling.inbox("sanitation", stage="in_progress")) == ["C-MID"]
    assert ids(await handling.inbox("sanitation", stage="to_sign")) == ["C-SOON", "C-LATER"]
    returned = await handling.rest("return", "sanitation", "C-LATER", reason="属于园林绿化局的树木")
    assert returned.status_code == 200
    assert ids(await handling.inbox("sanitation")) == ["C-SOON", "C-MID"]
    [history] = (await handling.inbox("sanitation", state="closed"))["items"]
    assert history["case_id"] == "C-LATER" and history["state"] == "returned"
    assert "园林" in history["end_reason"]
    assert len((await handling.inbox("sanitation", state="all"))["items"]) == 3


# -- the commands over REST ------------------------------------------------------------------
async def test_sign_progress_and_result_over_rest_emit_the_case_events(handling: Harness) -> None:
    await handling.accepted("C-REST")
    await handling.dispatched("C-REST", sign_in_due=T0 + timedelta(hours=2))
    await handling.in_inbox("sanitation", "C-REST")
    handling.clock.advance(timedelta(minutes=20))

    r = await handling.rest("sign", "sanitation", "C-REST")
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] is True and r.json()["status"] == "signed"
    assert r.json()["task"]["signed_by"] == "sanitation-ops"
    [signed] = await handling.wait(ev.CaseSigned, case_id="C-REST")
    assert signed.data["on_time"] is True and signed.data["dept"] == "sanitation"
    assert signed.data["task_id"] == "T-C-REST" and signed.data["cell_code"] == "1101010010010001"
    assert signed.data["category_code"] == "E0102"
    assert signed.data["actor"] == {
        "id": "sanitation-ops",
        "role": "department",
        "dept": "sanitation",
        "name": "区环境卫生服务中心值班员",
    }

    note: dict[str, Any] = {"note": "已安排清运车辆", "evidence": [{"url": DONE, "kind": "photo"}]}
    r = await handling.rest("progress", "sanitation", "C-REST", **note)
    assert r.status_code == 200 and r.json()["status"] == "in_progress"
    [progress] = await handling.wait(ev.CaseProgress, case_id="C-REST")
    assert progress.data["note"] == "已安排清运车辆" and progress.data["contribution"] is False

    handling.clock.advance(timedelta(minutes=20))
    body = result_body(completed_at=(T0 + timedelta(minutes=30)).isoformat())
    r = await handling.rest("result", "sanitation", "C-REST", **body)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "handled" and r.json()["task"]["stage"] == "awaiting_verification"
    [handled] = await handling.wait(ev.CaseHandled, case_id="C-REST")
    assert handled.data["result"] == "垃圾已清运，路面已冲洗" and handled.data["on_time"] is True
    assert [e["url"] for e in handled.data["evidence"]] == [DONE]
    assert datetime.fromisoformat(handled.data["completed_at"]) == T0 + timedelta(minutes=30)
    assert datetime.fromisoformat(handled.data["deadline"]) == DEADLINE

    task = await handling.task("sanitation", "C-REST")
    assert [h["action"] for h in task["history"]] == ["dispatched", "signed", "progress", "handled"]
    assert task["history"][1]["by"] == "sanitation-ops"

    # Without a completion time the result is completed when it is reported.
    await handling.new_case("C-NOW")
    assert (await handling.rest("sign", "sanitation", "C-NOW")).status_code == 200
    body = result_body()
    del body["completed_at"]
    assert (await handling.rest("result", "sanitation", "C-NOW", **body)).status_code == 200
    [now] = await handling.wait(ev.CaseHandled, case_id="C-NOW")
    assert datetime.fromisoformat(now.data["completed_at"]) == handling.clock.now()


async def test_return_and_extension_over_rest(handling: Harness) -> None:
    await handling.new_case("C-RET")
    r = await handling.rest("return", "sanitation", "C-RET", reason="井盖属于自来水集团")
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    [returned] = await handling.wait(ev.CaseReturned, case_id="C-RET")
    assert returned.data["reason"] == "井盖属于自来水集团"
    again = await handling.rest("sign", "sanitation", "C-RET")
    assert again.status_code == 409 and detail(again)["code"] == "task-returned"

    await handling.new_case("C-EXT")
    await handling.rest("sign", "sanitation", "C-EXT")
    proposed = (DEADLINE + timedelta(days=2)).isoformat()
    r = await handling.rest(
        "extension",
        "sanitation",
        "C-EXT",
        reason="需协调大型清运车辆",
        proposed_deadline=proposed,
        command_id="ext-1",
    )
    assert r.status_code == 200, r.text
    assert r.json()["task"]["extension_pending"]["request_id"] == "sanitation:ext-1"
    [asked] = await handling.wait(ev.CaseExtensionRequested, case_id="C-EXT")
    assert asked.data["request_id"] == "sanitation:ext-1"
    assert datetime.fromisoformat(asked.data["proposed_deadline"]) == DEADLINE + timedelta(days=2)
    pending = await handling.rest(
        "extension", "sanitation", "C-EXT", reason="再申请", proposed_deadline=proposed
    )
    assert pending.status_code == 409 and detail(pending)["code"] == "extension-pending"

    # The dispatcher grants it: the deadline moves and the request is settled.
    await handling.upstream(
        ev.CaseExtensionDecided(
            **handling.dims("C-EXT"),
            occurred_at=handling.clock.now(),
            dept="sanitation",
            task_id="T-C-EXT",
            granted=True,
            new_deadline=DEADLINE + timedelta(days=2),
            request_id="sanitation:ext-1",
        )
    )

    async def moved() -> bool:
        task = await handling.task("sanitation", "C-EXT")
        return task["extension_pending"] is None and task["extensions_granted"] == 1

    await wait_for(moved, timeout=10, what="the granted extension")
    task = await handling.task("sanitation", "C-EXT")
    assert datetime.fromisoformat(task["deadline"]) == DEADLINE + timedelta(days=2)


# -- refusals over REST --------------------------------------------------------------------
async def test_rest_refusals_name_the_reason_and_change_nothing(handling: Harness) -> None:
    await handling.new_case("C-NO")
    early = await handling.rest("result", "sanitation", "C-NO", **result_body())
    assert early.status_code == 409
    assert detail(early)["code"] == "not-signed" and detail(early)["field"] == "case_id"
    assert early.json()["status"] == "dispatched"

    other = await handling.rest("sign", "sanitation", "C-NO", user="water-ops")
    assert other.status_code == 403 and detail(other)["code"] == "wrong-department"
    not_theirs = await handling.rest("sign", "water", "C-NO", user="water-ops")
    assert not_theirs.status_code == 403 and detail(not_theirs)["field"] == "case_id"
    dispatcher = await handling.rest("sign", "sanitation", "C-NO", user="disp-01")
    assert dispatcher.status_code == 403 and detail(dispatcher)["code"] == "forbidden"
    missing = await handling.rest("sign", "sanitation", "C-404")
    assert missing.status_code == 404 and detail(missing)["code"] == "not-found"

    short = await handling.rest("return", "sanitation", "C-NO", reason="x")
    assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "reason"]
    await handling.rest("sign", "sanitation", "C-NO")
    bad_url = await handling.rest(
        "result", "sanitation", "C-NO", **result_body(evidence=[{"url": "not a url"}])
    )
    assert bad_url.status_code == 422
    assert bad_url.json()["detail"][0]["loc"] == ["body", "evidence", 0, "url"]
    naive = await handling.rest(
        "result", "sanitation", "C-NO", **result_body(completed_at="2026-11-23T10:00:00")
    )
    assert naive.status_code == 422 and naive.json()["detail"][0]["loc"][-1] == "completed_at"
    no_evidence = await handling.rest("result", "sanitation", "C-NO", **result_body(evidence=[]))
    assert no_evidence.status_code == 422 and detail(no_evidence)["field"] == "evidence"
    future = await handling.rest(
        "result",
        "sanitation",
        "C-NO",
        **result_body(completed_at=(T0 + timedelta(hours=2)).isoformat()),
    )
    assert future.status_code == 422 and detail(future)["field"] == "completed_at"
    past = await handling.rest(
        "extension", "sanitation", "C-NO", reason="延期", proposed_deadline=T0.isoformat()
    )
    assert past.status_code == 422 and detail(past)["field"] == "proposed_deadline"

    await handling.cases.poll()
    assert handling.emitted(ev.CaseHandled) == [] and handling.emitted(ev.CaseReturned) == []
    assert len(handling.emitted(ev.CaseSigned, case_id="C-NO")) == 1


async def test_the_command_centre_reads_the_inboxes_of_its_territory_only(
    handling: Harness,
) -> None:
    """A department reads its own inbox; the command centre and evaluators any department's,
    but only the cases in their territory (a token without one: none). A case out of reach
    is answered as one never dispatched there, and the attempt is audited."""
    await handling.new_case("C-TERR")
    assert handling.http is not None

    def bearer(user: str, territory: list[str] | None) -> dict[str, str]:
        token = issue_token(AuthSettings(), user_id=user, roles=["dispatcher"], territory=territory)
        return {"Authorization": f"Bearer {token}"}

    here, far, nowhere = (
        bearer("disp-here", ["110101001"]),
        bearer("disp-far", ["110101002"]),
        bearer("disp-none", None),
    )
    inbox, one = "/departments/sanitation/cases", "/departments/sanitation/cases/C-TERR"
    summary = "/departments/sanitation/summary"
    r = await handling.http.get(inbox, headers=here)
    assert [i["case_id"] for i in r.json()["items"]] == ["C-TERR"]
    assert (await handling.http.get(one, headers=here)).status_code == 200
    assert (await handling.http.get(summary, headers=here)).json()["to_sign"] == 1
    unknown = await handling.http.get("/departments/sanitation/cases/C-NONE", headers=here)
    for headers in (far, nowhere):
        r = await handling.http.get(inbox, headers=headers)
        assert r.status_code == 200 and r.json()["items"] == [] and r.json()["total"] == 0
        assert (await handling.http.get(summary, headers=headers)).json()["to_sign"] == 0
        r = await handling.http.get(one, headers=headers)
        assert r.status_code == 404 and detail(r) == {
            **detail(unknown),
            "reason": detail(unknown)["reason"].replace("C-NONE", "C-TERR"),
        }
    # another department's staff are refused by role, and that is audited too
    other = await handling.call("GET", one, "water-ops")
    assert other.status_code == 403 and detail(other)["code"] == "wrong-department"

    assert handling.rt.pool is not None
    async with handling.rt.pool.acquire() as conn:
        trail = await conn.fetch(
            "SELECT user_id, case_id, code, status, reason FROM audit_log "
            "WHERE outcome = 'refused' ORDER BY id"
        )
    assert [(t["user_id"], t["case_id"], t["code"], t["status"]) for t in trail] == [
        ("disp-far", "C-TERR", "out-of-reach", 404),
        ("disp-none", "C-TERR", "out-of-reach", 404),
        ("water-ops", "C-TERR", "wrong-department", 403),
    ]
    assert "110101002" in trail[0]["reason"]


async def test_a_command_id_gives_the_same_answer_and_one_event(handling: Harness) -> None:
    await handling.new_case("C-IDEM")
    first = await handling.rest("sign", "sanitation", "C-IDEM", command_id="sign-1")
    handling.clock.advance(timedelta(minutes=5))
    again = await handling.rest("sign", "sanitation", "C-IDEM", command_id="sign-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replay"] == "true"
    assert "Idempotent-Replay" not in first.headers
    # Another command under the same id is a duplicate, not a replay.
    reuse = await handling.rest(
        "return", "sanitation", "C-IDEM", reason="不是我们", command_id="sign-1"
    )
    assert reuse.status_code == 409 and detail(reuse)["code"] == "duplicate-command"
    # A new id for the same thing is a new command: refused, the task is already signed.
    new = await handling.rest("sign", "sanitation", "C-IDEM", command_id="sign-2")
    assert new.status_code == 409 and detail(new)["code"] == "already-signed"
    # The same id over NATS is the same command: the first answer again.
    await handling.command("signed", "sanitation", "C-IDEM", command_id="sign-1")
    answer = await handling.answer("sanitation", "sign-1")
    assert answer.accepted is True and answer.status == CaseStatus.SIGNED
    await handling.cases.poll()
    assert len(handling.emitted(ev.CaseSigned, case_id="C-IDEM")) == 1


async def test_a_result_resent_without_its_time_is_the_same_command(handling: Harness) -> None:
    """A result sent without `completed_at` is timed when taken; its resend (the answer was
    lost) is timed anew, and is still the same command: the first answer again, one event.
    The same holds over NATS for a resend that carries another time."""
    h = handling
    await h.new_case("C-RES")
    sign = await h.rest("sign", "sanitation", "C-RES", command_id="res-s")
    assert sign.status_code == 200, sign.text
    result: dict[str, Any] = {
        "result": "已清运",
        "evidence": [{"url": "https://evidence.example.org/r.jpg"}],
    }
    first = await h.rest("result", "sanitation", "C-RES", command_id="res-1", **result)
    assert first.status_code == 200, first.text
    h.clock.advance(timedelta(minutes=5))
    again = await h.rest("result", "sanitation", "C-RES", command_id="res-1", **result)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replay"] == "true" and again.json() == first.json()
    later = h.clock.now().isoformat()
    await h.command(
        "handled", "sanitation", "C-RES", command_id="res-1", completed_at=later, **result
    )
    assert (await h.answer("sanitation", "res-1")).accepted is True
    # another result under that id is another command
    other = await h.rest(
        "result", "sanitation", "C-RES", command_id="res-1", result="未处理", evidence=[]
    )
    assert other.status_code == 409 and detail(other)["code"] == "duplicate-command"
    await h.cases.poll()
    assert len(h.emitted(ev.CaseHandled, case_id="C-RES")) == 1


async def test_a_command_sent_over_nats_and_resent_over_rest_is_one_command(
    handling: Harness,
) -> None:
    """Over NATS a command's answer is kept without the task (the answer there does not carry
    it); the same command resent over REST gets the first answer with the task as it
    stands, and takes effect once."""
    await handling.new_case("C-BOTH")
    await handling.command("signed", "sanitation", "C-BOTH", command_id="both-1")
    first = await handling.answer("sanitation", "both-1")
    assert first.accepted is True
    assert handling.rt.pool is not None
    async with handling.rt.pool.acquire() as conn:
        kept = await conn.fetchval(
            "SELECT array(SELECT jsonb_object_keys(answer)) FROM commands "
            "WHERE command_id = 'sanitation:both-1'"
        )
    assert set(kept) == {"answer", "fingerprint"}

    handling.clock.advance(timedelta(minutes=5))
    again = await handling.rest("sign", "sanitation", "C-BOTH", command_id="both-1")
    assert again.status_code == 200 and again.headers["Idempotent-Replay"] == "true"
    body = again.json()
    assert {k: body[k] for k in ("command_id", "accepted", "action", "status")} == {
        "command_id": "both-1",
        "accepted": True,
        "action": "signed",
        "status": "signed",
    }
    now = await handling.task("sanitation", "C-BOTH")
    assert body["task"]["task_id"] == now["task_id"] == "T-C-BOTH"
    assert body["task"]["state"] == now["state"] == "signed"
    assert body["task"]["signed_by"] == "dept-system"
    await handling.cases.poll()
    assert len(handling.emitted(ev.CaseSigned, case_id="C-BOTH")) == 1


# -- the commands over NATS ----------------------------------------------------------------
async def test_every_command_over_nats_is_executed_and_answered(handling: Harness) -> None:
    await handling.new_case("C-NATS")
    sign = await handling.command("signed", "sanitation", "C-NATS", task_id="T-C-NATS")
    answer = await handling.answer("sanitation", sign)
    assert (answer.accepted, answer.action, answer.case_id, answer.status) == (
        True,
        "signed",
        "C-NATS",
        CaseStatus.SIGNED,
    )
    [signed] = await handling.wait(ev.CaseSigned, case_id="C-NATS")
    assert signed.data["actor"]["id"] == "dept-system"

    note = await handling.command("progress", "sanitation", "C-NATS", note="清运车已出发")
    assert (await handling.answer("sanitation", note)).status == CaseStatus.IN_PROGRESS
    await handling.wait(ev.CaseProgress, case_id="C-NATS")

    ext = await handling.command(
        "extension_requested",
        "sanitation",
        "C-NATS",
        reason="需要夜间作业",
        proposed_deadline=(DEADLINE + timedelta(hours=8)).isoformat(),
    )
    assert (await handling.answer("sanitation", ext)).accepted is True
    [asked] = await handling.wait(ev.CaseExtensionRequested, case_id="C-NATS")
    assert asked.data["request_id"] == f"sanitation:{ext}"

    handling.clock.advance(timedelta(hours=1))
    done = await handling.command("handled", "sanitation", "C-NATS", **result_body())
    assert (await handling.answer("sanitation", done)).status == CaseStatus.HANDLED
    [handled] = await handling.wait(ev.CaseHandled, case_id="C-NATS")
    assert handled.data["result"] == "垃圾已清运，路面已冲洗"
    # The pending extension ends with the result.
    assert (await handling.task("sanitation", "C-NATS"))["extension_pending"] is None

    await handling.new_case("C-NATS-RET")
    ret = await handling.command("returned", "sanitation", "C-NATS-RET", reason="属于排水集团")
    assert (await handling.answer("sanitation", ret)).accepted is True
    [returned] = await handling.wait(ev.CaseReturned, case_id="C-NATS-RET")
    assert returned.data["reason"] == "属于排水集团"


async def test_nats_refusals_are_answered_with_field_and_code(handling: Harness) -> None:
    await handling.new_case("C-NR")

    async def refused(command_id: str, dept: str = "sanitation") -> tuple[str, str | None]:
        answer = await handling.answer(dept, command_id)
        assert answer.accepted is False
        [error] = answer.errors
        return error.field, error.code

    early = await handling.command("handled", "sanitation", "C-NR", **result_body())
    assert await refused(early) == ("data.case_id", "not-signed")
    assert (await handling.answer("sanitation", early)).status == CaseStatus.DISPATCHED
    missing = await handling.command("returned", "sanitation", "C-NR")
    assert await refused(missing) == ("data.reason", "invalid")
    bad_time = await handling.command(
        "extension_requested", "sanitation", "C-NR", reason="延期", proposed_deadline="tomorrow"
    )
    assert await refused(bad_time) == ("data.proposed_deadline", "invalid")
    spoof = await handling.command("signed", "sanitation", "C-NR", subject_dept="water")
    assert await refused(spoof, "water") == ("data.dept", "wrong-department")
    unknown = await handling.command("approve", "sanitation", "C-NR")
    assert await refused(unknown) == ("subject", "unknown-action")
    deeper = await handling.command("signed.now", "sanitation", "C-NR")
    assert await refused(deeper) == ("subject", "unknown-action")
    mismatch = await handling.command("signed", "sanitation", "C-NR", type_action="handled")
    assert await refused(mismatch) == ("type", "invalid")
    # Not a CloudEvent at all: still answered, naming what is missing.
    await handling.js.publish("handling.sanitation.signed", b"{}", headers={"Nats-Msg-Id": "raw-1"})
    assert await refused("raw-1") == ("id", "invalid-envelope")

    await handling.cases.poll()
    assert handling.emitted(ev.CaseHandled) == [] and handling.emitted(ev.CaseSigned) == []


async def test_a_command_names_a_reply_subject_and_gets_the_answer_there(
    handling: Harness,
) -> None:
    await handling.new_case("C-REPLY")
    # under the department's own inbox prefix (the only place handling answers)
    inbox = reply_inbox(handling, "sanitation")
    sub = await handling.nc.subscribe(inbox)
    command_id = await handling.command("signed", "sanitation", "C-REPLY", replyto=inbox)
    msg = await sub.next_msg(timeout=10)
    assert msg.headers is not None and msg.headers["ce-type"] == "gridloop.dispatch.answer.v1"
    assert b'"accepted":true' in msg.data and command_id.encode() in msg.data
    # ... and on dispatch.<dept>.answer all the same.
    assert (await handling.answer("sanitation", command_id)).accepted is True
    refused = await handling.command("signed", "sanitation", "C-REPLY", replyto=inbox)
    msg = await sub.next_msg(timeout=10)
    assert b'"accepted":false' in msg.data and refused.encode() in msg.data
    await sub.unsubscribe()


async def test_a_reply_a_stopped_process_left_unsent_is_sent_by_the_sweeper(
    handling: Harness,
) -> None:
    """A reply row committed by a process that died before sending it (the row is all that
    is left) goes out once it is older than the sweep's grace, and its row goes."""
    inbox = reply_inbox(handling, "sanitation")
    sub = await handling.nc.subscribe(inbox)
    assert handling.rt.pool is not None
    async with handling.rt.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO replies (subject, headers, body, created_at) "
            "VALUES ($1, $2::text::jsonb, $3, now() - interval '1 minute')",
            inbox,
            '{"ce-type": "gridloop.dispatch.answer.v1"}',
            b'{"left": true}',
        )
    msg = await sub.next_msg(timeout=10)
    assert msg.data == b'{"left": true}'
    assert msg.headers is not None and msg.headers["ce-type"] == "gridloop.dispatch.answer.v1"
    pool = handling.rt.pool

    async def row_gone() -> bool:
        async with pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM replies")) == 0

    await wait_for(row_gone, what="the swept reply's row deleted")
    await sub.unsubscribe()


async def test_a_command_asks_for_its_answers_on_its_reply_subject_only(
    handling: Harness,
) -> None:
    """`answerfeed: none` with `replyto`: accepted or refused, the answer goes to the inbox
    alone, not on dispatch.<dept>.answer; a value that is not `all` or `none`, or `none`
    without an inbox to answer on, is refused naming the field (on the feed)."""
    await handling.new_case("C-ONLY")
    inbox = reply_inbox(handling, "sanitation")
    sub = await handling.nc.subscribe(inbox)
    signed = await handling.command(
        "signed", "sanitation", "C-ONLY", replyto=inbox, answerfeed="none"
    )
    msg = await sub.next_msg(timeout=10)
    assert b'"accepted":true' in msg.data and signed.encode() in msg.data
    again = await handling.command(
        "signed", "sanitation", "C-ONLY", replyto=inbox, answerfeed="none"
    )
    msg = await sub.next_msg(timeout=10)
    assert b'"accepted":false' in msg.data and again.encode() in msg.data
    # `all` is today's way: the inbox and the feed
    both = await handling.command(
        "progress", "sanitation", "C-ONLY", replyto=inbox, answerfeed="all", note="半"
    )
    msg = await sub.next_msg(timeout=10)
    assert both.encode() in msg.data
    assert (await handling.answer("sanitation", both)).accepted is True
    # handling answered these three in this order, each in its own commit, and its publisher
    # sends in commit order: with the third on the feed, the first two would be there too
    assert handling.answers("sanitation", signed) == []
    assert handling.answers("sanitation", again) == []
    await sub.unsubscribe()

    async def refused(command_id: str) -> tuple[str | None, str | None]:
        err = (await handling.answer("sanitation", command_id)).errors[0]
        return err.field, err.code

    odd = await handling.command("signed", "sanitation", "C-ONLY", replyto=inbox, answerfeed="x")
    assert await refused(odd) == ("answerfeed", "invalid")
    alone = await handling.command("signed", "sanitation", "C-ONLY", answerfeed="none")
    assert await refused(alone) == ("answerfeed", "invalid")


async def test_a_parked_command_is_answered_on_its_inbox_only_when_it_asked_so(
    handling: Harness,
) -> None:
    """`answerfeed: none` is kept with a parked command (`parked_commands.answer_feed`):
    when its dispatch runs it, the answer goes to the inbox alone."""
    await handling.accepted("C-PARKED-INBOX")
    inbox = reply_inbox(handling, "sanitation")
    sub = await handling.nc.subscribe(inbox)
    signed = await handling.command(
        "signed", "sanitation", "C-PARKED-INBOX", replyto=inbox, answerfeed="none"
    )
    await wait_for(lambda: _count(handling, 1), timeout=10, what="the sign parked")
    assert handling.rt.pool is not None
    stored = await handling.rt.pool.fetchval("SELECT answer_feed FROM parked_commands")
    assert stored is False
    await handling.dispatched("C-PARKED-INBOX")
    msg = await sub.next_msg(timeout=10)
    assert b'"accepted":true' in msg.data and signed.encode() in msg.data
    # a later command answered on the feed: handling's publisher sends in commit order, so
    # the parked command's answer would be on the feed by now had it been sent there
    both = await handling.command(
        "progress", "sanitation", "C-PARKED-INBOX", replyto=inbox, note="半"
    )
    assert (await handling.answer("sanitation", both)).accepted is True
    assert handling.answers("sanitation", signed) == []
    await sub.unsubscribe()


async def parked(handling: Harness) -> int:
    assert handling.rt.pool is not None
    return int(await handling.rt.pool.fetchval("SELECT count(*) FROM parked_commands"))


async def _count(handling: Harness, n: int) -> bool:
    return await parked(handling) == n


async def test_a_command_that_overtakes_its_dispatch_waits_for_it(handling: Harness) -> None:
    await handling.accepted("C-RACE")
    sign = await handling.command("signed", "sanitation", "C-RACE")
    done = await handling.command("handled", "sanitation", "C-RACE", **result_body())
    # Parked, not refused: nothing is answered until the dispatch arrives.
    await wait_for(lambda: _count(handling, 2), timeout=10, what="both parked")
    assert handling.answers("sanitation", sign) == []
    await handling.dispatched("C-RACE")
    assert (await handling.answer("sanitation", sign)).status == CaseStatus.SIGNED
    # ... and they run in the order they came.
    assert (await handling.answer("sanitation", done)).status == CaseStatus.HANDLED
    await handling.wait(ev.CaseHandled, case_id="C-RACE")
    assert await parked(handling) == 0

    # When no dispatch comes, the wait ends in a refusal.
    await handling.new_case("C-WRONG")
    # water's system signs for sanitation's case: it waits (a re-dispatch to water could be on
    # its way), then is refused as not water's.
    wrong = await handling.command("signed", "water", "C-WRONG")
    ghost = await handling.command("signed", "water", "C-GHOST")

    await wait_for(lambda: _count(handling, 2), timeout=10, what="two parked commands")
    assert handling.answers("water", wrong) == []
    handling.clock.advance(timedelta(seconds=299))
    await handling.dispatched("C-OTHER")  # something else happens meanwhile; still waiting
    await handling.in_inbox("sanitation", "C-OTHER")
    assert handling.answers("water", wrong) == [] and handling.answers("water", ghost) == []
    handling.clock.advance(timedelta(seconds=2))  # past HANDLING_PARK_S (300 s)
    answer = await handling.answer("water", wrong)
    assert answer.accepted is False and answer.errors[0].code == "wrong-department"
    refused = await handling.answer("water", ghost)
    assert refused.errors[0].code == "not-found" and "waited 30" in refused.errors[0].reason
    await wait_for(lambda: _count(handling, 0), timeout=10, what="the parks ended")


async def test_a_parked_command_survives_a_restart_and_runs_the_moment_its_dispatch_lands(
    start_handling: Callable[[], AbstractAsyncContextManager[Harness]],
) -> None:
    async with start_handling() as first:
        await first.accepted("C-PARK")
        sign = await first.command("signed", "sanitation", "C-PARK", command_id="sign-1")
        await wait_for(lambda: _count(first, 1), timeout=10, what="the sign parked")
        # the kit asks again (new message, same command id): the same wait, not a second one
        await first.command("signed", "sanitation", "C-PARK", command_id="sign-1")
    async with start_handling() as h:
        assert await parked(h) == 1  # the park is in the database
        h.clock.advance(timedelta(seconds=60))  # well inside the bound: no timer is due
        await h.dispatched("C-PARK")
        answer = await h.answer("sanitation", sign)
        assert answer.accepted is True and answer.status == CaseStatus.SIGNED
        [signed] = await h.wait(ev.CaseSigned, case_id="C-PARK")
        assert signed.data["actor"]["id"] == "dept-system"
        assert await parked(h) == 0
        # the resend's copy is answered as the same command: the first answer, no second sign
        await wait_for(lambda: len(h.answers("sanitation", sign)) >= 1, timeout=10, what="answers")
        assert len(h.emitted(ev.CaseSigned, case_id="C-PARK")) == 1


# -- co-handling -------------------------------------------------------------------------------
async def test_co_handlers_contribute_and_only_the_lead_reports_the_result(
    handling: Harness,
) -> None:
    await handling.accepted("C-GAS", "E0401")
    await handling.dispatched(
        "C-GAS", "gas", category="E0401", co_handlers=["fire", "emergency"], lead="gas"
    )
    lead = await handling.in_inbox("gas", "C-GAS")
    fire = await handling.in_inbox("fire", "C-GAS")
    emergency = await handling.in_inbox("emergency", "C-GAS")
    assert (lead["role"], fire["role"], emergency["role"]) == ("lead", "co-handler", "co-handler")
    assert fire["lead"] == "gas" and fire["task_id"] == "T-C-GAS~fire"
    assert (await handling.inbox("fire", role="co-handler"))["total"] == 1

    # fire over NATS, emergency over REST: sign, then their part.
    await handling.command("signed", "fire", "C-GAS")
    part = await handling.command(
        "progress", "fire", "C-GAS", note="已关闭阀门，现场警戒", evidence=[{"url": DONE}]
    )
    assert (await handling.answer("fire", part)).accepted is True
    assert (await handling.rest("sign", "emergency", "C-GAS")).status_code == 200
    r = await handling.rest("progress", "emergency", "C-GAS", note="已疏散周边居民")
    assert r.status_code == 200
    contributions = await handling.wait(ev.CaseProgress, n=2, contribution=True)
    assert {c.data["dept"] for c in contributions} == {"fire", "emergency"}

    # A co-handler cannot report the result, return the case or ask for time.
    not_lead = await handling.command("handled", "fire", "C-GAS", **result_body())
    assert (await handling.answer("fire", not_lead)).errors[0].code == "lead-only"
    r = await handling.rest("return", "emergency", "C-GAS", reason="不需要我们")
    assert r.status_code == 409 and detail(r)["code"] == "lead-only"

    assert (await handling.rest("sign", "gas", "C-GAS")).status_code == 200
    r = await handling.rest("result", "gas", "C-GAS", **result_body(result="燃气管道已修复"))
    assert r.status_code == 200, r.text
    [handled] = await handling.wait(ev.CaseHandled, case_id="C-GAS")
    assert handled.data["dept"] == "gas" and handled.data["task_id"] == "T-C-GAS"
    assert [(c["dept"], c["note"]) for c in handled.data["contributions"]] == [
        ("fire", "已关闭阀门，现场警戒"),
        ("emergency", "已疏散周边居民"),
    ]
    assert [e["url"] for e in handled.data["contributions"][0]["evidence"]] == [DONE]
    # The co-handlers' part ends with the lead's result.
    assert (await handling.task("fire", "C-GAS"))["stage"] == "awaiting_verification"
    late = await handling.command("progress", "fire", "C-GAS", note="补充")
    assert (await handling.answer("fire", late)).errors[0].code == "already-handled"


# -- what the rest of the loop decides ----------------------------------------------------------
async def test_closed_and_recalled_cases_refuse_commands_clearly(handling: Harness) -> None:
    await handling.new_case("C-CLOSED")
    await handling.rest("sign", "sanitation", "C-CLOSED")
    await handling.rest("result", "sanitation", "C-CLOSED", **result_body())
    await handling.upstream(
        ev.CaseClosed(
            **handling.dims("C-CLOSED"),
            occurred_at=handling.clock.now(),
            dept="sanitation",
            task_id="T-C-CLOSED",
            closed_by="sup-001",
            on_time=True,
        ),
        "verify",
    )
    await handling.in_inbox("sanitation", "C-CLOSED", state="closed")
    r = await handling.rest("progress", "sanitation", "C-CLOSED", note="补充照片")
    assert r.status_code == 409 and detail(r)["code"] == "case-closed"
    assert "closed" in detail(r)["reason"] and r.json()["status"] == "closed"
    late = await handling.command("handled", "sanitation", "C-CLOSED", **result_body())
    assert (await handling.answer("sanitation", late)).errors[0].code == "case-closed"

    await handling.new_case("C-RECALL")
    await handling.upstream(
        ev.CaseRecalled(
            **handling.dims("C-RECALL"),
            occurred_at=handling.clock.now(),
            dept="sanitation",
            task_id="T-C-RECALL",
            reason="派遣错误",
        )
    )
    recalled = await handling.in_inbox("sanitation", "C-RECALL", state="closed")
    assert recalled["state"] == "recalled"
    r = await handling.rest("sign", "sanitation", "C-RECALL")
    assert r.status_code == 409 and detail(r)["code"] == "task-recalled"
    assert "派遣错误" in detail(r)["reason"]


async def test_rework_brings_the_task_back_to_sign_in_for_a_new_result(handling: Harness) -> None:
    await handling.new_case("C-RW")
    await handling.rest("sign", "sanitation", "C-RW")
    await handling.rest("result", "sanitation", "C-RW", **result_body())
    await handling.wait(ev.CaseHandled, case_id="C-RW")
    new_deadline = DEADLINE + timedelta(days=1)
    await handling.upstream(
        ev.CaseReworked(
            **handling.dims("C-RW"),
            occurred_at=handling.clock.now(),
            dept="sanitation",
            task_id="T-C-RW",
            count=1,
            reason="仍有垃圾残留",
            new_deadline=new_deadline,
        ),
        "verify",
    )
    item = await handling.in_inbox("sanitation", "C-RW", stage="to_sign")
    assert (item["reworks"], item["round"]) == (1, 2)
    assert datetime.fromisoformat(item["deadline"]) == new_deadline
    # Dispatch's rework dispatch of the same task renews the terms without a second count.
    await handling.dispatched("C-RW", kind="rework", deadline=new_deadline)
    handling.clock.advance(timedelta(hours=2))
    assert (await handling.rest("sign", "sanitation", "C-RW")).status_code == 200
    body = result_body(completed_at=handling.clock.now().isoformat(), result="已彻底清理")
    assert (await handling.rest("result", "sanitation", "C-RW", **body)).status_code == 200
    handled = await handling.wait(ev.CaseHandled, n=2, case_id="C-RW")
    assert handled[-1].data["result"] == "已彻底清理"
    task = await handling.task("sanitation", "C-RW")
    assert task["reworks"] == 1
    assert [h["action"] for h in task["history"]].count("reworked") == 1


async def test_dispatchs_decisions_show_in_the_inboxes(handling: Harness) -> None:
    """A re-dispatch moves the case between inboxes; 督办 and 挂牌督办 show on the task."""
    await handling.new_case("C-MOVE")
    await handling.rest("return", "sanitation", "C-MOVE", reason="属于自来水集团的井盖")
    await handling.dispatched("C-MOVE", "water", task_id="T-C-MOVE-2", kind="redispatch")
    item = await handling.in_inbox("water", "C-MOVE")
    assert item["kind"] == "redispatch"
    assert (await handling.inbox("sanitation"))["items"] == []
    assert (await handling.rest("sign", "water", "C-MOVE")).status_code == 200
    r = await handling.rest("sign", "sanitation", "C-MOVE")
    assert r.status_code == 409 and detail(r)["code"] == "task-returned"

    # Escalation (督办) and listed supervision (挂牌督办) show on the task.
    await handling.new_case("C-ESC")
    await handling.upstream(
        ev.CaseEscalated(
            **handling.dims("C-ESC"),
            occurred_at=handling.clock.now(),
            dept="sanitation",
            task_id="T-C-ESC",
            level=2,
            to_role="subdistrict-leader",
            reason="超期未处置",
        )
    )
    await handling.upstream(
        ev.CaseSupervised(
            **handling.dims("C-ESC"),
            occurred_at=handling.clock.now(),
            reason="挂牌督办",
            dept="sanitation",
        )
    )

    async def shown() -> bool:
        task = await handling.task("sanitation", "C-ESC")
        return bool(task["escalation_level"] == 2 and task["supervised"])

    await wait_for(shown, timeout=10, what="督办 level 2 and 挂牌督办 on the task")
    task = await handling.task("sanitation", "C-ESC")
    assert [h["action"] for h in task["history"]][-2:] == ["escalated", "supervised"]


async def test_a_batch_of_commands_is_applied_in_stream_order_and_each_answered_once(
    handling: Harness,
) -> None:
    """A fetched batch: the cases it touches are loaded at once and the commands applied in
    order in memory — a progress after its sign in the same batch finds the task signed, a
    resend of the sign later in the batch gets the first answer again, and a refusal is
    answered without holding back the others."""
    await handling.new_case("C-B1")
    await handling.new_case("C-B2")
    service = handling.rt.state
    assert handling.rt.uow is not None and handling.rt.pool is not None

    def message(action: str, case_id: str, command_id: str, **data: Any) -> tuple[str, Envelope]:
        payload = {
            "command_id": command_id,
            "case_id": case_id,
            "dept": "sanitation",
            "by": "dept-system",
            **data,
        }
        headers = {
            "ce-specversion": "1.0",
            "ce-id": f"batch-{command_id}-{len(data)}",
            "ce-source": "/departments/sanitation",
            "ce-type": f"gridloop.handling.{action}.v1",
            "ce-time": handling.clock.now().isoformat(),
            "content-type": "application/json",
        }
        return f"handling.sanitation.{action}", decode(headers, orjson.dumps(payload))

    batch = [
        message("signed", "C-B1", "b-sign-1"),
        message("progress", "C-B1", "b-progress-1", note="清运车已出发"),
        message("signed", "C-B2", "b-sign-2"),
        message("signed", "C-B1", "b-sign-1"),  # the resend of the first
        message("handled", "C-B2", "b-result-2"),  # no evidence, no result: refused
    ]
    async with handling.rt.pool.acquire() as conn, conn.transaction():
        works = [
            Work(
                conn,
                source=handling.rt.uow.source,
                clock=handling.clock,
                trigger=env,
                subject=subject,
            )
            for subject, env in batch
        ]
        await service.bus.on_batch(conn, list(zip(works, [e for _, e in batch], strict=True)))
        rows = [w.take_rows() for w in works]
    answers = [
        [orjson.loads(body) for _, subject, _, body in r if subject == "dispatch.sanitation.answer"]
        for r in rows
    ]
    assert [len(a) for a in answers] == [1, 1, 1, 1, 1]
    sign_1, progress_1, sign_2, resend, result_2 = (a[0] for a in answers)
    assert sign_1["accepted"] and sign_1["status"] == CaseStatus.SIGNED
    assert progress_1["accepted"] and progress_1["status"] == CaseStatus.IN_PROGRESS
    assert sign_2["accepted"] and sign_2["status"] == CaseStatus.SIGNED
    assert resend == sign_1
    assert not result_2["accepted"] and result_2["errors"][0]["field"].startswith("data.")
    # one case.signed per case: the resend emitted nothing but its answer
    signed = [
        orjson.loads(body)["case_id"]
        for r in rows
        for _, subject, _, body in r
        if subject == "case.signed"
    ]
    assert signed == ["C-B1", "C-B2"]
