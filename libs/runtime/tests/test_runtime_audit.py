"""Every command is in the append-only audit trail: accepted in the transaction of its
effect, refused in its own, with who, what, when and from where."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import pytest
from fastapi import APIRouter, Depends, Request
from gridloop_devkit.testing import http_client, running, settings_for, wait_for
from gridloop_runtime import access, audit
from gridloop_runtime.auth import CurrentPrincipal, Principal, lookup_from, require
from gridloop_runtime.commands import CommandBody, Refusal, run_command
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import ServiceDefinition, runtime_of

MIGRATIONS = Path(__file__).parent / "sql"


class User:
    def __init__(self, *roles: str, territory: tuple[str, ...] = ("*",)) -> None:
        self.roles, self.name, self.dept, self.territory = roles, "", None, territory


USERS = {
    "disp": User("dispatcher"),
    "disp-east": User("dispatcher", territory=("110101002",)),
    "eval": User("evaluator"),
    "admin": User("admin"),
    "op": User("operator"),
}
# the cells of the cases the echo service reads
PLACES = {"C-1": "1101010010010001", "C-2": "1101010020010001"}


class Bump(CommandBody):
    by: int = 1


def definition() -> ServiceDefinition:
    router = APIRouter(route_class=JSONRoute)

    @router.post("/cases/{case_id}/bump")
    async def bump(
        case_id: str,
        body: Bump,
        request: Request,
        _: Annotated[Principal, Depends(require("dispatcher"))],
    ) -> dict[str, Any]:
        rt = runtime_of(request)

        async def fn(work: Work) -> dict[str, Any]:
            if body.by < 0:
                raise Refusal("cannot go down", field="by", code="negative", status=422)
            value = await work.conn.fetchval(
                "UPDATE counter SET value = value + $1 RETURNING value", body.by
            )
            return {"case_id": case_id, "value": value}

        assert rt.uow is not None
        return await run_command(rt.uow, body.command_id, "bump", fn)

    @router.get("/cases")
    async def list_cases(who: CurrentPrincipal) -> list[str]:
        reach = access.list_reach(who, ("dispatcher",))
        return [c for c, cell in PLACES.items() if reach.sees(cell)]

    @router.get("/cases/{case_id}")
    async def read_case(case_id: str, who: CurrentPrincipal) -> dict[str, Any]:
        if case_id not in PLACES:
            raise Refusal(f"no case {case_id!r}", field="case_id", code="not-found", status=404)
        if not access.may_read(who, ("dispatcher",), cell_code=PLACES[case_id]):
            raise access.out_of_reach("case", case_id, who)
        return {"case_id": case_id}

    return ServiceDefinition(
        name="echo", migrations_dir=MIGRATIONS, routers=[router], users=lookup_from(USERS)
    )


def user(uid: str, **extra: str) -> dict[str, str]:
    return {"X-User": uid, "User-Agent": "audit-test/1", **extra}


async def test_accepted_refused_and_replayed_commands_are_audited(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition()) as rt, http_client(rt) as client:
        ok = await client.post(
            "/cases/C-1/bump",
            json={"by": 2, "command_id": "cmd-1"},
            headers=user("disp", **{"X-Request-Id": "req-42"}),
        )
        assert ok.status_code == 200, ok.text
        again = await client.post(
            "/cases/C-1/bump", json={"by": 2, "command_id": "cmd-1"}, headers=user("disp")
        )
        assert again.json() == ok.json()
        refused = await client.post("/cases/C-2/bump", json={"by": -1}, headers=user("disp"))
        assert refused.status_code == 422
        wrong_role = await client.post("/cases/C-3/bump", json={"by": 1}, headers=user("op"))
        assert wrong_role.status_code == 403
        nobody = await client.post("/cases/C-4/bump", json={"by": 1})
        assert nobody.status_code == 401
        # a request that does not match the command's contract is refused and audited too
        invalid = await client.post(
            "/cases/C-5/bump", json={"by": "many", "extra\u0000": 1}, headers=user("disp")
        )
        assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "by"]
        # reads are not commands: not audited
        assert (await client.get("/admin/dlq", headers=user("admin"))).status_code == 200

        r = await client.get("/admin/audit", headers=user("eval"))
        assert r.status_code == 200, r.text
        entries = list(reversed(r.json()))
        assert [(e["case_id"], e["outcome"]) for e in entries] == [
            ("C-1", "accepted"),
            ("C-1", "replayed"),
            ("C-2", "refused"),
            ("C-3", "refused"),
            ("C-4", "refused"),
            ("C-5", "refused"),
        ]
        first = entries[0]
        assert first["user_id"] == "disp" and first["roles"] == ["dispatcher"]
        assert first["command"] == "bump" and first["command_id"] == "cmd-1"
        assert first["origin"].startswith("http:") and first["user_agent"] == "audit-test/1"
        assert first["request_id"] == "req-42" and first["target"] == {"case_id": "C-1"}
        now = datetime.now(UTC)
        assert now - timedelta(minutes=1) < datetime.fromisoformat(first["at"]) <= now
        assert (entries[2]["code"], entries[2]["field"], entries[2]["status"]) == (
            "negative",
            "by",
            422,
        )
        assert entries[2]["reason"] == "cannot go down"
        assert entries[3]["user_id"] == "op" and entries[3]["code"] == "forbidden"
        assert entries[3]["command"] == "POST /cases/{case_id}/bump"
        assert entries[4]["user_id"] is None and entries[4]["status"] == 401
        assert (
            entries[5]["user_id"] == "disp"
            and entries[5]["command"] == "POST /cases/{case_id}/bump"
        )
        assert (entries[5]["code"], entries[5]["field"], entries[5]["status"]) == (
            "invalid",
            "by",
            422,
        )

        # filters: case, user, time range, limit
        by_case = await client.get("/admin/audit?case_id=C-1", headers=user("admin"))
        assert {e["case_id"] for e in by_case.json()} == {"C-1"} and len(by_case.json()) == 2
        by_user = await client.get("/admin/audit?user=op", headers=user("admin"))
        assert [e["case_id"] for e in by_user.json()] == ["C-3"]
        later = (now + timedelta(minutes=1)).isoformat()
        empty = await client.get("/admin/audit", params={"since": later}, headers=user("admin"))
        assert empty.json() == []
        until = await client.get("/admin/audit", params={"until": later}, headers=user("admin"))
        assert len(until.json()) == 6
        one = await client.get("/admin/audit?limit=1", headers=user("admin"))
        assert [e["case_id"] for e in one.json()] == ["C-5"]
        bad = await client.get(
            "/admin/audit", params={"since": later, "until": now.isoformat()}, headers=user("admin")
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "until"
        # only admins and evaluators read the trail
        denied = await client.get("/admin/audit", headers=user("disp"))
        assert denied.status_code == 403 and denied.json()["detail"][0]["code"] == "forbidden"


async def test_an_accepted_command_and_its_audit_entry_commit_together(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command whose transaction fails after its effect leaves neither effect nor entry."""
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition()) as rt:
        assert rt.uow is not None

        async def fn(work: Work) -> dict[str, Any]:
            await work.conn.execute("UPDATE counter SET value = 100")
            return {"ok": True}

        with pytest.raises(asyncpg.UniqueViolationError):
            async with rt.uow() as work:
                await audit.record_work(work, "bump", "accepted", case_id="C-9")
                await work.conn.execute("UPDATE counter SET value = 100")
                await work.conn.execute("INSERT INTO seen VALUES ('x', 1), ('x', 2)")
        await run_command(rt.uow, None, "bump", fn, case_id="C-10")
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            rows = await conn.fetch("SELECT case_id, origin, outcome FROM audit_log")
        assert [tuple(r) for r in rows] == [("C-10", "internal", "accepted")]


