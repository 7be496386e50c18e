"""Department commands taken over REST are kept on the HANDLING stream
(`handling._taken.<dept>`, `CommandTakenV1`) in the transaction that ran them: the commands
consumer passes over them, and runs one again only when the database no longer has it
(restored to an earlier moment), with the name and the photos it had."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gridloop_contracts import AttachmentRef, Envelope, to_binary
from gridloop_contracts import cases as ev
from gridloop_contracts.department import CommandTakenV1, HandledCommand, SignCommand
from gridloop_devkit.testing import EventTap, consumed_past, photo_bytes

from .conftest import Harness

HANDLING_SOURCE = "/gridloop/handling"


async def _passed(h: Harness, subject: str) -> None:
    await consumed_past(h.js, "HANDLING", "handling-commands", subject)


async def test_a_rest_command_is_kept_on_the_bus_and_not_run_twice(handling: Harness) -> None:
    h = handling
    kept = await EventTap(h.js, ("HANDLING", "handling._taken.>")).open()
    await h.new_case("C-K1")
    r = await h.rest("sign", "sanitation", "C-K1", command_id="k-1")
    assert r.status_code == 200, r.text
    [env] = await kept.wait(CommandTakenV1, subject="handling._taken.sanitation")
    assert env.source == HANDLING_SOURCE and env.subject == "C-K1"
    taken = CommandTakenV1.model_validate(env.data)
    assert taken.action == "signed" and taken.command["command_id"] == "k-1"
    assert SignCommand.model_validate(taken.command).by == "sanitation-ops"
    await _passed(h, "handling._taken.sanitation")
    await h.cases.poll()
    await h.feed.poll()
    # run once: one signature, and no answer on the feed (a REST command's answer is the
    # HTTP response; the bus would have answered a command it ran again)
    assert len(h.emitted(ev.CaseSigned, case_id="C-K1")) == 1
    assert h.answers("sanitation", "k-1") == []


async def _keep(h: Harness, taken: CommandTakenV1, source: str = HANDLING_SOURCE) -> None:
    env = Envelope.of(taken, source=source, time=h.clock.now(), subject=taken.command["case_id"])
    headers, body = to_binary(env)
    await h.js.publish(f"handling._taken.{taken.command['dept']}", body, headers=headers)


def _taken(cmd: Any, **kw: Any) -> CommandTakenV1:
    return CommandTakenV1(
        action=cmd.subject_token, command=cmd.model_dump(mode="json", exclude_none=True), **kw
    )


async def test_kept_commands_the_database_does_not_have_run_again_with_their_photos(
    handling_s3: Harness,
) -> None:
    """As after a restore: the commands are on the bus, no row says they ran. They come before
    the case's dispatch (the two streams are read again side by side): they wait for it, and
    run with the name and the photos they had."""
    h = handling_s3
    assert h.http is not None
    jpeg = photo_bytes(39.9142, 116.3975, color=(40, 160, 60))
    files = {"file": ("after.jpg", jpeg, "image/jpeg")}
    up = await h.http.post("/attachments", headers={"X-User": "sanitation-ops"}, files=files)
    assert up.status_code == 201, up.text
    uploaded = up.json()
    photo = AttachmentRef.model_validate(uploaded)
    # uploaded after the restore point: its row is gone, the result still names it
    lost = AttachmentRef(
        attachment_id="a" + "1" * 24,
        sha256="2" * 64,
        content_type="image/jpeg",
        kind="photo",
        size=9,
    )
    sign = SignCommand(command_id="k-s", case_id="C-K2", dept="sanitation", by="sanitation-ops")
    handled = HandledCommand(
        command_id="k-h",
        case_id="C-K2",
        dept="sanitation",
        by="sanitation-ops",
        result="已清运",
        completed_at=h.clock.now(),
    )
    await _keep(h, _taken(sign, by_name="王工"))
    await _keep(h, _taken(handled, by_name="王工", files=[photo, lost]))
    # the same from anyone but handling is not believed
    forged = SignCommand(command_id="k-x", case_id="C-K2", dept="sanitation", by="x")
    await _keep(h, _taken(forged), source="/departments/sanitation")
    await _passed(h, "handling._taken.sanitation")

    await h.new_case("C-K2")
    [done] = await h.wait(ev.CaseHandled, case_id="C-K2")
    assert [f["attachment_id"] for f in done.data["files"]] == [
        photo.attachment_id,
        lost.attachment_id,
    ]
    assert done.data["actor"]["name"] == "王工"
    assert len(h.emitted(ev.CaseSigned, case_id="C-K2")) == 1
    # answered on the feed, as a command over NATS is
    assert (await h.answer("sanitation", "k-h")).accepted
    assert h.answers("sanitation", "k-x") == []
    # the photo whose upload is still there is the case's evidence: the command centre reads it
    got = await h.http.get(f"/attachments/{photo.attachment_id}", headers={"X-User": "disp-01"})
    assert got.status_code == 200 and got.content == jpeg


async def test_a_kept_result_older_than_the_dispatch_made_anew_runs_at_that_dispatch(
    handling: Harness,
) -> None:
    """After a restore the case may be dispatched anew, later than the department's result
    said the work was done (it was done against the dispatch the restore lost): run again
    from the bus, the result counts as done at the new dispatch rather than being refused as
    done before it. Kept without a name or photos, it still waits for the dispatch as one."""
    h = handling
    done_at = h.clock.now() - timedelta(minutes=30)  # before the restore
    sign = SignCommand(command_id="k-s3", case_id="C-K3", dept="sanitation", by="sanitation-ops")
    handled = HandledCommand(
        command_id="k-h3",
        case_id="C-K3",
        dept="sanitation",
        by="sanitation-ops",
        result="已清运",
        evidence=[{"url": "https://evidence.example.org/k3.jpg"}],
        completed_at=done_at,
    )
    await _keep(h, _taken(sign))
    await _keep(h, _taken(handled))
    await _passed(h, "handling._taken.sanitation")
    await h.new_case("C-K3")  # dispatched again since
    [done] = await h.wait(ev.CaseHandled, case_id="C-K3")
    assert datetime.fromisoformat(done.data["completed_at"]) == h.clock.now()
    assert (await h.answer("sanitation", "k-h3")).accepted
    # a result over NATS saying the same is the department's own mistake: refused
    await h.new_case("C-K4")
    await h.command("signed", "sanitation", "C-K4", command_id="n-s4")
    await h.command(
        "handled",
        "sanitation",
        "C-K4",
        command_id="n-h4",
        result="已清运",
        evidence=[{"url": "https://evidence.example.org/k4.jpg"}],
        completed_at=done_at.isoformat(),
    )
    refused = await h.answer("sanitation", "n-h4")
    assert not refused.accepted and refused.errors[0].field == "data.completed_at"
