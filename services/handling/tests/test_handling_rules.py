"""The handling rules on a case file, without I/O: events, the five commands, parking, answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gridloop_contracts import cases as ev
from gridloop_contracts.department import HandledCommand, ProgressCommand, SignCommand
from gridloop_handling.domain.case import CaseFile
from gridloop_handling.domain.rules import PARKED, HandlingRules, Policy, parked_key
from gridloop_handling.domain.tasks import Task, TaskState
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.step import Step, Timer

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(days=1)
DIMS: dict[str, Any] = {"category_code": "E0102", "cell_code": "1101010010010001"}
PHOTO = {"url": "https://evidence.example.org/done.jpg"}


def rules(**kw: Any) -> HandlingRules:
    def view(task: Task, case: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
        return {"task_id": task.task_id, "state": str(task.state)}

    return HandlingRules(Policy(is_department=lambda d: d != "nobody", view=view, **kw))


def step(subject: str | None = None) -> Step:
    return Step(source="/gridloop/handling", clock=FakeClock(T0), subject=subject)


def dispatched(case_id: str = "C1", dept: str = "sanitation", **kw: Any) -> ev.CaseDispatched:
    values: dict[str, Any] = {"task_id": f"T-{case_id}", "deadline": DEADLINE}
    values.update(kw)
    return ev.CaseDispatched(case_id=case_id, occurred_at=T0, dept=dept, **DIMS, **values)


def sign(case_id: str = "C1", dept: str = "sanitation", **kw: Any) -> SignCommand:
    values = {"command_id": "s1", "case_id": case_id, "dept": dept, "by": f"{dept}-ops", **kw}
    return SignCommand.model_validate(values)


def emitted(s: Step) -> list[tuple[str, str]]:
    return [(subject, env.type) for subject, env in s.pending]


def test_a_dispatch_makes_the_task_and_logs_it() -> None:
    state, s = CaseFile("C1"), step()
    rules().on_dispatched(state, dispatched(), s)
    [task] = state.tasks
    assert (task.task_id, task.dept, task.role, task.state) == (
        "T-C1",
        "sanitation",
        "sole",
        TaskState.DISPATCHED,
    )
    assert state.case is not None and state.case["category_code"] == "E0102"
    assert [e.action for e in state.log] == ["dispatched"]
    assert s.pending == [] and s.timer_ops == []


def test_a_redispatch_to_another_unit_supersedes_the_open_task() -> None:
    state, s, r = CaseFile("C1"), step(), rules()
    r.on_dispatched(state, dispatched(), s)
    r.on_dispatched(state, dispatched(task_id="T2"), s)
    assert [(t.task_id, t.state) for t in state.tasks] == [
        ("T-C1", TaskState.SUPERSEDED),
        ("T2", TaskState.DISPATCHED),
    ]
    assert [e.action for e in state.log] == ["dispatched", "superseded", "dispatched"]


def test_sign_emits_case_signed_with_the_cases_dimensions() -> None:
    state, s, r = CaseFile("C1"), step(), rules()
    r.on_dispatched(state, dispatched(), s)
    done = r.execute(state, sign(), s, by_name="值班员")
    assert done is not None and done.answer.accepted and (done.task or {}).get("state") == "signed"
    [(subject, env)] = s.pending
    assert subject == "case.signed" and env.data["cell_code"] == DIMS["cell_code"]
    assert env.data["actor"]["name"] == "值班员"
    assert state.log[-1].action == "signed"


def test_a_bus_command_before_its_dispatch_is_parked_then_run_by_the_dispatch() -> None:
    state, r = CaseFile("C1"), rules()
    first = step("handling.sanitation.signed")
    r.run_bus_command(state, sign(), "_INBOX.x", first, park=True)
    [parked] = state.parked
    assert parked.action == "signed" and first.pending == []
    [op] = first.timer_ops
    assert (op.op, op.kind, op.key) == ("set", PARKED, parked_key("C1", "sanitation", "s1"))
    assert op.due_at == T0 + timedelta(minutes=5)

    then = step("case.dispatched")
    r.on_dispatched(state, dispatched(), then)
    assert state.parked == [] and state.tasks[0].state == TaskState.SIGNED
    assert emitted(then) == [
        ("case.signed", "gridloop.case.signed.v1"),
        ("dispatch.sanitation.answer", "gridloop.dispatch.answer.v1"),
    ]
    assert [(o.op, o.key) for o in then.timer_ops] == [("cancel", op.key)]
    [(reply_to, answer)] = state.replies
    assert reply_to == "_INBOX.x" and answer.data["accepted"] is True
    [(key, kind, stored)] = state.recorded
    assert (key, kind) == ("sanitation:s1", "signed") and stored["answer"]["accepted"]
    assert [a.outcome for a in state.audit] == ["accepted"]


def test_a_parked_command_is_answered_the_way_it_asked_when_it_runs() -> None:
    """`answerfeed: none` (feed False) is kept with the park: the dispatch that runs the
    command and the timer that ends its wait answer on the inbox only, not on the feed."""
    state, r = CaseFile("C1"), rules()
    inbox = "_INBOX.dept-sanitation.a"
    r.run_bus_command(state, sign(), inbox, step(), park=True, feed=False)
    r.run_bus_command(state, sign("C1", "water", command_id="w1"), inbox, step(), park=True)
    assert [p.feed for p in state.parked] == [False, True]

    then = step("case.dispatched")
    r.on_dispatched(state, dispatched(), then)
    assert emitted(then) == [("case.signed", "gridloop.case.signed.v1")]
    [(reply_to, answer)] = state.replies
    assert reply_to == inbox and answer.data["accepted"] is True

    quiet = CaseFile("C9")
    r.run_bus_command(quiet, sign("C9"), inbox, step(), park=True, feed=False)
    timer = Timer(
        1, PARKED, "C9/parked/sanitation/s1", T0, {"dept": "sanitation", "command_id": "s1"}
    )
    later = step()
    r.on_parked_expired(quiet, timer, later)
    assert later.pending == []
    [(reply_to, refused)] = quiet.replies
    assert reply_to == inbox and refused.data["errors"][0]["code"] == "not-found"


def test_a_parked_command_whose_wait_is_over_is_refused() -> None:
    state, r = CaseFile("C9"), rules()
    r.run_bus_command(state, sign("C9"), None, step(), park=True)
    payload = {"dept": "sanitation", "command_id": "s1"}
    timer = Timer(1, PARKED, "C9/parked/sanitation/s1", T0, payload)
    later = step()
    r.on_parked_expired(state, timer, later)
    assert state.parked == []
    [(subject, env)] = later.pending
    assert subject == "dispatch.sanitation.answer" and env.data["accepted"] is False
    assert env.data["errors"][0]["code"] == "not-found"
    assert [(a.outcome, a.code) for a in state.audit] == [("refused", "not-found")]


def test_a_parked_command_sent_again_joins_the_first_wait_and_takes_effect_once() -> None:
    state, r = CaseFile("C1"), rules(park_for=timedelta(minutes=10))
    first = step()
    r.run_bus_command(state, sign(), "_INBOX.dept-sanitation.a", first, park=True)
    [op] = first.timer_ops
    later = Step(source="/gridloop/handling", clock=FakeClock(T0 + timedelta(seconds=20)))
    r.run_bus_command(state, sign(), "_INBOX.dept-sanitation.b", later, park=True)
    # one park, one timer counted from the first; nothing answered yet
    assert len(state.parked) == 1 and later.timer_ops == [] and later.pending == []
    assert op.due_at == T0 + timedelta(minutes=10)
    reused = step()
    r.run_bus_command(state, sign(task_id="other"), None, reused, park=True)
    assert reused.pending == [] and len(state.parked) == 1  # task_id is not what it asks
    other = HandledCommand(
        command_id="s1",
        case_id="C1",
        dept="sanitation",
        by="x",
        result="done",
        evidence=[PHOTO],
        completed_at=T0,
    )
    dup = step()
    r.run_bus_command(state, other, None, dup, park=True)
    assert dup.pending[0][1].data["errors"][0]["code"] == "duplicate-command"
    assert len(state.parked) == 1

    then = step("case.dispatched")
    r.on_dispatched(state, dispatched(), then)
    assert emitted(then).count(("case.signed", "gridloop.case.signed.v1")) == 1
    assert state.parked == [] and state.tasks[0].state == TaskState.SIGNED
    [(reply_to, answer)] = state.replies
    assert reply_to == "_INBOX.dept-sanitation.a" and answer.data["accepted"] is True


def test_the_refusal_at_the_bound_says_how_long_the_command_waited() -> None:
    state, r = CaseFile("C9"), rules()
    r.run_bus_command(state, sign("C9"), "_INBOX.dept-sanitation.a", step(), park=True)
    payload = {"case_id": "C9", "dept": "sanitation", "command_id": "s1"}
    timer = Timer(1, PARKED, parked_key("C9", "sanitation", "s1"), T0, payload)
    at_bound = Step(source="/gridloop/handling", clock=FakeClock(T0 + timedelta(minutes=5)))
    r.on_parked_expired(state, timer, at_bound)
    [(subject, env)] = at_bound.pending
    assert subject == "dispatch.sanitation.answer" and env.data["accepted"] is False
    [error] = env.data["errors"]
    assert (error["code"], error["field"]) == ("not-found", "data.case_id")
    assert "waited 300 s" in error["reason"] and "HANDLING_PARK_S" in error["reason"]
    # the department's own inbox hears it too, and a dispatch heard later finds nothing parked
    [(reply_to, _)] = state.replies
    assert reply_to == "_INBOX.dept-sanitation.a"
    late = step("case.dispatched")
    r.on_dispatched(state, dispatched("C9"), late)
    assert late.pending == [] and state.tasks[0].state == TaskState.DISPATCHED


def test_a_resend_gets_the_first_answer_and_a_reused_id_is_refused() -> None:
    state, r = CaseFile("C1"), rules()
    r.on_dispatched(state, dispatched(), step())
    r.run_bus_command(state, sign(), None, step(), park=True)
    again = step()
    r.run_bus_command(state, sign(by="someone-else"), None, again, park=True)
    [(_, env)] = again.pending
    assert env.data["accepted"] is True and len(state.recorded) == 1
    reused = step()
    r.run_bus_command(state, sign(task_id="T-other"), None, reused, park=True)
    assert reused.pending[0][1].data["accepted"] is True  # task_id is not what it asks
    other = HandledCommand(
        command_id="s1",
        case_id="C1",
        dept="sanitation",
        by="x",
        result="done",
        evidence=[PHOTO],
        completed_at=T0,
    )
    dup = step()
    r.run_bus_command(state, other, None, dup, park=True)
    assert dup.pending[0][1].data["errors"][0]["code"] == "duplicate-command"
    assert [a.outcome for a in state.audit][-3:] == ["replayed", "replayed", "refused"]


def test_a_bus_command_keeps_its_answer_without_the_tasks_view() -> None:
    """Over NATS the answer is the CommandAnswer: the task as the department sees it is
    neither built nor kept (a REST resend builds it then), and the audit names the task."""
    built: list[str] = []

    def view(task: Task, case: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
        built.append(task.task_id)
        return {"task_id": task.task_id, "state": str(task.state)}

    r = HandlingRules(Policy(is_department=lambda d: True, view=view))
    state = CaseFile("C1")
    r.on_dispatched(state, dispatched(), step())
    r.run_bus_command(state, sign(), None, step("handling.sanitation.signed"), park=True)
    [(_, _, stored)] = state.recorded
    assert set(stored) == {"answer", "fingerprint"} and stored["answer"]["accepted"] is True
    [audit] = state.audit
    assert (audit.outcome, audit.task_id) == ("accepted", "T-C1")
    assert built == []
    # REST, on the same rules, answers with the task
    note = ProgressCommand(command_id="p1", case_id="C1", dept="sanitation", by="x", note="到场")
    done = r.execute(state, note, step(), by_name="值班员")
    assert done is not None and done.task == {"task_id": "T-C1", "state": "signed"}
    assert built == ["T-C1"]


def test_a_bus_resend_of_a_command_kept_with_its_task_replays_it() -> None:
    """A command first sent over REST (or kept by an earlier release) has its task in the
    stored answer; a resend over NATS gets the answer again, and nothing changes."""
    state, r = CaseFile("C1"), rules()
    r.on_dispatched(state, dispatched(), step())
    done = r.execute(state, sign(), step())
    assert done is not None and done.task is not None
    state.answers["sanitation:s1"] = done.stored
    assert set(done.stored) == {"answer", "task", "fingerprint"}
    again = step()
    r.run_bus_command(state, sign(), "_INBOX.y", again, park=True)
    assert state.recorded == [] and [a.outcome for a in state.audit] == ["replayed"]
    [(reply_to, answer)] = state.replies
    assert reply_to == "_INBOX.y" and answer.data["accepted"] is True
    assert [subject for subject, _ in again.pending] == ["dispatch.sanitation.answer"]


def test_a_refused_command_changes_nothing_and_says_the_status() -> None:
    state, r = CaseFile("C1"), rules()
    r.on_dispatched(state, dispatched(), step())
    result = HandledCommand.model_validate(
        {
            "command_id": "h1",
            "case_id": "C1",
            "dept": "sanitation",
            "by": "x",
            "result": "done",
            "evidence": [PHOTO],
            "completed_at": T0.isoformat(),
        }
    )
    s = step()
    r.run_bus_command(state, result, None, s, park=True)
    [(_, env)] = s.pending
    assert env.data["errors"][0]["code"] == "not-signed" and env.data["status"] == "dispatched"
    assert state.tasks[0].state == TaskState.DISPATCHED and state.recorded == []


def test_the_leads_result_carries_the_contributions_in_order_and_ends_the_team() -> None:
    state, r = CaseFile("C1"), rules()
    r.on_dispatched(
        state, dispatched(dept="gas", co_handlers=["fire", "emergency"], lead="gas"), step()
    )
    for dept in ("fire", "emergency", "gas"):
        r.execute(state, sign(dept=dept, command_id=f"s-{dept}"), step())
    for dept in ("emergency", "fire"):
        note = ProgressCommand(
            command_id=f"p-{dept}", case_id="C1", dept=dept, by="x", note=f"{dept} done"
        )
        r.execute(state, note, step())
    # one written before this load (seq from its log line) comes first
    fire = next(t for t in state.tasks if t.dept == "fire")
    fire.contributions.insert(0, {"seq": 7, "dept": "fire", "note": "earlier", "evidence": []})
    s = step()
    result = HandledCommand.model_validate(
        {
            "command_id": "h1",
            "case_id": "C1",
            "dept": "gas",
            "by": "gas-ops",
            "result": "修复",
            "evidence": [PHOTO],
            "completed_at": T0.isoformat(),
        }
    )
    r.execute(state, result, s)
    [(_, handled)] = s.pending
    assert [(c["dept"], c["note"]) for c in handled.data["contributions"]] == [
        ("fire", "earlier"),
        ("emergency", "emergency done"),
        ("fire", "fire done"),
    ]
    assert {t.dept: t.state for t in state.tasks} == {
        "gas": TaskState.HANDLED,
        "fire": TaskState.HANDLED,
        "emergency": TaskState.HANDLED,
    }


def test_closed_ends_every_open_task_and_notes_the_case() -> None:
    state, r = CaseFile("C1"), rules()
    r.on_dispatched(state, dispatched(), step())
    state.log.clear()
    closed = ev.CaseClosed(
        case_id="C1", occurred_at=T0, dept="sanitation", closed_by="sup-1", on_time=True, **DIMS
    )
    r.on_closed(state, closed, step())
    assert state.tasks[0].state == TaskState.CLOSED
    assert state.case is not None and state.case["closed_at"] == T0
    assert [e.action for e in state.log] == ["closed"]
    r.on_closed(state, closed, step())
    assert len(state.log) == 1  # nothing left to close


def test_accepted_fills_the_summary_and_never_blanks_it() -> None:
    state, r = CaseFile("C1"), rules()
    accepted = ev.CaseAccepted(
        case_id="C1",
        occurred_at=T0,
        description="垃圾",
        attachments=[PHOTO],
        **DIMS,
    )
    r.on_accepted(state, accepted, step())
    assert state.case is not None and state.case_changed
    state.case_changed = False
    r.on_dispatched(state, dispatched(), step())
    assert state.case["description"] == "垃圾" and len(state.case["attachments"]) == 1
    assert not state.case_changed  # the dispatch said nothing new about the case
