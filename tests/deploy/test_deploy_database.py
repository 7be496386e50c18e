"""The database side of the manifests, against a real PostgreSQL: the DATABASE_URL each
Deployment composes parses, and a service's own role — with only the grants deploy/ gives it
(CONNECT and CREATE on the database) — migrates its schema at start-up and cannot read
another service's."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from gridloop_devkit.devstack import LocalPostgres
from gridloop_runtime import db

ROOT = Path(__file__).resolve().parents[2]
DEV_ROLES_SQL = ROOT / "deploy" / "overlays" / "dev" / "postgres.yaml"

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not installed: cannot render deploy/"
)


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


def service_env(check: ModuleType, docs: list[dict[str, Any]], service: str) -> dict[str, str]:
    """The environment the dev overlay gives a service's container, secrets decoded."""
    dep = check.by_kind(docs, "Deployment")[service]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    configmaps = check.by_kind(docs, "ConfigMap")
    secrets = check.by_kind(docs, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = expand(entry["value"], env)
        elif "fieldRef" in entry["valueFrom"]:  # the pod's own fields (its name)
            env[entry["name"]] = f"{service}-pod"
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            raw = secrets[ref["name"]]["data"][ref["key"]]
            env[entry["name"]] = base64.b64decode(raw).decode()
    return env


def service_migrations(service: str) -> list[db.Migration]:
    import importlib

    bootstrap = importlib.import_module(f"gridloop_{service}.bootstrap")
    return db.runtime_migrations() + db.read_migrations(service, bootstrap.MIGRATIONS)


async def test_each_service_role_migrates_its_own_schema_only(
    check: ModuleType, pg_server: LocalPostgres, database_url: str
) -> None:
    docs = check.render("dev")
    dbname = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(database_url)
    urls: dict[str, str] = {}
    try:
        for service in check.SERVICES:
            env = service_env(check, docs, service)
            parts = urlsplit(env["DATABASE_URL"])
            assert parts.scheme == "postgresql"
            assert parts.username == service
            assert parts.password == env["GRIDLOOP_DB_PASSWORD"]
            assert parts.hostname == "postgres" and parts.path == "/gridloop"
            assert parts.query == "sslmode=disable"
            # One role per test database (roles are cluster-wide), with the grants deploy/
            # gives a service role: the dev init script's and the production Cluster's.
            role = f"{service}_{dbname}"
            assert "GRANT CONNECT, CREATE ON DATABASE gridloop" in DEV_ROLES_SQL.read_text()
            await admin.execute(
                f"CREATE ROLE {role} LOGIN NOSUPERUSER PASSWORD '{env['GRIDLOOP_DB_PASSWORD']}'"
            )
            await admin.execute(f'GRANT CONNECT, CREATE ON DATABASE "{dbname}" TO {role}')
            netloc = f"{role}:{env['GRIDLOOP_DB_PASSWORD']}@127.0.0.1:{pg_server.port}"
            urls[service] = urlunsplit(parts._replace(netloc=netloc, path=f"/{dbname}"))

        for service, url in urls.items():
            pool = await db.create_pool(url, service, min_size=1, max_size=2)
            try:
                async with pool.acquire() as conn:
                    applied = await db.migrate(conn, service, service_migrations(service))
                    assert applied, f"{service}: no migration applied"
                    assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
            finally:
                await pool.close()

        # Own data: the intake role cannot read dispatch's tables.
        intake = await asyncpg.connect(urls["intake"])
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await intake.fetchval("SELECT count(*) FROM dispatch.outbox")
        finally:
            await intake.close()
    finally:
        await admin.close()


async def test_a_service_role_cannot_rewrite_its_audit_trail(
    pg_server: LocalPostgres, database_url: str
) -> None:
    """The audit trail is append-only for the service's own role, which owns the table (it
    runs the migrations) and so may disable the table's triggers: without the privileges its
    UPDATE, DELETE and TRUNCATE fail all the same. It still appends and reads."""
    dbname = urlsplit(database_url).path.lstrip("/")
    role = f"verify_{dbname}"
    admin = await asyncpg.connect(database_url)
    try:
        # the grants deploy/ gives a service role (see the test above)
        assert "GRANT CONNECT, CREATE ON DATABASE gridloop" in DEV_ROLES_SQL.read_text()
        await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER PASSWORD 'pw'")
        await admin.execute(f'GRANT CONNECT, CREATE ON DATABASE "{dbname}" TO {role}')
    finally:
        await admin.close()
    parts = urlsplit(database_url)
    url = urlunsplit(parts._replace(netloc=f"{role}:pw@127.0.0.1:{pg_server.port}"))
    conn = await asyncpg.connect(url, server_settings={"search_path": "verify"})
    try:
        await db.migrate(conn, "verify", service_migrations("verify"))
        assert (
            await conn.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_log'")
            == role
        )
        await conn.execute(
            "INSERT INTO audit_log (at, command, outcome, origin) "
            "VALUES (now(), 'verification', 'accepted', 'http:10.0.0.1')"
        )
        # what an owner may do to a trigger, it does: the privileges still refuse
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        for sql in (
            "UPDATE audit_log SET user_id = 'someone-else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(sql)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
        await conn.execute(
            "INSERT INTO audit_log (at, command, outcome, origin) "
            "VALUES (now(), 'approval', 'refused', 'http:10.0.0.1')"
        )
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 2
    finally:
        await conn.close()
