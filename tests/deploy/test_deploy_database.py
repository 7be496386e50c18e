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
from gridloop_runtime import db
from gridloop_runtime.devstack import LocalPostgres

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
