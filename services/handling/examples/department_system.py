"""A department's own system talking to gridloop over NATS — the department integration kit.

It reads the department's feed `dispatch.<dept>.>` through its one durable consumer
`dept-<dept>` on stream DISPATCH (nothing is missed while it is offline) and answers with
CloudEvents on `handling.<dept>.<action>`. What it does with each new task (`--behaviour`):

  handle     sign for it (签收), wait `--delay` seconds, report the result (处置反馈)
  return     return it as not ours (退回)
  extension  sign for it and ask for one more day (延期申请)

A co-handling unit (role `co-handler`) signs and reports its part as a progress note; only
the lead reports the result. Rework (返工) is signed for and handled again. A recalled task
(撤回) is worked on no more: its work is stopped where it stands (a result already on its way
may cross the recall; `recall_overtaken` then says the result stands). An `overdue` that
crossed an on-time signature or result is withdrawn (`overdue_withdrawn`: printed). Other
messages of the feed are printed and acknowledged, nothing more. Every answer
(`dispatch.<dept>.answer`: accepted, or refused with field and reason) is printed.
`--answers inbox` has each command name this system's own inbox (`replyto`) and ask for its
answer there only (`answerfeed: none`): one message fewer on the feed per command, and an
answer lost while the bus restarts is asked for again after 20 s (`feed`, the default, reads
the answers from the durable feed).
Command ids derive from the feed message's id, so a restart that sees a message again sends
the same commands, which handling answers the same way without doing anything twice.

Needs only nats-py (`pip install nats-py`):

    python department_system.py --dept sanitation --delay 2 \
        [--nats nats://127.0.0.1:4222] [--user dept-sanitation --password ...]

Or from Python: `await run(nats_url, "sanitation", behaviour="handle", stop=event)`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

Clock = Callable[[], datetime]
# A command refused as `not-found` for a task the feed has brought is asked again this often,
# for this long: handling hears of the dispatch from its own stream and may be behind.
NOT_FOUND_RETRY_S = 3.0
NOT_FOUND_PATIENCE_S = 900.0


class FeedReader:
    """The feed's messages: a batch at a time while they keep coming, one at a time when the
    feed is idle.

    nats-py's `fetch` of a batch, right after a fetch that found nothing, can hold a lone
    message until its own timeout: a request of the earlier fetch may still be open on the
    server and take the message, and the new fetch then waits for its own request to end.
    A fetch of one message hands over whatever comes at once. So after a fetch that found
    nothing the next one asks for one message; once one has come, for a batch again."""

    def __init__(
        self, feed: JetStreamContext.PullSubscription, *, batch: int = 20, timeout: float = 0.5
    ) -> None:
        self.feed = feed
        self.batch = batch
        self.timeout = timeout
        self.size = 1  # nothing known yet: wait for one

    async def take(self) -> list[Msg]:
        """The next messages; a TimeoutError when none came within `timeout` (nats-py's own
        or, when its deadline ran out before a second pull, asyncio's)."""
        try:
            msgs = await self.feed.fetch(self.size, timeout=self.timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            self.size = 1
            raise
        self.size = self.batch
        return msgs


def _now() -> datetime:
    return datetime.now(UTC)


async def run(
    nats_url: str,
    dept: str,
    *,
    behaviour: str = "handle",
    delay: float = 0.0,
    stop: asyncio.Event | None = None,
    user: str | None = None,
    password: str | None = None,
    clock: Clock = _now,
    say: Callable[[str], None] = print,
    answers: str = "feed",
) -> None:
    """Work the department's feed until `stop` is set (forever without one); `answers`:
    where handling's answers are read, `feed` or `inbox`."""
    if answers not in ("feed", "inbox"):
        raise ValueError(f"answers: 'feed' or 'inbox', not {answers!r}")
    stop = stop or asyncio.Event()
    # With NATS permissions a department gets replies only under its own inbox prefix.
    # Reconnect for ever: the department's system outlives restarts of the bus.
    nc = await nats.connect(
        nats_url.split(","),  # one server, or every node of a cluster
        user=user,
        password=password,
        inbox_prefix=f"_INBOX.dept-{dept}",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
    )
    js = nc.jetstream()
    # gridloop keeps the department's durable consumer (dispatch creates it at start-up, with
    # its filter `dispatch.<dept>.>`); the department only binds to it.
    durable = f"dept-{dept}"
    await _feed_ready(js, durable, stop, say, dept)
    feed = FeedReader(await js.pull_subscribe_bind(durable, stream="DISPATCH"))
    feed_lost = False
    jobs: set[asyncio.Task[None]] = set()
    working: dict[str, asyncio.Task[None]] = {}  # task id → the work on it

    # Answers awaited, by command id: the next step of a task waits for the answer to the last.
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
    # With `answers="inbox"`: this system's inbox (under its own prefix), named in each command.
    inbox: str | None = None

    async def send(
        action: str,
        case: dict[str, Any],
        key: str,
        *,
        wait: bool = False,
        asking_again: int = 0,
        **data: Any,
    ) -> None:
        command_id = f"{key}:{action}"
        # The event id names this message, the command id the command. Asking again for an
        # answer that never came is a new message carrying the same command: handling answers
        # it with the first answer (a resend of the same message would be dropped as a copy).
        event_id = f"{command_id}#{asking_again}" if asking_again else command_id
        if wait and command_id not in waiting:
            waiting[command_id] = asyncio.get_running_loop().create_future()
        payload = {
            "command_id": command_id,
            "case_id": case["case_id"],
            "task_id": case["task_id"],
            "dept": dept,
            "by": f"{dept}-system",
            **data,
        }
        headers = {
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-source": f"/departments/{dept}/system",
            "ce-type": f"gridloop.handling.{action}.v1",
            "ce-time": clock().isoformat(),
            "content-type": "application/json",
            "Nats-Msg-Id": event_id,
            # W3C trace context of the assignment: the command joins the case's trace
            **case.get("trace", {}),
        }
        if inbox is not None:  # the answer to this inbox, not on the feed
            headers |= {"ce-replyto": inbox, "ce-answerfeed": "none"}
        body = json.dumps(payload, ensure_ascii=False).encode()
        # Until JetStream acknowledges it: the same Nats-Msg-Id and command id make a resend
        # of a command that did arrive harmless.
        while True:
            try:
                await js.publish(f"handling.{dept}.{action}", body, headers=headers, timeout=5)
                break
            except (nats.errors.Error, TimeoutError) as exc:
                if stop.is_set():
                    raise
                say(f"[{dept}] {action} not acknowledged ({exc!r}); sending again")
                await asyncio.sleep(0.5)
        say(f"[{dept}] {action:<20} {case['case_id']}")

    async def answered(
        action: str, case: dict[str, Any], key: str, asked: int = 0, **data: Any
    ) -> dict[str, Any]:
        """Wait for handling's answer before the next step, so commands never overtake each
        other on the way (a restart can reorder messages); no answer in time: send again
        (`asked`: how many messages of this command went before, each with an id of its own).
        Refused as `not-found` (handling has not yet heard of the dispatch this feed already
        brought, e.g. while it catches up after an outage): asked again every few seconds for
        up to `NOT_FOUND_PATIENCE_S`; a refusal changes nothing, so asking again is safe."""
        command_id = f"{key}:{action}"
        patience = asyncio.get_running_loop().time() + NOT_FOUND_PATIENCE_S
        try:
            while True:
                try:
                    answer = await asyncio.wait_for(asyncio.shield(waiting[command_id]), timeout=20)
                except TimeoutError:
                    asked += 1
                    await send(action, case, key, wait=True, asking_again=asked, **data)
                    continue
                codes = {e.get("code") for e in answer.get("errors", [])}
                if answer.get("accepted") or codes != {"not-found"}:
                    return answer
                if asyncio.get_running_loop().time() > patience or stop.is_set():
                    return answer
                await asyncio.sleep(NOT_FOUND_RETRY_S)
                asked += 1
                waiting[command_id] = asyncio.get_running_loop().create_future()
                await send(action, case, key, wait=True, asking_again=asked, **data)
        finally:
            waiting.pop(command_id, None)

    async def report_result(case: dict[str, Any], key: str) -> None:
        """办结: the result with its evidence, until handling has it. A result refused only for
        its time (this system's clock ahead of gridloop's, beyond the allowed skew) is sent
        again with the time read afresh; any other refusal is left for a person to read."""
        evidence = [{"url": f"https://evidence.example.org/{dept}/{case['case_id']}.jpg"}]
        for attempt in range(10):
            result = {
                "result": "已按结案标准处置完毕",
                "evidence": evidence,
                "completed_at": clock().isoformat(),
            }
            await send("handled", case, key, wait=True, asking_again=attempt * 1000, **result)
            answer = await answered("handled", case, key, attempt * 1000, **result)
            fields = {e.get("field") for e in answer.get("errors", [])}
            if answer.get("accepted") or fields != {"data.completed_at"}:
                return
            await asyncio.sleep(1.0)

    async def work_on(case: dict[str, Any], key: str) -> None:
        await send("signed", case, key, wait=True)
        await answered("signed", case, key)
        if case.get("role") == "co-handler":
            await send("progress", case, key, note=f"{dept} 协办部分已完成")
        elif behaviour == "extension":
            later = datetime.fromisoformat(case["deadline"]) + timedelta(days=1)
            await send(
                "extension_requested",
                case,
                key,
                reason="需协调施工",
                proposed_deadline=later.isoformat(),
            )
        else:
            await asyncio.sleep(delay)
            await report_result(case, key)

    def on_answer(data: dict[str, Any]) -> None:
        future = waiting.get(str(data.get("command_id")))
        if future is not None and not future.done():
            future.set_result(data)
        errors = "; ".join(f"{e['field']}: {e['reason']}" for e in data.get("errors", []))
        verdict = "accepted" if data.get("accepted") else f"REFUSED {errors}"
        say(f"[{dept}] answer {data.get('action')} {data.get('case_id')}: {verdict}")

    async def on_reply(msg: Msg) -> None:
        data = _from_gridloop(msg.headers or {}, msg.data)
        if data is not None:
            on_answer(data)

    if answers == "inbox":
        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=on_reply)

    async def on_message(event: str, data: dict[str, Any], key: str, trace: dict[str, str]) -> None:
        if event == "answer":
            on_answer(data)
            return
        case = {**(data.get("case") or {}), "trace": trace}
        say(f"[{dept}] {event:<20} {case.get('case_id')} {case.get('what_to_do') or ''}")
        if event == "assigned" and behaviour == "return" and case.get("role") != "co-handler":
            await send("returned", case, key, reason="不属于本单位职责范围")
        elif event in ("assigned", "rework"):
            job = asyncio.create_task(work_on(case, key))
            jobs.add(job)
            working[str(case.get("task_id"))] = job
            job.add_done_callback(finished)
        elif event == "recalled":
            # 撤回: the command centre took the task back; whatever was left undone stays so
            stopped = working.pop(str(case.get("task_id")), None)
            if stopped is not None and not stopped.done():
                stopped.cancel()
                say(f"[{dept}] stopped work on {case.get('case_id')}: recalled")
        elif event == "recall_overtaken":
            say(f"[{dept}] result stands for {case.get('case_id')}: it crossed the recall")
        elif event == "overdue_withdrawn":
            # 超期撤回: the overdue notice (and its 督办) is void, the task was on time
            say(f"[{dept}] on time after all for {case.get('case_id')}: {data.get('note') or ''}")
        # anything else (reminder, overdue, escalated, a message added later): printed above

    def finished(job: asyncio.Task[None]) -> None:
        jobs.discard(job)
        for task_id in [t for t, j in working.items() if j is job]:
            del working[task_id]
        if not job.cancelled() and job.exception() is not None:
            say(f"[{dept}] failed: {job.exception()!r}")

    try:
        while not stop.is_set():
            try:
                if feed_lost:
                    # The bus lost its state (or the consumer was removed): wait until
                    # gridloop has opened the feed again.
                    await _feed_ready(js, durable, stop, say, dept)
                    feed_lost = False
                msgs = await feed.take()
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except (nats.errors.Error, OSError) as exc:
                # The bus is restarting: wait and fetch again; unacknowledged messages return.
                say(f"[{dept}] feed unavailable ({exc!r}); retrying")
                feed_lost = True
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                headers = msg.headers or {}
                data = _from_gridloop(headers, msg.data)
                if data is None:
                    # Only gridloop's services write DISPATCH: anything else is dropped.
                    say(f"[{dept}] ignored a message on {msg.subject} not from gridloop")
                    with contextlib.suppress(nats.errors.Error):
                        await msg.ack()
                    continue
                event = msg.subject.rsplit(".", 1)[-1]
                key = headers.get("ce-id") or str(msg.metadata.sequence.stream)
                trace: dict[str, str] = {
                    k: headers[k] for k in ("traceparent", "tracestate") if k in headers
                }
                await on_message(event, data, key, trace)
                # Not acknowledged: redelivered later, and the command ids make that harmless.
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()
    finally:
        for job in jobs:
            job.cancel()
        if jobs:  # a job waiting on an answer ends at its next await; never wait for ever
            await asyncio.wait(jobs, timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), timeout=5)


