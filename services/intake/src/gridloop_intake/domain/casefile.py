"""The case file (案卷档案): what each lifecycle event means for a case's status, its notes to
the reporter, and the columns the search reads (department, deadline, overdue)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gridloop_contracts import REGISTRY, CaseStatus
from gridloop_contracts import cases as ev
from gridloop_contracts.common import level_of

from .case import CaseRow

_TZ = ZoneInfo("Asia/Shanghai")

DeptName = Callable[[str], str]


def _when(at: datetime | None) -> str:
    return at.astimezone(_TZ).strftime("%Y-%m-%d %H:%M") if at else ""


@dataclass(frozen=True)
class Change:
    """What one event does to the case file: the new status (None: unchanged), the notes the
    reporter is told, and column updates for search."""

    status: CaseStatus | None
    notes: str | None
    columns: dict[str, Any] = field(default_factory=dict)
    # the statuses it moves the case from (None: any the settled-case rule allows)
    moves_from: frozenset[CaseStatus] | None = None


# While the case waits in the manual dispatch queue no department holds it: a department's
# news of a task (signed, in progress, handled) that crossed the recall on the bus is kept in
# the timeline without moving the status; a new dispatch, verification or closing moves it.
DEPARTMENT_NEWS = frozenset(CaseStatus) - {CaseStatus.MANUAL_DISPATCH}


def change_for(event: ev.CaseEvent, dept_name: DeptName, case: CaseRow | None = None) -> Change:
    """One place for every event type; events that do not move the case only add columns.
    `case`: the case as it stands before the event (None: not on file, or not needed — only
    the overdue counts read it)."""
    e = event
    if isinstance(e, ev.CaseReported):
        return Change(CaseStatus.RECEIVED, "已接收，正在受理 / received")
    if isinstance(e, ev.CaseConfirmationRequested):
        return Change(
            CaseStatus.PENDING_CONFIRMATION, "待监督员现场核实 / awaiting on-site confirmation"
        )
    if isinstance(e, ev.CaseAccepted):
        return Change(
            CaseStatus.ACCEPTED,
            f"已立案，类别 {e.category_code} / accepted",
            {"category_code": e.category_code, "accepted_at": e.occurred_at},
        )
    if isinstance(e, ev.CaseRejected):
        return Change(CaseStatus.REJECTED, f"不予立案：{e.reason} / not accepted ({e.reason_code})")
    if isinstance(e, ev.CaseQueued):
        # 待人工派遣: the command centre places it by hand; no department holds it meanwhile
        return Change(
            CaseStatus.MANUAL_DISPATCH,
            f"待人工派遣：{e.reason} / waiting for a dispatcher",
            {"dept": None},
        )
    if isinstance(e, ev.CaseDispatched):
        return Change(
            CaseStatus.DISPATCHED,
            f"已派遣至{dept_name(e.dept)}，处置期限 {_when(e.deadline)} / dispatched",
            {"dept": e.dept, "task_id": e.task_id, "deadline": e.deadline, "overdue": False},
        )
    if isinstance(e, ev.CaseRecalled):
        return Change(CaseStatus.RECALLED, f"指挥中心已撤回：{e.reason} / recalled")
    if isinstance(e, ev.CaseSigned):
        return Change(
            CaseStatus.SIGNED,
            f"{dept_name(e.dept or '')}已签收 / signed for",
            moves_from=DEPARTMENT_NEWS,
        )
    if isinstance(e, ev.CaseReturned):
        # Back at the command centre for re-routing; the next dispatch moves the status on.
        return Change(None, None, {"dept": None})
    if isinstance(e, ev.CaseExtensionDecided):
        if e.granted and e.new_deadline is not None:
            return Change(None, None, {"deadline": e.new_deadline, "overdue": False})
        return Change(None, None)
    if isinstance(e, ev.CaseProgress):
        return Change(
            CaseStatus.IN_PROGRESS, f"处置中：{e.note} / in progress", moves_from=DEPARTMENT_NEWS
        )
    if isinstance(e, ev.CaseHandled):
        return Change(
            CaseStatus.HANDLED,
            f"{dept_name(e.dept or '')}已处置：{e.result}，待核查 / handled",
            {"overdue": False, "result": e.result},
            moves_from=DEPARTMENT_NEWS,
        )
    if isinstance(e, ev.CaseUnqueued):
        # the result crossed the recall: out of the queue, verification's turn (a verification
        # assigned already is not undone)
        return Change(
            CaseStatus.HANDLED,
            f"{dept_name(e.dept or '')}已处置，撤回作废，待核查 / handled before the recall",
            {"dept": e.dept, "task_id": e.task_id},
            moves_from=frozenset({CaseStatus.MANUAL_DISPATCH}),
        )
    if isinstance(e, ev.CaseOverdue):
        if e.stage == "handling":
            count = standing_overdues(case) + 1
            return Change(
                None, None, {"overdue": True, "ever_overdue": True, "overdue_count": count}
            )
        return Change(None, None)
    if isinstance(e, ev.CaseOverdueWithdrawn):
        # 超期撤回: the department was on time after all. A 签收超时 set no flag; a 超期 is no
        # longer standing: the case was ever overdue only if another one still stands.
        if e.stage == "handling":
            left = max(0, standing_overdues(case) - 1)
            return Change(
                None, None, {"overdue": False, "ever_overdue": left > 0, "overdue_count": left}
            )
        return Change(None, None)
    if isinstance(e, ev.CaseVerificationAssigned):
        if e.purpose == "confirmation":
            return Change(None, None)
        return Change(CaseStatus.VERIFYING, "监督员现场核查中 / being verified on site")
    if isinstance(e, ev.CaseReworked):
        cols: dict[str, Any] = {"reworks": e.count}
        if e.new_deadline is not None:
            cols["deadline"] = e.new_deadline
        return Change(CaseStatus.REWORKING, f"核查未通过，返工：{e.reason} / rework", cols)
    if isinstance(e, ev.CaseClosed):
        return Change(
            CaseStatus.CLOSED,
            "已结案，欢迎评价 / closed" + ("" if e.on_time else "（超期结案 / closed late）"),
            {"closed_at": e.occurred_at, "on_time": e.on_time, "overdue": False},
        )
    if isinstance(e, ev.CaseRated):
        return Change(None, None, {"rating": level_of(e.rating)})
    if isinstance(e, ev.CaseRatedV2):
        return Change(None, None, {"rating": e.level})
    if isinstance(e, ev.CaseReopened):
        return Change(
            CaseStatus.REWORKING,
            f"案卷重新办理：{e.reason} / reopened",
            {"closed_at": None, "archived": False},
        )
    return Change(None, None)


def standing_overdues(case: CaseRow | None) -> int:
    """The handling-stage overdues declared on the case and not withdrawn; a case that was
    ever overdue has at least one (a row whose overdue was counted by no release that kept
    the count)."""
    if case is None:
        return 0
    return max(case.overdue_count, 1 if case.ever_overdue else 0)


def withdrawal_note(e: ev.CaseOverdueWithdrawn) -> str:
    """超期撤回, as the timeline says it: what was withdrawn, and why (the answer's time)."""
    if e.stage == "sign_in":
        return (
            f"签收超时撤回：已于 {_when(e.answered_at)} 按时签收"
            " / sign-in overdue withdrawn: signed in time"
        )
    note = (
        f"超期撤回：处置结果已于 {_when(e.answered_at)} 在期限前反馈"
        " / overdue withdrawn: the result came in time"
    )
    if e.escalation_levels:
        levels = "、".join(str(n) for n in e.escalation_levels)
        english = ", ".join(str(n) for n in e.escalation_levels)
        note += f"（督办 {levels} 级一并撤回 / escalation levels {english} withdrawn with it）"
    return note


# The fields that say the most about an event, in the order a timeline line prefers them.
_DETAIL_FIELDS = ("reason", "result", "note", "notes", "comment")


def summary(event: ev.CaseEvent) -> str:
    """One line for the timeline: the event's own summary plus its most telling field (a
    withdrawal: what was withdrawn, and why)."""
    if isinstance(event, ev.CaseOverdueWithdrawn):
        return withdrawal_note(event)
    detail = ""
    fields = type(event).model_fields  # a miss through getattr costs pydantic an exception
    for name in _DETAIL_FIELDS:
        value = getattr(event, name) if name in fields else None
        if isinstance(value, str) and value:
            detail = value
            break
    text = type(event).summary
    return f"{text}: {detail}" if detail else text


def note(type_name: str, summary: str | None) -> str | None:
    """What a timeline line says beyond its event's own summary, for a reader whose language
    names the event by its type (the console's timeline): the detail after the event's
    summary (`summary` above), the whole line when the line is not made from it (a rule's
    own words, a withdrawal), None when it says nothing more."""
    if not summary:
        return None
    own = getattr(REGISTRY.get(type_name), "summary", None)
    if isinstance(own, str) and own:
        if summary == own:
            return None
        if summary.startswith(f"{own}: "):
            return summary[len(own) + 2 :] or None
    return summary


def merged_notes(case_id: str, status: CaseStatus, status_notes: str | None) -> str:
    return f"已并入案卷 {case_id}（当前：{status_notes or status.value}）/ merged into {case_id}"


def moves(current: CaseStatus, change: Change) -> bool:
    """Whether `change` moves a case now in `current` to its status."""
    if change.status is None:
        return False
    if change.moves_from is not None and current not in change.moves_from:
        return False
    return may_move(current, change.status)


def may_move(current: CaseStatus, new: CaseStatus) -> bool:
    """A late or replayed event must not reopen what is settled: a closed case moves only to
    rework (reopened after a dissatisfied rating); rejected and merged cases never move."""
    if current in (CaseStatus.REJECTED, CaseStatus.MERGED):
        return False
    if current == CaseStatus.CLOSED:
        return new == CaseStatus.REWORKING
    return True
