"""The resident's mail over the whole system: the five services as processes, the local SMTP
server of the stack (aiosmtpd, keeping every message) taken away for the whole loop. A
resident reports over Open311 with an e-mail; the case is accepted, handled by the
sanitation kit, verified and closed while no mail can go out; once the mail server is back
the "accepted" and "closed" mails arrive, each once, and the closing's link rates it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage

import asyncpg
import nats
import pytest
import pytest_asyncio
from gridloop_city import City
from gridloop_devkit.devstack import LocalSmtp
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import load_module, wait_for

from .loop import KIT, ROOT, Loop, centre

pytestmark = pytest.mark.asyncio(loop_scope="module")
# A mail the server did not take is tried again a second later (not 30 s).
STACK_ENV = {"MAIL_RETRY_S": "1"}
ADDRESS = "resident@example.org"


@pytest.fixture(scope="module")
def city() -> City:
    from gridloop_city import load_city

    return load_city(ROOT / "data" / "demo-city")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def loop(stack: Stack, city: City) -> AsyncIterator[Loop]:
    assert stack.nats_url
    nc = await nats.connect(stack.nats_servers)
    lp = Loop(stack, nc, city)
    kit = load_module(KIT, "department_system")
    stop = asyncio.Event()
    task = asyncio.create_task(
        kit.run(stack.nats_url, "sanitation", behaviour="handle", stop=stop, say=lambda _: None)
    )
    try:
        yield lp
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await lp.http.aclose()
        await nc.close()


def mails(smtp: LocalSmtp) -> list[EmailMessage]:
    return [m for m in smtp.messages() if m["To"] == ADDRESS]


async def pending_mails(stack: Stack) -> int:
    assert stack.database_url
    conn = await asyncpg.connect(stack.database_url)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM intake.timers WHERE kind = 'mail' AND fired_at IS NULL "
            "AND cancelled_at IS NULL"
        )
        return n
    finally:
        await conn.close()


async def test_a_mail_server_down_for_the_whole_loop_delays_the_mails_each_arrives_once(
    loop: Loop, stack: Stack
) -> None:
    smtp = stack.smtp
    assert smtp is not None, "the stack starts a local SMTP server"
    smtp.stop()
    cell = next(
        c
        for c in sorted(loop.city.cells)
        if loop.city.cells[c].entry_list is None and c.endswith("0033")
    )
    where = centre(loop.city, cell)
    form = {
        "api_key": "demo-open311-key",
        "service_code": "E0104",
        "lat": str(where["lat"]),
        "long": str(where["lon"]),
        "description": "小区门口人行道上堆放垃圾",
        "email": ADDRESS,
    }
    r = await loop.http.post(loop.url("intake", "/open311/v2/requests.json"), data=form)
    assert r.status_code == 201, r.text
    case_id = r.json()[0]["service_request_id"]
    await loop.wait_status(case_id, "pending_acceptance")
    await loop.post("intake", f"/cases/{case_id}/accept", {}, "op-01")
    await loop.wait_status(case_id, "handled", "verifying")
    await loop.verify(case_id, passed=True)
    await loop.wait_status(case_id, "closed")

    # the whole loop ran with the mail server away: nothing sent, two mails waiting
    async def both_waiting() -> bool:
        return await pending_mails(stack) >= 2

    await wait_for(both_waiting, timeout=30, what="the accepted and closed mails waiting")
    assert mails(smtp) == []

    smtp.start()

    async def arrived() -> list[EmailMessage] | None:
        found = mails(smtp)
        return found if len(found) >= 2 else None

    got: list[EmailMessage] = await wait_for(arrived, timeout=45, what="the two mails")
    subjects = sorted(str(m["Subject"]) for m in got)
    assert subjects == sorted(
        [f"您反映的问题已立案（{case_id}）", f"您反映的问题已处理完毕（{case_id}）"]
    )

    async def none_waiting() -> bool:
        return await pending_mails(stack) == 0

    await wait_for(none_waiting, timeout=30, what="no mail left to send")
    assert len(mails(smtp)) == 2, [m["Subject"] for m in mails(smtp)]
    assert len({m["Message-ID"] for m in mails(smtp)}) == 2

    # the closing mail's link rates the case, once, without a login
    closed = next(m for m in got if "处理完毕" in str(m["Subject"]))
    token = re.search(r"#/rate/(\S+)", closed.get_content())
    assert token is not None
    rate = loop.url("intake", "/public/ratings")
    r = await loop.http.post(rate, json={"token": token[1], "rating": "A", "comment": "及时"})
    assert r.status_code == 201, r.text
    again = await loop.http.post(rate, json={"token": token[1], "rating": "D"})
    assert again.status_code == 409
    case = await loop.get("intake", f"/cases/{case_id}", "op-01")
    assert case["rating"] == "A"
