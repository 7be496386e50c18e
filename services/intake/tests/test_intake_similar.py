"""类案参考 against the real PostgreSQL: closed cases like the one on the desk, ranked by
their words (character bigrams or jieba's, full-text index), nearness and category, within the
reader's territory; cases closed before the upgrade, or cut by the other tokenizer, are
indexed in the background; the query's time on thousands is printed."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from gridloop_contracts import Location
from gridloop_contracts import cases as ev
from gridloop_contracts.inbound import ReportV1
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_intake.bootstrap import definition
from gridloop_intake.settings import IntakeSettings
from gridloop_runtime.clock import FakeClock

from .conftest import DEMO_CITY, Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CELL_A = "1101010010010030"
P_A = Location(lat=39.9000, lon=116.4003)  # in CELL_A
P_B = Location(lat=39.9000, lon=116.4009)  # ~50 m east, the next cell
P_A2 = Location(lat=39.9003, lon=116.4001)  # ~35 m north of P_A, in CELL_A


@pytest.fixture
async def quick(
    database_url: str,
    nats_url: str,
    s3_settings: dict[str, str],
    request: pytest.FixtureRequest,
) -> AsyncIterator[Harness]:
    """Intake whose indexer looks for newly closed cases every 0.2 s (with the tokenizer a
    test names by indirect parametrisation, else the default)."""
    tokenizer = getattr(request, "param", None)
    settings = settings_for(
        "intake",
        database_url,
        nats_url,
        IntakeSettings,
        city_data_dir=str(DEMO_CITY),
        intake_similar_index_interval_s=0.2,
        **({"intake_similar_tokenizer": tokenizer} if tokenizer else {}),
        **s3_settings,
    )
    assert isinstance(settings, IntakeSettings)
    definition_, state = definition(settings)
    clock = FakeClock(T0)
    nc = await nats.connect(nats_url)
    try:
        async with running(settings, definition_, clock=clock, state=state) as rt:
            yield Harness(rt, clock, nc.jetstream())
    finally:
        await nc.close()


def report(external_id: str, description: str, where: Location, **kw: Any) -> ReportV1:
    values: dict[str, Any] = {
        "external_id": external_id,
        "description": description,
        "reported_at": T0,
        "location": where,
        "category_code": "P0301",
        "reporter_user_id": "sup-001",
    }
    values.update(kw)
    return ReportV1.model_validate(values)


async def closed_case(intake: Harness, external_id: str, description: str, where: Location,
                      result: str, **kw: Any) -> str:  # fmt: skip
    """A report taken, handled by sanitation with `result` and closed 3 hours later."""
    await intake.publish("intake.patrol.patrol-app", report(external_id, description, where, **kw))
    case_id = await intake.case_of("patrol-app", external_id)
    at = T0 + timedelta(minutes=1)
    dims = {"case_id": case_id, "dept": "sanitation", "task_id": f"t-{external_id}"}
    await intake.upstream(
        ev.CaseDispatched(**dims, occurred_at=at, deadline=at + timedelta(days=1))
    )
    await intake.upstream(
        ev.CaseHandled(**dims, occurred_at=at + timedelta(hours=2), result=result,
                       completed_at=at + timedelta(hours=2)),
        "handling",
    )  # fmt: skip
    await intake.upstream(
        ev.CaseClosed(**dims, occurred_at=T0 + timedelta(hours=3), closed_by="sup-001",
                      on_time=True),
        "verify",
    )  # fmt: skip

    async def closed() -> bool:
        return bool(await intake.value("SELECT archived FROM cases WHERE case_id = $1", case_id))

    await wait_for(closed, timeout=30, what=f"{case_id} closed")
    return case_id


# the words of "垃圾桶破损严重，桶盖脱落" each tokenizer must find
TERMS = {
    "bigram": {"垃圾", "圾桶", "破损", "桶盖", "脱落"},
    "jieba": {"垃圾桶", "破损", "桶盖", "脱落"},
}


@pytest.mark.parametrize("quick", ["bigram", "jieba"], indirect=True)
async def test_the_most_similar_closed_cases_first_with_how_they_were_solved(
    quick: Harness,
) -> None:
    intake = quick
    tokenizer = intake.rt.settings.similar_tokenizer  # type: ignore[attr-defined]
    same_words = await closed_case(
        intake, "s-1", "垃圾桶破损严重，桶盖脱落", P_A2, "已更换新垃圾桶"
    )
    other_words = await closed_case(intake, "s-2", "果皮箱周边有积水", P_A, "已清理积水")
    next_cell = await closed_case(intake, "s-3", "垃圾桶破损，桶盖脱落", P_B, "已修复桶盖")
    other_kind = await closed_case(
        intake, "s-4", "路面坑洼积水", P_A, "已填补", category_code="E0101"
    )
    await intake.publish(
        "intake.patrol.patrol-app", report("s-9", "垃圾桶破损了，桶盖脱落在路边", P_A)
    )
    probe = await intake.case_of("patrol-app", "s-9")

    # the indexer gives the closed cases their words, in the background
    async def indexed() -> bool:
        return bool(await intake.value("SELECT count(*) FROM archive WHERE terms IS NULL") == 0)

    await wait_for(indexed, timeout=60, what="the archive indexed")
    terms = await intake.value(
        "SELECT tsvector_to_array(terms) FROM archive WHERE case_id = $1", same_words
    )
    assert TERMS[tokenizer] <= set(terms), terms
    assert await intake.value("SELECT terms_by FROM archive WHERE case_id = $1", same_words) == (
        tokenizer
    )

    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        r = await http.get(f"/cases/{probe}/similar", params={"limit": 5}, headers=operator)
        assert r.status_code == 200, r.text
        found = r.json()
        ids = [s["case_id"] for s in found]
        # same words nearby first; the same category without shared words after; another
        # category with no shared word is not similar at all
        assert set(ids[:2]) == {same_words, next_cell} and ids[2] == other_words
        assert other_kind not in ids
        first = found[0]
        assert first["dept"] == "sanitation" and first["dept_name"]
        assert first["result"] in ("已更换新垃圾桶", "已修复桶盖")
        assert first["took_s"] == 3 * 3600 and first["same_category"] is True
        assert first["text_similarity"] > 0.5 and first["distance_m"] < 60
        assert [s["score"] for s in found] == sorted((s["score"] for s in found), reverse=True)

        one = await http.get(f"/cases/{probe}/similar", params={"limit": 1}, headers=operator)
        assert len(one.json()) == 1
        bad = await http.get(f"/cases/{probe}/similar", params={"limit": 0}, headers=operator)
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "query.limit"

        # a grid head of cell A: the case next door is beyond their territory, left out
        head = intake.headers("gh-a", "grid-head", territory=(CELL_A,))
        mine = (await http.get(f"/cases/{probe}/similar", headers=head)).json()
        assert next_cell not in [s["case_id"] for s in mine]
        assert same_words in [s["case_id"] for s in mine]
        # and the case next door itself is not theirs to read: 404, as if it did not exist
        hidden = await http.get(f"/cases/{next_cell}/similar", headers=head)
        assert hidden.status_code == 404

        # a case reopened is no longer a closed case to learn from
        await intake.upstream(
            ev.CaseReopened(
                case_id=same_words,
                occurred_at=T0 + timedelta(hours=5),
                dept="sanitation",
                task_id="t-s-1",
                reason="又坏了",
            ),
            "verify",
        )

        async def reopened() -> bool:
            got = (await http.get(f"/cases/{probe}/similar", headers=operator)).json()
            return same_words not in [s["case_id"] for s in got]

        await wait_for(reopened, timeout=30, what="the reopened case left out")


WORDS = (
    "垃圾桶 破损 井盖 缺失 路灯 不亮 积水 严重 小广告 张贴 占道 经营 树木 倒伏 护栏 损坏 "
    "暴露 垃圾 渣土 遗撒 违章 停车 噪音 扰民 桶盖 脱落 路面 坑洼 消防栓 漏水"
)
VOCAB = WORDS.split()


async def test_thousands_of_cases_closed_before_the_upgrade_are_indexed_and_searched_fast(
    quick: Harness,
) -> None:
    """Cases archived with no terms (as the migration leaves those closed before it) are
    indexed in the background; the query then answers within a second on 3,000 of them."""
    intake = quick
    await intake.publish("intake.patrol.patrol-app", report("probe", "垃圾桶破损，桶盖脱落", P_A))
    probe = await intake.case_of("patrol-app", "probe")
    rnd = random.Random(21)
    rows = []
    for i in range(3000):
        lat = P_A.lat + rnd.uniform(-0.004, 0.004)  # about ±450 m
        lon = P_A.lon + rnd.uniform(-0.005, 0.005)
        text = "".join(rnd.sample(VOCAB, 4))
        category = rnd.choice(("P0301", "P0301", "E0101", "E0201"))
        rows.append((f"110101-20250101-{i:06d}", lat, lon, text, category))
    assert intake.rt.pool is not None
    async with intake.rt.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO cases (case_id, status, channel, source, report_id, category_code, "
            "description, cell_code, community_code, subdistrict_code, lon, lat, located_by, "
            "reported_at, received_at, updated_at, closed_at, archived, dept) "
            "SELECT u.id, 'closed', 'web', 'x', 'r' || u.id, u.cat, u.txt, $6, 'c', 's', u.lon, "
            "u.lat, 'coordinates', $7, $7, $8, $8, true, 'sanitation' "
            "FROM unnest($1::text[], $2::float8[], $3::float8[], $4::text[], $5::text[]) "
            "AS u(id, lat, lon, txt, cat)",
            *map(list, zip(*rows, strict=True)),
            CELL_A,
            T0 - timedelta(days=30),
            T0 - timedelta(days=29),
        )
        await conn.execute(
            "INSERT INTO archive (case_id, closed_at, category_code, cell_code, community_code, "
            "subdistrict_code, lon, lat, dept, on_time, case_data, timeline) "
            "SELECT case_id, closed_at, category_code, cell_code, community_code, "
            "subdistrict_code, lon, lat, dept, true, jsonb_build_object('description', "
            "description, 'reported_at', reported_at), '[]' FROM cases WHERE archived"
        )

    async def indexed() -> bool:
        return bool(await intake.value("SELECT count(*) FROM archive WHERE terms IS NULL") == 0)

    await wait_for(indexed, timeout=120, what="3,000 archived cases indexed")

    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        await http.get(f"/cases/{probe}/similar", headers=operator)  # warm
        times = []
        for _ in range(5):
            start = time.perf_counter()
            r = await http.get(f"/cases/{probe}/similar", params={"limit": 5}, headers=operator)
            times.append(time.perf_counter() - start)
        found = r.json()
    # the time is printed, not asserted: speed is measured by make bench
    print(f"similar cases over 3,000 archived: median {sorted(times)[2] * 1000:.1f} ms")
    assert len(found) == 5
    assert all(s["same_category"] and s["text_similarity"] > 0 for s in found)


async def test_cases_cut_by_another_tokenizer_are_segmented_again(quick: Harness) -> None:
    """Terms of one tokenizer do not match a query cut by the other: after the setting changes
    (here: jieba's terms, as every case indexed before migration 008 has, under the default
    bigram tokenizer) the indexer cuts those cases again, and until then the query cuts them
    itself."""
    intake = quick
    old = await closed_case(intake, "t-old", "垃圾桶破损严重，桶盖脱落", P_A2, "已更换")
    await intake.publish("intake.patrol.patrol-app", report("t-probe", "桶盖脱落", P_A))
    probe = await intake.case_of("patrol-app", "t-probe")
    assert probe != old

    async def indexed() -> bool:
        return bool(await intake.value("SELECT terms_by FROM archive WHERE case_id = $1", old))

    await wait_for(indexed, timeout=30, what="the closed case indexed")
    assert intake.rt.pool is not None
    async with intake.rt.pool.acquire() as conn:
        # as jieba cut it, before the setting changed
        await conn.execute(
            "UPDATE archive SET terms = array_to_tsvector($2::text[]), terms_by = 'jieba' "
            "WHERE case_id = $1",
            old,
            sorted(TERMS["jieba"]),
        )

    async def cut_again() -> list[str] | None:
        row = await intake.value(
            "SELECT tsvector_to_array(terms) FROM archive WHERE case_id = $1 "
            "AND terms_by = 'bigram'",
            old,
        )
        return row if row else None

    terms = await wait_for(cut_again, timeout=30, what="the case segmented again")
    assert TERMS["bigram"] <= set(terms)
    operator = intake.headers("op-01", "operator")
    async with intake.client() as http:
        found = (await http.get(f"/cases/{probe}/similar", headers=operator)).json()
    assert old in [s["case_id"] for s in found]
