"""`hold_apart`: which messages a patient consumer with subjects that must not wait handles now
and which it holds on, keeping each case's messages in stream order."""

from __future__ import annotations

import pytest
from gridloop_runtime.consumer import ConsumerSpec, hold_apart
from nats.aio.msg import Msg

URGENT = frozenset({"case.accepted"})


def msg(subject: str, case: str | None) -> Msg:
    headers = {"ce-subject": case} if case is not None else {}
    return Msg(_client=None, subject=subject, headers=headers)  # type: ignore[arg-type]


def names(msgs: list[Msg]) -> list[tuple[str, str | None]]:
    return [(m.subject.removeprefix("case."), (m.headers or {}).get("ce-subject")) for m in msgs]


def test_what_must_not_wait_goes_now_and_the_rest_is_held() -> None:
    now, held = hold_apart(
        [],
        [msg("case.signed", "C-1"), msg("case.accepted", "C-2"), msg("case.handled", "C-3")],
        URGENT,
    )
    assert names(now) == [("accepted", "C-2")]
    assert names(held) == [("signed", "C-1"), ("handled", "C-3")]


def test_held_messages_stay_held_behind_an_urgent_one_of_another_case() -> None:
    earlier = [msg("case.signed", "C-1")]
    now, held = hold_apart(
        earlier, [msg("case.accepted", "C-2"), msg("case.closed", "C-4")], URGENT
    )
    assert names(now) == [("accepted", "C-2")]
    assert names(held) == [("signed", "C-1"), ("closed", "C-4")]


@pytest.mark.parametrize(
    ("held_case", "urgent_case"),
    [("C-1", "C-1"), (None, "C-2"), ("C-1", None)],
    ids=["same case", "a held message without a case", "an urgent message without a case"],
)
def test_an_urgent_message_that_could_overtake_a_held_one_of_its_case_takes_all_in_order(
    held_case: str | None, urgent_case: str | None
) -> None:
    earlier = [msg("case.signed", held_case), msg("case.handled", "C-9")]
    fetched = [
        msg("case.closed", "C-8"),
        msg("case.accepted", urgent_case),
        msg("case.signed", "C-7"),
    ]
    now, held = hold_apart(earlier, fetched, URGENT)
    assert now == [*earlier, *fetched]
    assert held == []


def test_a_message_held_in_the_same_fetch_counts_as_held() -> None:
    now, held = hold_apart([], [msg("case.signed", "C-1"), msg("case.accepted", "C-1")], URGENT)
    assert names(now) == [("signed", "C-1"), ("accepted", "C-1")]
    assert held == []


def test_an_urgent_message_before_a_later_one_of_its_case_goes_first() -> None:
    now, held = hold_apart([], [msg("case.accepted", "C-1"), msg("case.signed", "C-1")], URGENT)
    assert names(now) == [("accepted", "C-1")]
    assert names(held) == [("signed", "C-1")]


def test_nothing_held_and_nothing_urgent_keeps_nothing() -> None:
    assert hold_apart([], [], URGENT) == ([], [])


def test_subjects_that_must_not_wait_need_a_patient_consumer() -> None:
    async def handler(*_: object) -> None:
        return None

    with pytest.raises(ValueError, match="patient"):
        ConsumerSpec("x", "CASES", ["case.accepted"], handler, urgent=["case.accepted"])