def _from_gridloop(headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
    """The message's data if it is a CloudEvent from a gridloop service (`ce-source`
    `/gridloop/<service>`, `ce-type` `gridloop.…`) with a JSON object as data, else None."""
    source, ce_type = headers.get("ce-source", ""), headers.get("ce-type", "")
    if not (source.startswith("/gridloop/") and ce_type.startswith("gridloop.")):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def _feed_ready(
    js: JetStreamContext, durable: str, stop: asyncio.Event, say: Callable[[str], None], dept: str
) -> None:
    """Wait until the department's durable consumer exists (or `stop`)."""
    waiting = False
    while not stop.is_set():
        try:
            await js.consumer_info("DISPATCH", durable, timeout=2)
            return
        except NotFoundError:
            if not waiting:
                say(f"[{dept}] waiting for gridloop to open the feed {durable} on DISPATCH")
                waiting = True
        except (nats.errors.Error, TimeoutError) as exc:
            say(f"[{dept}] feed {durable} not reachable ({exc!r}); retrying")
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description="A department's system on the gridloop bus.")
    parser.add_argument(
        "--nats", default="nats://127.0.0.1:4222", help="server URL(s), comma-separated"
    )
    parser.add_argument("--dept", required=True, help="department code (departments.yaml)")
    parser.add_argument("--behaviour", choices=("handle", "return", "extension"), default="handle")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before the result")
    parser.add_argument("--user", help="NATS user, e.g. dept-sanitation")
    parser.add_argument("--password")
    parser.add_argument(
        "--answers",
        choices=("feed", "inbox"),
        default="feed",
        help="read handling's answers from the feed, or from this system's inbox only",
    )
    args = parser.parse_args()
    asyncio.run(
        run(
            args.nats,
            args.dept,
            behaviour=args.behaviour,
            delay=args.delay,
            user=args.user,
            password=args.password,
            answers=args.answers,
        )
    )


if __name__ == "__main__":
    main()