async def test_the_audit_log_is_append_only(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition()) as rt:
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            await audit.record(
                conn,
                at=datetime.now(UTC),
                command="bump",
                outcome="accepted",
                subject="handling.water.sign",
                user_id="w1",
                roles=["department"],
            )
            row = await conn.fetchrow("SELECT origin, user_id, roles FROM audit_log")
            assert row is not None and tuple(row) == (
                "nats:handling.water.sign",
                "w1",
                ["department"],
            )
            for sql in (
                "UPDATE audit_log SET user_id = 'someone-else'",
                "DELETE FROM audit_log",
                "TRUNCATE audit_log",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await conn.execute(sql)
            assert await conn.fetchval("SELECT user_id FROM audit_log") == "w1"


async def test_a_batch_of_bus_commands_is_audited_in_one_call(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for("echo", database_url, nats_url)
    at = datetime.now(UTC)
    async with running(settings, definition()) as rt:
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            await audit.record_many(conn, [])
            await audit.record_many(
                conn,
                [
                    {
                        "at": at,
                        "command": "signed",
                        "outcome": "accepted",
                        "case_id": "C-1",
                        "subject": "handling.water.signed",
                        "roles": ("department",),
                    },
                    {
                        "at": at,
                        "command": "handled",
                        "outcome": "refused",
                        "case_id": "C-2",
                        "field": "data.completed_at",
                        "subject": "handling.water.handled",
                    },
                ],
            )
            rows = await conn.fetch(
                "SELECT command, outcome, case_id, field, origin, roles FROM audit_log ORDER BY id"
            )
    assert [tuple(r) for r in rows] == [
        ("signed", "accepted", "C-1", None, "nats:handling.water.signed", ["department"]),
        ("handled", "refused", "C-2", "data.completed_at", "nats:handling.water.handled", []),
    ]


async def test_a_refused_read_is_audited_and_answered_as_an_unknown_case(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A case out of the caller's territory: 404 exactly as for an id that does not exist,
    and one entry in the trail saying who tried and why. Allowed reads and reads of unknown
    ids leave nothing."""
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition()) as rt, http_client(rt) as client:
        assert (await client.get("/cases/C-1", headers=user("disp"))).status_code == 200
        assert (await client.get("/cases/C-2", headers=user("disp-east"))).status_code == 200
        hidden = await client.get("/cases/C-1", headers=user("disp-east"))
        unknown = await client.get("/cases/C-9", headers=user("disp-east"))
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json() == {
            "detail": [{"code": "not-found", "reason": "no case 'C-1'", "field": "case_id"}]
        }
        assert unknown.json()["detail"][0]["reason"] == "no case 'C-9'"
        # lists show what is within reach; a role that reads nothing is refused
        listed = await client.get("/cases", headers=user("disp-east"))
        assert listed.json() == ["C-2"]
        refused = await client.get("/cases", headers=user("op"))
        assert refused.status_code == 403 and refused.json()["detail"][0]["code"] == "forbidden"

        r = await client.get("/admin/audit", headers=user("eval"))
        entries = list(reversed(r.json()))
        assert [(e["user_id"], e["case_id"], e["outcome"], e["status"]) for e in entries] == [
            ("disp-east", "C-1", "refused", 404),
            ("op", None, "refused", 403),
        ]
        first = entries[0]
        assert first["command"] == "GET /cases/{case_id}" and first["code"] == "out-of-reach"
        assert "110101002" in first["reason"] and first["roles"] == ["dispatcher"]
        assert first["origin"].startswith("http:") and first["user_agent"] == "audit-test/1"
        assert entries[1]["command"] == "GET /cases" and entries[1]["code"] == "forbidden"


async def test_a_resend_racing_the_first_send_gets_its_answer_and_changes_nothing(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MODE", "dev")
    settings = settings_for("echo", database_url, nats_url)
    async with running(settings, definition()) as rt, http_client(rt) as client:
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            before = await conn.fetchval("SELECT value FROM counter")
            # hold the counter's row: both sends run their effect, then wait here together
            blocker = await asyncpg.connect(database_url)
            await blocker.execute("BEGIN")
            await blocker.execute("SET LOCAL search_path TO echo")
            await blocker.execute("UPDATE counter SET value = value")
            sends = [
                asyncio.create_task(
                    client.post(
                        "/cases/C-9/bump",
                        json={"by": 5, "command_id": "cmd-race"},
                        headers=user("disp"),
                    )
                )
                for _ in range(2)
            ]

            async def both_waiting() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE counter%'"
                )
                return bool(n == 2)

            await wait_for(both_waiting, what="both sends waiting on the counter")
            await blocker.execute("COMMIT")
            await blocker.close()
            answers = [r.json() for r in await asyncio.gather(*sends)]
            assert answers[0] == answers[1] == {"case_id": "C-9", "value": before + 5}
            assert await conn.fetchval("SELECT value FROM counter") == before + 5
            outcomes = await conn.fetch(
                "SELECT outcome FROM audit_log WHERE command_id = 'cmd-race' ORDER BY id"
            )
            assert [r["outcome"] for r in outcomes] == ["accepted", "replayed"]
            assert (
                await conn.fetchval("SELECT count(*) FROM commands WHERE command_id = 'cmd-race'")
                == 1
            )
