"""Subjects: where each type travels, and the CloudEvents attributes surviving both modes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from gridloop_contracts import (
    REGISTRY,
    Envelope,
    EnvelopeError,
    decode,
    from_structured,
    subject_for,
    subjects,
    to_binary,
    to_structured,
)
from gridloop_contracts.examples import EXAMPLES
from hypothesis import given
from hypothesis import strategies as st

KW = {"channel": "hotline", "source": "12345", "dept": "sanitation"}


@pytest.mark.parametrize(
    ("type_name", "subject"),
    [
        ("gridloop.case.accepted.v1", "case.accepted"),
        ("gridloop.case.verification_assigned.v1", "case.verification_assigned"),
        ("gridloop.dispatch.assigned.v1", "dispatch.sanitation.assigned"),
        ("gridloop.dispatch.answer.v1", "dispatch.sanitation.answer"),
        ("gridloop.handling.extension_requested.v1", "handling.sanitation.extension_requested"),
        ("gridloop.report.v1", "intake.hotline.12345"),
        ("gridloop.rating.v1", "intake.hotline.12345"),
        ("gridloop.case.status.v1", "notify.12345"),
        ("gridloop.report.rejected.v1", "notify.12345"),
        ("gridloop.score.published.v1", "score.published"),
    ],
)
def test_subject_for(type_name: str, subject: str) -> None:
    assert subject_for(EXAMPLES[type_name], **KW) == subject


def test_every_type_has_a_subject() -> None:
    for type_name in REGISTRY:
        subject = subject_for(EXAMPLES[type_name], **KW)
        assert all(subjects.CODE_PATTERN.fullmatch(t.replace("_", "-")) for t in subject.split("."))


def test_codes_come_from_the_event_where_it_has_them() -> None:
    detection = EXAMPLES["gridloop.detection.v1"]
    assert subject_for(detection, source="cams-east") == "intake.video.cams-east"
    rejected = EXAMPLES["gridloop.report.rejected.v1"]
    assert subject_for(rejected) == "notify.12345"  # its own `source`
    assert subject_for(EXAMPLES["gridloop.dispatch.rework.v1"]) == "dispatch.sanitation.rework"


@pytest.mark.parametrize(
    ("type_name", "kw", "missing"),
    [
        ("gridloop.report.v1", {"source": "12345"}, "channel"),
        ("gridloop.report.v1", {"channel": "hotline"}, "source"),
        ("gridloop.case.status.v1", {}, "source"),
        ("gridloop.dispatch.answer.v1", {}, "dept"),
    ],
)
def test_subject_for_names_what_is_missing(
    type_name: str, kw: dict[str, str], missing: str
) -> None:
    event = EXAMPLES[type_name]
    if type_name == "gridloop.dispatch.answer.v1":
        event = event.model_copy(update={"dept": None})
    with pytest.raises(ValueError, match=f"^{missing}"):
        subject_for(event, **kw)


def test_subject_codes_are_checked() -> None:
    with pytest.raises(ValueError, match="dept"):
        subject_for(EXAMPLES["gridloop.dispatch.assigned.v1"], dept="a.b")
    with pytest.raises(ValueError, match="channel"):
        subject_for(EXAMPLES["gridloop.report.v1"], channel="fax", source="x")


# -- envelope attributes through both modes ---------------------------------------------

_token = st.from_regex(r"[A-Za-z0-9/_.:-]{1,40}", fullmatch=True)
_ext_names = st.from_regex(r"[a-z][a-z0-9]{0,19}", fullmatch=True).filter(
    lambda n: (
        n
        not in {"id", "source", "type", "specversion", "time", "subject", "datacontenttype"}
        | {"dataschema", "data"}
    )
)
_times = st.builds(
    lambda t, minutes: t.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
)


@given(
    id=_token,
    source=_token,
    subject=st.none() | _token,
    time=_times,
    ext=st.dictionaries(_ext_names, _token, max_size=3),
)
def test_attributes_survive_both_modes(
    id: str, source: str, subject: str | None, time: datetime, ext: dict[str, str]
) -> None:
    event = EXAMPLES["gridloop.report.v1"]
    env = Envelope.of(event, source=source, subject=subject, id=id, time=time, extensions=ext)
    headers, body = to_binary(env)
    for back in (decode(headers, body), from_structured(to_structured(env))):
        assert (back.id, back.source, back.subject, back.time) == (id, source, subject, time)
        assert dict(back.extensions) == ext
        assert back.parse() == event


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (b'{"specversion": "1.0", "source": "s", "type": "t", "data": {}}', "id"),
        (b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "time": "x"}', "time"),
        (
            b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t",'
            b' "time": "2026-11-23T09:30:00"}',
            "time",
        ),
    ],
)
def test_structured_errors_name_the_attribute(doc: bytes, field: str) -> None:
    with pytest.raises(EnvelopeError) as err:
        decode({"content-type": "application/cloudevents+json"}, doc)
    assert err.value.field == field


def test_binary_without_ce_id_names_id_via_decode() -> None:
    headers, body = to_binary(Envelope.of(EXAMPLES["gridloop.report.v1"], source="s"))
    del headers["ce-id"]
    with pytest.raises(EnvelopeError) as err:
        decode(headers, body)
    assert err.value.field == "id"
