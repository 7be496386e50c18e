"""What happens on each event, command and timer handling takes — the one table to read first;
the rules are in domain/rules.py, the state they work on in domain/case.py.

Bus (CASES stream, durable `handling-cases`):
  case.accepted (v2, v1) → the case summary a department sees (what, where, the report's evidence)
  case.dispatched        → a task per unit: the responsible unit, each co-handler (协办), the
                           lead (牵头); the same task id again renews its terms (rework,
                           re-dispatch); another open task of that unit on the case is
                           superseded; commands parked for it run now
  case.recalled          → the addressed tasks end as recalled (撤回)
  case.extension_decided → the pending 延期申请 is settled; a grant moves the deadline
  case.reworked          → the handled (or closed) tasks go back to sign-in (返工)
  case.escalated         → the 督办 level shows on the open tasks
  case.supervised        → 挂牌督办 shows on the open tasks
  case.closed            → every task of the case ends as closed (结案)
Bus (HANDLING stream, durable `handling-commands`):
  handling.<dept>.<action> → a batch at a time: each validated here, the cases loaded at once,
                           then `run_bus_command` (domain/rules.py) in order: idempotent
                           by its scoped id, answered with gridloop.dispatch.answer.v1 on
                           dispatch.<dept>.answer (outbox) and, when the command names a
                           `replyto` subject (CloudEvents extension), there after commit
                           (replies.py) — there only with the extension `answerfeed: none`;
                           a command for a case whose dispatch has not come yet is parked
                           (HANDLING_PARK_S), and answered as it asked once it runs
  handling._taken.<dept>  → a command handling took over REST (CommandTakenV1, kept for a
                           database restore): passed over, the transaction that ran it having
                           marked it taken; after a restore, run again as a bus command with
                           the sender's name and photos (a park keeps them)
REST (`api.py`): `execute` through run_case_command; the answer is the HTTP response; the
  command is kept on handling._taken.<dept> in the same transaction (`keep_taken`).
Timers:
  handling-parked        → a parked command's wait is over (HANDLING_PARK_S) and no dispatch
                           ran it: refused as unknown, saying how long it waited
Commands (HandlingRules.commands: command type → rule) → events:
  signed → case.signed · returned → case.returned · extension_requested →
  case.extension_requested · progress → case.progress (a co-handler's is a contribution) ·
  handled → case.handled (with the co-handlers' contributions)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from gridloop_contracts import AttachmentRef, Envelope, EnvelopeError, subjects
from gridloop_contracts import cases as ev
from gridloop_contracts.department import (
    COMMANDS,
    CommandAnswerV1,
    CommandTakenV1,
    DepartmentCommand,
)
from gridloop_contracts.envelope import (
    control_characters,
    nul_in,
    storable,
    validation_errors,
)
from gridloop_contracts.problems import Permanent
from gridloop_runtime import evidence
from gridloop_runtime.casework import Rules
from gridloop_runtime.commands import seen_commands
from gridloop_runtime.consumer import emit_taken
from gridloop_runtime.db import Conn
from gridloop_runtime.outbox import Work
from gridloop_runtime.step import Timer
from nats.aio.msg import Msg
from pydantic import ValidationError

from .context import Handling
from .domain import commands as cmds
from .domain.case import CaseFile
from .domain.rules import PARKED, HandlingRules, Policy, Taken
from .store import HandlingStore
from .views import task_view

log = structlog.get_logger(__name__)

# What may follow a department's inbox prefix in a reply subject: plain tokens, no wildcards.
_REPLY_SUBJECT = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
COMMAND_SUBJECTS = ["handling.>"]


@dataclass(frozen=True)
class Service:
    """What the routes and consumers share (Runtime.state): the city, the rules, the store
    and the handler table."""

    ctx: Handling
    rules: HandlingRules
    store: HandlingStore
    table: Rules[CaseFile]
    bus: BusCommands


def build(ctx: Handling) -> Service:
    policy = Policy(
        is_department=ctx.is_department,
        view=lambda task, case, now: task_view(
            task, case, now=now, calendar=ctx.calendar, city=ctx.city
        ),
        require_evidence=ctx.settings.require_evidence,
        clock_skew=ctx.clock_skew,
        park_for=ctx.park_for,
    )
    rules = HandlingRules(policy)
    store = HandlingStore()
    table: Rules[CaseFile] = Rules(
        store=store,
        events={
            ev.CaseAccepted: rules.on_accepted,
            ev.CaseAcceptedV2: rules.on_accepted,
            ev.CaseDispatched: rules.on_dispatched,
            ev.CaseRecalled: rules.on_recalled,
            ev.CaseExtensionDecided: rules.on_extension_decided,
            ev.CaseReworked: rules.on_reworked,
            ev.CaseEscalated: rules.on_escalated,
            ev.CaseSupervised: rules.on_supervised,
            ev.CaseClosed: rules.on_closed,
            ev.CaseClosedV2: rules.on_closed,
        },
        timers={PARKED: rules.on_parked_expired},
        timer_case=_timer_case,
    )
    return Service(ctx, rules, store, table, BusCommands(rules, store))


def _timer_case(timer: Timer) -> str:
    # A parked command's timer names its case (timers from before 002 were given it there).
    return str(timer.payload.get("case_id") or timer.key.split("/", 1)[0])


class BusCommands:
    """handling.<dept>.<action>: validate as the REST API does, execute, always answer."""

    def __init__(self, rules: HandlingRules, store: HandlingStore) -> None:
        self.rules = rules
        self.store = store

    async def on_batch(self, conn: Conn, batch: Sequence[tuple[Work, Envelope]]) -> None:
        """A batch of commands: each validated (a refusal is answered at once), then the cases
        they touch loaded and their stored answers read with one statement per table, the rules
        run in stream order, and the states saved once."""
        ready: list[tuple[Work, DepartmentCommand, str | None, bool, Taken | None]] = []
        for work, env in batch:
            if (work.subject or "").startswith(TAKEN_PREFIX):
                kept = _kept(work, env)
                if kept is not None:
                    ready.append((work, *kept))
                continue
            found = await self._validated(work, env)
            if found is not None:
                ready.append((work, *found, None))
        if not ready:
            return
        states = await self.store.load(conn, list(dict.fromkeys(r[1].case_id for r in ready)))
        keys = [cmds.command_key(r[1].dept, r[1].command_id) for r in ready]
        stored = await seen_commands(conn, keys)
        for (work, cmd, reply_to, feed, taken), key in zip(ready, keys, strict=True):
            state = states[cmd.case_id]
            if key in stored and key not in state.answers:
                state.answers[key] = stored[key]
            self.rules.run_bus_command(
                state, cmd, reply_to, work, park=True, feed=feed, taken=taken
            )
        # gathered with the batch's events and timers: one statement (consumer._written)
        await self.store.save(conn, list(states.values()), ready[0][0].writes)
        # a command taken again after a restore: its photos tied to the case where their
        # upload is older than the restore point (the others stay named in its answer)
        for work, cmd, _, _, taken in ready:
            if taken and taken.files:
                await evidence.bind(conn, taken.files, cmd.case_id, work.now(), strict=False)

    async def _validated(
        self, work: Work, env: Envelope
    ) -> tuple[DepartmentCommand, str | None, bool] | None:
        """The command, the subject to answer on and whether the answer goes on the feed too;
        None once a refusal has been answered."""
        dept, action = _subject(work)
        asked_reply = env.extensions.get("replyto")
        reply_to = reply_subject(dept, asked_reply)
        feed = True
        data = env.data if isinstance(env.data, dict) else {}
        named = data.get("command_id")
        command_id: str = named if isinstance(named, str) and named else env.id
        case_id = data.get("case_id") if isinstance(data.get("case_id"), str) else None

        async def refuse(errors: list[dict[str, Any]]) -> None:
            answer = cmds.refused(
                command_id=command_id, dept=dept, case_id=case_id, action=action, errors=errors
            )
            await self._refused(work, answer, reply_to, feed=feed)

        nul = nul_in(env.data)
        bad = control_characters(env)
        if bad is not None or nul is not None:
            # Answered all the same, with what can be kept as text.
            command_id = storable(command_id)
            case_id = storable(case_id) if case_id is not None else None
            error = (
                {"field": bad.field, "reason": bad.reason}
                if bad is not None
                else {"field": nul, "reason": "contains U+0000 (NUL), which is not text"}
            )
            await refuse([{**error, "code": "invalid"}])
            return None
        if asked_reply and reply_to is None:
            # Answered on dispatch.<dept>.answer only: never on a subject the department
            # may not read itself (another's, a stream's).
            reason = (
                f"{asked_reply!r} is not a subject under {own_inbox(dept)} (the department's "
                "own inbox prefix, where it may receive answers)"
            )
            await refuse([{"field": "replyto", "reason": reason, "code": "invalid-replyto"}])
            return None
        asked_feed = env.extensions.get("answerfeed")
        if asked_feed not in (None, *ANSWER_FEED):
            reason = (
                f"{asked_feed!r} is not one of 'all' (the default: every answer on "
                "dispatch.<dept>.answer as well) or 'none' (on the replyto inbox only)"
            )
            await refuse([{"field": "answerfeed", "reason": reason, "code": "invalid"}])
            return None
        if asked_feed == "none" and reply_to is None:
            reason = "'none' needs a replyto inbox: without one the answer would reach nobody"
            await refuse([{"field": "answerfeed", "reason": reason, "code": "invalid"}])
            return None
        feed = asked_feed != "none"
        model = COMMANDS.get(action)
        if model is None:
            reason = (
                f"unknown action {action!r}; one of {sorted(COMMANDS)} (handling.<dept>.<action>)"
            )
            await refuse([{"field": "subject", "reason": reason, "code": "unknown-action"}])
            return None
        if env.type != model.type_name:
            reason = f"a command on handling.{dept}.{action} has type {model.type_name}"
            await refuse([{"field": "type", "reason": reason, "code": "invalid"}])
            return None
        try:
            cmd = model.model_validate(env.data)
        except ValidationError as exc:
            await refuse([{**err, "code": "invalid"} for err in validation_errors(exc)])
            return None
        if cmd.dept != dept:
            reason = (
                f"says {cmd.dept!r} but the command came on handling.{dept}.{action}: a "
                "department acts only for itself"
            )
            await refuse([{"field": "data.dept", "reason": reason, "code": "wrong-department"}])
            return None
        return cmd, reply_to, feed

    async def on_invalid(self, work: Work, msg: Msg, err: EnvelopeError) -> None:
        """Not a CloudEvent: still answered, naming what is wrong."""
        dept, action = _subject(work)
        headers = msg.headers or {}
        command_id = storable(
            headers.get("Nats-Msg-Id") or f"HANDLING:{msg.metadata.sequence.stream}"
        )
        answer = cmds.refused(
            command_id=command_id,
            dept=dept,
            action=action,
            errors=[{"field": err.field, "reason": err.reason, "code": "invalid-envelope"}],
        )
        await self._refused(work, answer, None)

    async def _refused(
        self, work: Work, answer: CommandAnswerV1, reply_to: str | None, *, feed: bool = True
    ) -> None:
        """A command refused before it reached a case: answered and audited all the same."""
        data = work.trigger.data if work.trigger is not None else None
        by = data.get("by") if isinstance(data, dict) else None
        nowhere = CaseFile(answer.case_id or "")
        who = storable(by) if isinstance(by, str) else None
        self.rules.answer(nowhere, work, answer, reply_to, by=who, feed=feed)
        # written at once (this message's own writes, nothing else of the batch's); its
        # reply, if any, goes out with the unit of work's messages after commit
        await self.store.save(work.conn, [nowhere], work.writes)
        await work.writes.run(work.conn)


# The durable consumer of the HANDLING stream (bootstrap.py), and where handling keeps the
# commands it took over REST (`subjects.handling_taken`).
COMMANDS_CONSUMER = "handling-commands"
TAKEN_PREFIX = "handling._taken."


def keep_taken(
    work: Work, cmd: DepartmentCommand, *, by_name: str | None, files: Sequence[AttachmentRef]
) -> None:
    """A command taken over REST goes on the HANDLING stream as taken (`CommandTakenV1`), in
    the transaction that ran it, with the commands consumer's inbox row saying it is taken:
    the consumer passes over it. A database restored to a moment before it has neither row,
    and the consumer, moved back to that moment, runs it again, as it runs again what came
    over NATS (answered on `dispatch.<dept>.answer`)."""
    subject = subjects.handling_taken(cmd.dept)
    taken = CommandTakenV1(
        action=cmd.subject_token,
        command=cmd.model_dump(mode="json", exclude_none=True),
        by_name=by_name,
        files=list(files),
    )
    emit_taken(work, taken, subject=subject, consumer=COMMANDS_CONSUMER, case_id=cmd.case_id)


def _kept(work: Work, env: Envelope) -> tuple[DepartmentCommand, None, bool, Taken] | None:
    """A command this service took over REST, back from the HANDLING stream: as a rule its
    transaction also marked it taken and it never reaches here; it does after the database
    was restored to a moment before it. None for what handling did not publish."""
    if env.type != CommandTakenV1.type_name or env.source != work.source:
        # only handling publishes here (no department code holds `_`): it came some other way
        log.warning("not handling's own command on handling._taken", source=env.source)
        return None
    try:
        taken = CommandTakenV1.model_validate(env.data)
        cmd = COMMANDS[taken.action].model_validate(taken.command)
    except ValidationError as exc:
        log.error("a command taken over REST cannot be read again", error=str(exc))
        return None
    return cmd, None, True, Taken(by_name=taken.by_name, files=tuple(taken.files))


# The values of a command's `answerfeed` extension: `all`, the default, answers on
# dispatch.<dept>.answer as well as on the `replyto` inbox; `none` on the inbox only.
ANSWER_FEED = ("all", "none")


def _subject(work: Work) -> tuple[str, str]:
    """(dept, action) of handling.<dept>.<action>; a malformed action is answered as unknown,
    only a subject without a usable department code has nobody to answer."""
    parts = (work.subject or "").split(".")
    try:
        if len(parts) < 2 or parts[0] != "handling":
            raise ValueError(f"not a handling subject: {work.subject!r}")
        subjects.check_code(parts[1], "dept")
    except ValueError as exc:
        # Nowhere to answer: the operators see it in the DLQ.
        raise Permanent(str(exc)) from exc
    return parts[1], ".".join(parts[2:])


def own_inbox(dept: str) -> str:
    """The prefix of the subjects a department receives answers on (its NATS user's inbox
    prefix, `_INBOX.dept-<dept>.`)."""
    return f"_INBOX.dept-{dept}."


def reply_subject(dept: str, value: str | None) -> str | None:
    """`value` if it is a plain subject under the department's own inbox prefix, else None:
    handling answers a command nowhere else (not another department's subjects, not a
    stream's)."""
    prefix = own_inbox(dept)
    if value and value.startswith(prefix) and _REPLY_SUBJECT.fullmatch(value[len(prefix) :]):
        return value
    return None
