"""What happens on each event, timer and command dispatch takes — the one table to read first.

Bus (CASES stream, durable `dispatch-cases`):
  case.accepted (v2, v1)   → 派遣: the part's owner, else the routing rule's unit (category ×
                             territory), with a deadline on the working calendar:
                             case.dispatched (kind=initial) + dispatch.<dept>.assigned to every
                             party; unroutable → the manual dispatch queue (待人工派遣), with why.
                             Emergencies are escalated at once (case.escalated).
  case.signed              → 签收: the sign-in step is done (the chase timer skips it); a
                             签收超时 judged while this on-time signature was on its way is
                             withdrawn: case.overdue_withdrawn (stage=sign_in) +
                             dispatch.<dept>.overdue_withdrawn
  case.returned            → 退回: the next candidate unit (case.dispatched kind=redispatch) or
                             the manual queue with the reason; a returned part of a split case
                             always goes to the queue
  case.extension_requested → 延期申请: pending until a dispatcher decides (REST)
  case.handled             → 处置反馈: the task is done; nothing more is chased for it. An
                             超期 judged while this on-time result was on its way is withdrawn
                             with the 督办 levels reached after it: case.overdue_withdrawn +
                             dispatch.<dept>.overdue_withdrawn to every party
  case.reworked            → 返工: the same department, a new deadline: case.dispatched
                             (kind=rework) + dispatch.<dept>.rework, a new chase timer
  case.closed              → 结案: every task ends; nothing more is chased
Timers (rows, claimed FOR UPDATE SKIP LOCKED by the runtime, a batch at a time):
  chase                    → ONE row per task and deadline, due at the task's next chase step;
                             when it fires, each step due by then happens, then the same row is
                             set for the next step:
                               sign_in  → case.overdue (stage=sign_in) + dispatch.<dept>.overdue
                               remind   → 催办: case.reminded + dispatch.<dept>.reminder
                               overdue  → 超期: case.overdue + dispatch.<dept>.overdue
                               escalate:<level> → 督办: case.escalated +
                                          dispatch.<dept>.escalated (calendar.yaml ladder)
  sign_in, remind, overdue, escalate:<level>
                           → rows of one step each, written by earlier versions: that step,
                             if the task still needs it
Commands (REST, `api.py`; dispatchers; each on one case, through the same store and rules):
  dispatch (from the queue, kind=manual), redispatch, split, recall (→ case.recalled +
  dispatch.<dept>.recalled, the case back to the queue), supervise (挂牌督办 → case.supervised),
  decide_extension (→ case.extension_decided; granted moves the deadline: a new chase timer),
  remind (人工催办, dispatchers and the shift leader → case.reminded manual=true +
  dispatch.<dept>.reminder); a case a command leaves waiting is announced (case.queued)

Locks: the store loads the cases of a batch FOR UPDATE. Events and commands never touch a
timer row that exists: a new task or a new deadline gets a new row (the key carries the
deadline's generation), and a row whose task ended or whose deadline was replaced fires into
nothing. So a handler never waits for a timer row a runner holds. Each chase step happens at
most once: the task records it (sign_in_overdue_at, reminded_at, overdue_at,
escalation_level) under the case's lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gridloop_contracts import cases as ev
from gridloop_runtime.casework import Rules, subjects_of
from gridloop_runtime.step import Step

from .domain import chasing
from .domain.casefile import CaseFile
from .domain.rules import QUEUE_CHASE, DispatchRules
from .store import DispatchStore

M = TypeVar("M")


def touching(rule: Callable[[CaseFile, M, Step], None]) -> Callable[[CaseFile, M, Step], None]:
    """The rule, stamping the case file with the time it was touched (updated_at)."""

    def apply(f: CaseFile, message: M, step: Step) -> None:
        f.updated_at = step.now()
        rule(f, message, step)

    apply.__doc__ = rule.__doc__
    return apply


# What a department waits on: a new case, a returned one, one sent back for rework. The other
# events (signed, handled, closed, an extension asked for) only end chase steps or record a
# request; `dispatch-cases` holds them a moment (CONSUMER_PATIENT_LINGER_S) to take them a
# few dozen to a transaction in light traffic.
MUST_NOT_WAIT = subjects_of([ev.CaseAccepted, ev.CaseAcceptedV2, ev.CaseReturned, ev.CaseReworked])


def table(rules: DispatchRules, store: DispatchStore) -> Rules[CaseFile]:
    step_kinds: dict[str, Any] = dict.fromkeys(rules.legacy_kinds, touching(rules.on_legacy_step))
    return Rules(
        store=store,
        events={
            ev.CaseAccepted: touching(rules.on_accepted),
            ev.CaseAcceptedV2: touching(rules.on_accepted),
            ev.CaseSigned: touching(rules.on_signed),
            ev.CaseReturned: touching(rules.on_returned),
            ev.CaseExtensionRequested: touching(rules.on_extension_requested),
            ev.CaseHandled: touching(rules.on_handled),
            ev.CaseReworked: touching(rules.on_reworked),
            ev.CaseClosed: touching(rules.on_closed),
            ev.CaseClosedV2: touching(rules.on_closed),
        },
        timers={
            chasing.CHASE: touching(rules.on_chase),
            QUEUE_CHASE: touching(rules.on_queue_chase),
            **step_kinds,
        },
        timer_case=lambda t: str(t.payload["case_id"]),
    )


@dataclass(frozen=True)
class Dispatching:
    """What the routes work with (Runtime.state): the rules, the store, the table."""

    rules: DispatchRules
    store: DispatchStore
    table: Rules[CaseFile]

    @classmethod
    def of(cls, rules: DispatchRules) -> Dispatching:
        store = DispatchStore()
        return cls(rules, store, table(rules, store))
