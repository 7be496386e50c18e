"""Mail to reporters without I/O: which change of a case schedules which mail to whom, in
which language, and the signed single-closing rating link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gridloop_contracts import Actor, CaseStatus, Envelope
from gridloop_contracts import cases as ev
from gridloop_intake.context import Intake
from gridloop_intake.domain import notices
from gridloop_intake.domain.case import CaseFile, CaseRow
from gridloop_intake.domain.problems import Refused
from gridloop_intake.domain.rules import CaseRules, Operator
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.mail import MAIL_TIMER, Mail
from gridloop_runtime.step import Step

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CASE = "110101-20261123-000007"
CELL = "1101010010010030"
SECRET = b"test-secret"


@pytest.fixture
def rules(intake_state: Intake) -> CaseRules:
    residents = notices.Residents(public_url="https://city.example/public/", link_secret=SECRET)
    return CaseRules(intake_state.city, intake_state.calendar, residents)


def step(at: datetime = T0) -> Step:
    return Step(source="/gridloop/intake", clock=FakeClock(at))


def web_case(rules: CaseRules, status: CaseStatus, **kw: Any) -> CaseFile:
    cell = rules.city.cell(CELL)
    assert cell is not None
    values: dict[str, Any] = {
        "case_id": CASE,
        "status": status.value,
        "status_notes": None,
        "channel": "web",
        "source": "web",
        "external_id": None,
        "report_id": "r-1",
        "category_code": "E0104",
        "urgency": "normal",
        "description": "人行道上有暴露垃圾",
        "cell_code": cell.code,
        "community_code": cell.community_code,
        "subdistrict_code": cell.subdistrict_code,
        "lon": 116.4003,
        "lat": 39.9,
        "located_by": "coordinates",
        "address": None,
        "part_code": None,
        "part_owner_dept": None,
        "camera_id": None,
        "confidence": None,
        "reporter": None,
        "reporter_user_id": None,
        "attachments": [],
        "reported_at": T0,
        "received_at": T0,
        "updated_at": T0,
        "targets": [["web", ""]],
        "subscribers": [["rp-zh", "zh"], ["rp-en", "en"]],
    }
    values.update(kw)
    return CaseFile(CASE, CaseRow(**values))


def mails(s: Step) -> dict[str, Mail]:
    """The mails a step asked for, by timer key."""
    return {
        op.key: Mail.of(op.payload)
        for op in s.timer_ops
        if op.kind == MAIL_TIMER and op.op == "set"
    }


def operator() -> Operator:
    return Operator("op-01", frozenset({"operator"}))


def test_an_accepted_case_mails_every_reporter_who_left_an_address_in_their_language(
    rules: CaseRules,
) -> None:
    state = web_case(rules, CaseStatus.PENDING_ACCEPTANCE)
    s = step()
    rules.accept(state, s, operator(), category_code=None, urgency=None, note=None)
    sent = mails(s)
    [accepted] = [env for _, env in s.pending if env.type == "gridloop.case.accepted.v1"]
    assert set(sent) == {f"{CASE}/{accepted.id}/rp-zh", f"{CASE}/{accepted.id}/rp-en"}
    zh, en = sent[f"{CASE}/{accepted.id}/rp-zh"], sent[f"{CASE}/{accepted.id}/rp-en"]
    assert (zh.to_ref, zh.lang, en.lang) == ("rp-zh", "zh", "en")
    assert zh.subject == f"您反映的问题已立案（{CASE}）"
    assert "暴露垃圾" in zh.text and f"https://city.example/public/#/case/{CASE}" in zh.text
    assert en.subject == f"Your report has been accepted ({CASE})"
    assert "Exposed" in en.text or "garbage" in en.text.lower()
    # every timer of a mail is due at once: sent as soon as the change commits
    assert all(op.due_at == T0 for op in s.timer_ops)


def test_a_rejection_mails_the_reason(rules: CaseRules) -> None:
    state = web_case(rules, CaseStatus.PENDING_ACCEPTANCE, subscribers=[["rp-zh", "zh"]])
    s = step()
    rules.reject(state, s, operator(), reason_code="duplicate", reason="与已有案卷重复")
    [mail] = mails(s).values()
    assert mail.subject == f"您反映的问题未予立案（{CASE}）"
    assert "原因：与已有案卷重复" in mail.text


def test_no_address_no_mail(rules: CaseRules) -> None:
    state = web_case(rules, CaseStatus.PENDING_ACCEPTANCE, subscribers=[])
    s = step()
    rules.accept(state, s, operator(), category_code=None, urgency=None, note=None)
    assert mails(s) == {} and s.pending


def closing(rules: CaseRules, at: datetime) -> tuple[CaseFile, Step]:
    state = web_case(
        rules,
        CaseStatus.VERIFYING,
        dept="sanitation",
        result="已清运完毕",
        subscribers=[["rp-zh", "zh"]],
    )
    event = ev.CaseClosed(
        case_id=CASE,
        occurred_at=at,
        dept="sanitation",
        task_id="t-1",
        closed_by="sup-001",
        on_time=True,
        actor=Actor(id="sup-001", role="supervisor"),
    )
    s = step(at)
    s.trigger = Envelope.of(event, source="/gridloop/verify", subject=CASE)
    rules.record(state, event, s)
    return state, s


def test_a_closing_mails_the_result_and_a_rating_link_for_that_closing(rules: CaseRules) -> None:
    closed_at = T0 + timedelta(hours=5)
    _, s = closing(rules, closed_at)
    [(key, mail)] = mails(s).items()
    assert s.trigger is not None and key == f"{CASE}/{s.trigger.id}/rp-zh"
    assert "处置结果：已清运完毕" in mail.text and "区环境卫生服务中心" in mail.text
    url = next(w for w in mail.text.split() if "#/rate/" in w)
    assert url.startswith("https://city.example/public/#/rate/")
    link = notices.read_rating_token(SECRET, url.rsplit("/", 1)[1], closed_at)
    assert (link.case_id, link.closed_at, link.ref) == (CASE, closed_at, "rp-zh")
    assert link.expires_at == closed_at + timedelta(days=30)


def test_a_rating_link_is_refused_when_changed_signed_elsewhere_or_expired() -> None:
    link = notices.RatingLink(CASE, T0, "rp-1", T0 + timedelta(days=1))
    token = notices.rating_token(SECRET, link)
    assert notices.read_rating_token(SECRET, token, T0) == link
    body, sig = token.split(".")
    for bad in (body + "x." + sig, f"{body}.{sig[:-2]}aa", "nothing", token + "."):
        with pytest.raises(Refused) as refused:
            notices.read_rating_token(SECRET, bad, T0)
        assert refused.value.problems[0].field == "token"
    with pytest.raises(Refused):
        notices.read_rating_token(b"another-key", token, T0)
    with pytest.raises(Refused) as expired:
        notices.read_rating_token(SECRET, token, T0 + timedelta(days=1))
    assert expired.value.problems[0].code == "link-expired"


def test_a_reopening_mails_why(rules: CaseRules) -> None:
    state = web_case(rules, CaseStatus.CLOSED, closed_at=T0, subscribers=[["rp-en", "en"]])
    event = ev.CaseReopened(
        case_id=CASE,
        occurred_at=T0 + timedelta(days=1),
        dept="sanitation",
        task_id="t-1",
        reason="市民评价不满意 / the reporter was dissatisfied",
    )
    s = step(T0 + timedelta(days=1))
    s.trigger = Envelope.of(event, source="/gridloop/verify", subject=CASE)
    rules.record(state, event, s)
    [mail] = mails(s).values()
    assert mail.subject == f"Your report has been reopened ({CASE})"
    assert "the reporter was dissatisfied" in mail.text


def test_the_language_of_a_request() -> None:
    assert notices.lang_of("en-GB,en;q=0.9") == "en"
    assert notices.lang_of("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert notices.lang_of(None) == "zh"
