"""What a department's system may not make handling do: answer on a subject the department
could not read itself — a stream's (`case.x`), another department's — for a command's
`replyto` is answered only under its own inbox prefix, `_INBOX.dept-<dept>.`; and a command
with text no database takes (U+0000, control characters in its attributes) is refused and
answered, not dead-lettered in silence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gridloop_contracts import cases as ev
from gridloop_devkit.testing import wait_for
from gridloop_handling.handlers import reply_subject

if TYPE_CHECKING:
    from .conftest import Harness

ELSEWHERE = (
    "case.x",
    "dispatch.water.answer",
    "handling.water.signed",
    "_INBOX.dept-water.abc",
    "_INBOX.abc",
    "_INBOX.dept-sanitation.>",
    "_INBOX.dept-sanitation.*",
    "_INBOX.dept-sanitation.",
    "_INBOX.dept-sanitationx.abc",
    "_INBOX.dept-sanitation..abc",
)


def test_a_reply_subject_must_be_under_the_departments_own_inbox() -> None:
    assert reply_subject("sanitation", "_INBOX.dept-sanitation.abc") == "_INBOX.dept-sanitation.abc"
    assert reply_subject("sanitation", "_INBOX.dept-sanitation.a.b-c_1") is not None
    assert reply_subject("sanitation", None) is None
    for subject in ELSEWHERE:
        assert reply_subject("sanitation", subject) is None, subject


async def test_a_reply_subject_elsewhere_is_refused_and_nothing_is_published_there(
    handling: Harness,
) -> None:
    await handling.new_case("C-FENCE")
    heard: list[str] = []

    async def on_msg(msg: Any) -> None:
        heard.append(msg.subject)

    spied = (
        "case.x",
        "dispatch.water.>",
        "handling.water.>",
        "_INBOX.dept-water.>",
        "_INBOX.abc",
        "_INBOX.dept-sanitation.>",
        "_INBOX.dept-sanitationx.>",
    )
    for subject in spied:
        await handling.nc.subscribe(subject, cb=on_msg)
    await handling.nc.flush()

    sent = [
        await handling.command("signed", "sanitation", "C-FENCE", replyto=subject)
        for subject in ELSEWHERE
    ]
    for command_id, subject in zip(sent, ELSEWHERE, strict=True):
        answer = await handling.answer("sanitation", command_id)
        assert answer.accepted is False, subject
        [error] = answer.errors
        assert (error.field, error.code) == ("replyto", "invalid-replyto"), subject
        assert "_INBOX.dept-sanitation." in error.reason
    # Nothing was signed; and the same command with a reply subject of its own is taken.
    own = "_INBOX.dept-sanitation.fence-1"
    accepted = await handling.command("signed", "sanitation", "C-FENCE", replyto=own)
    await wait_for(lambda: own in heard, what=f"the answer on {own} ({heard})")
    assert (await handling.answer("sanitation", accepted)).accepted is True
    await handling.cases.poll()
    assert len(handling.emitted(ev.CaseSigned, case_id="C-FENCE")) == 1
    await handling.nc.flush()
    assert [s for s in heard if s != own] == [], heard


async def test_a_command_with_text_no_database_takes_is_refused_and_answered(
    handling: Harness,
) -> None:
    await handling.new_case("C-NUL")
    in_data = await handling.command("signed", "sanitation", "C-NUL", by="a\x00b")
    answer = await handling.answer("sanitation", in_data)
    assert answer.accepted is False and answer.errors[0].field == "data.by"
    nul_id = await handling.command("signed", "sanitation", "C-NUL", command_id="x\x00y")
    answer = await handling.answer("sanitation", nul_id.replace("\x00", "\ufffd"))
    # the harness's ce-id carries the command id: the attribute is named first
    assert answer.errors[0].field == "id"
    # a control character in an attribute (ce-source), sent by hand
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "ctl-1",
        "ce-source": "/departments/sanitation\x01",
        "ce-type": "gridloop.handling.signed.v1",
        "content-type": "application/json",
    }
    body = b'{"command_id":"ctl-1","case_id":"C-NUL","dept":"sanitation","by":"x"}'
    await handling.js.publish("handling.sanitation.signed", body, headers=headers)
    answer = await handling.answer("sanitation", "ctl-1")
    assert (answer.accepted, answer.errors[0].field) == (False, "source")
    assert handling.rt.pool is not None
    assert await handling.rt.pool.fetchval("SELECT count(*) FROM dead_letters") == 0
    await handling.cases.poll()
    assert handling.emitted(ev.CaseSigned, case_id="C-NUL") == []
