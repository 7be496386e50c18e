"""回访: the call-back of a reporter whose closed case is not rated after some days. Pure: a
try of the operator's is recorded on the call-back of that closing; reached, or not reached
`max_tries` times, it is concluded and `case.called_back` says so (scoring counts it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridloop_contracts import Actor
from gridloop_contracts import cases as ev
from gridloop_runtime.step import Step

from .case import CaseRow, Entry
from .problems import Problem, Refused

# The channels whose reporters are called back: the hotline's callers, the public's reports.
CALLED_BACK_CHANNELS = ("hotline", "web")


@dataclass
class Callback:
    """The call-back of one closing of a case."""

    case_id: str
    closed_at: datetime
    tries: int = 0
    outcome: str | None = None  # reached | not_reached; None: still on the worklist
    attempts: list[dict[str, Any]] = field(default_factory=list)


def record_try(
    callback: Callback,
    case: CaseRow,
    step: Step,
    who: Actor,
    *,
    reached: bool,
    note: str | None,
    max_tries: int,
) -> ev.CaseCalledBack | None:
    """One try: reached concludes the call-back; not reached counts, and the `max_tries`-th
    concludes it as not reached. Returns the event of a conclusion (emitted), else None."""
    if case.case_status.value != "closed" or case.closed_at != callback.closed_at:
        raise Refused(Problem("case_id", f"case {case.case_id} is not closed", "not-closed", 409))
    if case.channel not in CALLED_BACK_CHANNELS:
        raise Refused(
            Problem(
                "case_id",
                f"case {case.case_id} came in on {case.channel}: not called back",
                "not-called-back",
                409,
            )
        )
    if callback.outcome is not None:
        raise Refused(
            Problem(
                "case_id",
                f"the call-back of case {case.case_id} is over ({callback.outcome})",
                "callback-over",
                409,
            )
        )
    now = step.now()
    callback.tries += 1
    callback.attempts.append(
        {"at": now.isoformat(), "by": who.id, "reached": reached, "note": note}
    )
    if not reached and callback.tries < max_tries:
        return None
    callback.outcome = "reached" if reached else "not_reached"
    event = ev.CaseCalledBack(
        case_id=case.case_id,
        occurred_at=now,
        actor=who,
        category_code=case.category_code,
        cell_code=case.cell_code,
        community_code=case.community_code,
        subdistrict_code=case.subdistrict_code,
        reached=reached,
        tries=callback.tries,
        closed_at=callback.closed_at,
        dept=case.dept,
        note=note,
    )
    step.emit(event)
    return event


def timeline_entry(case: CaseRow, cb: Callback, who: Actor, at: datetime) -> Entry:
    """The try on the case's timeline (回访记录)."""
    last = cb.attempts[-1]
    verb = "已联系上 / reached" if last["reached"] else "未联系上 / not reached"
    ended = {"reached": "，回访完成", "not_reached": "，回访结束（未联系上）"}.get(
        cb.outcome or "", ""
    )
    return Entry(
        case_id=case.case_id,
        type="intake.callback",
        occurred_at=at,
        summary=f"回访第 {cb.tries} 次：{verb}{ended}"
        + (f"：{last['note']}" if last["note"] else ""),
        data={"try": cb.tries, **last, "outcome": cb.outcome},
        recorded_at=at,
        actor=who.model_dump(exclude_none=True),
    )
