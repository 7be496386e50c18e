"""Mail to reporters over a real SMTP server (aiosmtpd, keeping every message): a resident
who leaves an e-mail on Open311 hears of acceptance and closing, rates by the closing mail's
link once; a mail server that is down delays the mails, which then arrive, each once."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage

import nats
import pytest
from gridloop_devkit.devstack import LocalSmtp
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_intake.bootstrap import definition
from gridloop_intake.context import Intake
from gridloop_intake.settings import IntakeSettings
from gridloop_runtime.clock import FakeClock

from .conftest import DEMO_CITY, T0, Harness
from .test_intake_casefile import run_loop

POINT = {"lat": "39.9000", "long": "116.4003"}


@pytest.fixture
async def intake(
    database_url: str, nats_url: str, smtp_server: LocalSmtp, intake_state: Intake
) -> AsyncIterator[Harness]:
    """Intake sending its mail through the test's SMTP server, retrying a second later."""
    settings = settings_for(
        "intake",
        database_url,
        nats_url,
        IntakeSettings,
        city_data_dir=str(DEMO_CITY),
        smtp_port=smtp_server.port,
        mail_retry_s=1,
        smtp_timeout_s=5,
        intake_public_url="https://city.example/public/",
    )
    definition_, state = definition(settings)  # type: ignore[arg-type]
    clock = FakeClock(T0)
    nc = await nats.connect(nats_url)
    try:
        async with running(settings, definition_, clock=clock, state=state) as rt:
            yield Harness(rt, clock, nc.jetstream())
    finally:
        await nc.close()


async def report(intake: Harness, email: str, description: str, **form: str) -> str:
    body = {
        "api_key": "demo-open311-key",
        "service_code": "E0104",
        "description": description,
        "email": email,
        "first_name": "三",
        "last_name": "张",
        **POINT,
        **form,
    }
    async with intake.client() as http:
        r = await http.post("/open311/v2/requests.json", data=body)
    assert r.status_code == 201, r.text
    case_id: str = r.json()[0]["service_request_id"]
    return case_id


async def accept(intake: Harness, case_id: str) -> None:
    async with intake.client() as http:
        r = await http.post(
            f"/cases/{case_id}/accept", json={}, headers=intake.headers("op-01", "operator")
        )
    assert r.status_code == 200, r.text


def mails_to(smtp: LocalSmtp, address: str) -> list[EmailMessage]:
    return [m for m in smtp.messages() if m["To"] == address]


async def wait_mails(smtp: LocalSmtp, address: str, n: int) -> list[EmailMessage]:
    async def arrived() -> list[EmailMessage] | None:
        found = mails_to(smtp, address)
        return found if len(found) >= n else None

    what = f"{n} mail(s) to {address}"
    found: list[EmailMessage] = await wait_for(arrived, timeout=15, what=what)
    return found


async def test_a_reporter_hears_of_acceptance_and_closing_and_rates_by_the_link_once(
    intake: Harness, smtp_server: LocalSmtp
) -> None:
    case_id = await report(intake, "zhang@example.org", "人行道上有暴露垃圾")
    await accept(intake, case_id)
    [accepted] = await wait_mails(smtp_server, "zhang@example.org", 1)
    assert accepted["Subject"] == f"您反映的问题已立案（{case_id}）"
    assert f"https://city.example/public/#/case/{case_id}" in accepted.get_content()
    assert re.fullmatch(r"<[^<>@]+@gridloop\.local>", accepted["Message-ID"])

    # the address never leaves intake's reporters: not in the timer, not on the bus
    assert not await intake.value("SELECT count(*) FROM timers WHERE payload::text LIKE '%@%'")
    assert not await intake.value("SELECT count(*) FROM outbox WHERE body::text LIKE '%zhang@%'")

    await run_loop(intake, case_id, T0)
    accepted_and_closed = await wait_mails(smtp_server, "zhang@example.org", 2)
    closed = accepted_and_closed[1]
    text = closed.get_content()
    assert closed["Subject"] == f"您反映的问题已处理完毕（{case_id}）"
    assert "处置结果：已更换垃圾桶" in text
    token = re.search(r"#/rate/(\S+)", text)
    assert token is not None

    async with intake.client() as http:
        link = (await http.get(f"/public/ratings/{token[1]}")).json()
        assert link["case_id"] == case_id and link["rated"] is None and link["current"] is True
        r = await http.post(
            "/public/ratings", json={"token": token[1], "rating": "B", "comment": "很快"}
        )
        assert r.status_code == 201, r.text
        again = await http.post("/public/ratings", json={"token": token[1], "rating": "satisfied"})
        assert again.status_code == 409 and again.json()["detail"][0]["code"] == "already-rated"
        forged = await http.post(
            "/public/ratings", json={"token": token[1][:-3] + "abc", "rating": "satisfied"}
        )
        assert forged.status_code == 404 and forged.json()["detail"][0]["field"] == "token"
        case = (
            await http.get(f"/cases/{case_id}", headers=intake.headers("op-01", "operator"))
        ).json()
    assert case["rating"] == "B"
    rated = [t for t in case["timeline"] if t["type"] == "gridloop.case.rated.v2"]
    assert rated[0]["actor"]["role"] == "reporter"


async def test_english_for_a_reporter_who_asked_for_it(
    intake: Harness, smtp_server: LocalSmtp
) -> None:
    case_id = await report(intake, "jane@example.org", "Rubbish on the pavement", lang="en")
    await accept(intake, case_id)
    [mail] = await wait_mails(smtp_server, "jane@example.org", 1)
    assert mail["Subject"] == f"Your report has been accepted ({case_id})"
    assert mail["Content-Language"] == "en"


async def test_a_mail_server_down_delays_the_mail_which_then_arrives_once(
    intake: Harness, smtp_server: LocalSmtp
) -> None:
    smtp_server.stop()
    case_id = await report(intake, "li@example.org", "路边堆放建筑垃圾")
    await accept(intake, case_id)

    async def tried_twice() -> bool:
        attempts = await intake.value(
            "SELECT (payload->>'attempts')::int FROM timers WHERE kind = 'mail' AND key LIKE $1",
            f"{case_id}/%",
        )
        if attempts is None or attempts < 2:
            intake.clock.advance(timedelta(seconds=1))  # the retry falls due
            return False
        return True

    await wait_for(tried_twice, timeout=20, what="two failed attempts")
    assert mails_to(smtp_server, "li@example.org") == []

    smtp_server.start()
    intake.clock.advance(timedelta(seconds=2))
    [mail] = await wait_mails(smtp_server, "li@example.org", 1)
    assert mail["Subject"] == f"您反映的问题已立案（{case_id}）"

    async def settled() -> bool:
        pending = await intake.value(
            "SELECT count(*) FROM timers WHERE kind = 'mail' AND fired_at IS NULL "
            "AND cancelled_at IS NULL"
        )
        return bool(pending == 0)

    await wait_for(settled, timeout=10, what="no mail left to send")
    intake.clock.advance(timedelta(minutes=5))
    assert intake.rt.timer_runner is not None
    await intake.rt.timer_runner.fire_due()  # nothing is due again: sent once
    assert len(mails_to(smtp_server, "li@example.org")) == 1
