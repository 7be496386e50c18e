"""PostgreSQL: the asyncpg pool of a service (its own schema) and the migration runner."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson
import structlog
from asyncpg.pool import PoolConnectionProxy

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection, pooled or not: what handlers and repositories take."""

log = structlog.get_logger(__name__)
T = TypeVar("T")

# PostgreSQL undoes one of two transactions that wait on each other (a deadlock) or that
# cannot both stand (a serialization failure): nothing of the undone one happened, so a
# command or an event runs again at once, up to this many times in all, before the usual
# failure path (a 503; a delivery spent).
CONFLICT_ATTEMPTS = 3
Conflict = asyncpg.exceptions.TransactionRollbackError


async def again_on_conflict(run: Callable[[], Awaitable[T]], what: str, **context: Any) -> T:
    """`run` (one transaction), again when PostgreSQL undid it for a concurrent one, after a
    short random pause so the two sides do not meet again in step; the last attempt's
    `Conflict` is raised. `what` and `context` name it in the log."""
    for attempt in range(1, CONFLICT_ATTEMPTS):
        try:
            return await run()
        except Conflict as exc:
            log.info(
                f"{what} undone for a concurrent transaction; again",
                attempt=attempt,
                error=type(exc).__name__,
                **context,
            )
            await asyncio.sleep(random.uniform(0, 0.02 * attempt))
    return await run()


_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_FILE_RE = re.compile(r"^(\d{3,})_[A-Za-z0-9_\-]+\.sql$")


def check_schema(schema: str) -> str:
    if not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"schema name {schema!r} must be lowercase letters, digits, '_'")
    return schema


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection goes back to the pool with. asyncpg has already ended any open
    transaction and dropped the listener callbacks; its default would also send
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` — a round trip on every
    release, several per event. gridloop leaves no session state on a pooled connection:
    settings are `SET LOCAL`, a `LISTEN` is removed with its callback, and a session lock is
    unlocked by its holder, which closes the connection instead when it cannot
    (`unlock_or_close`)."""


async def unlock_or_close(conn: Conn, key: int) -> None:
    """Release a session advisory lock; a connection that cannot say so is closed, so it
    never goes back to the pool still holding the lock."""
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
    except BaseException:
        conn.terminate()
        raise


# What the planner assumes a page read off the table's order costs, against 1 for the next
# page in order. PostgreSQL's 4 is for disks that seek; a service's working set is in memory
# (or on SSD), where looking a few rows up by key is cheap. With 4, a plan made for any number
# of keys (a command's, `GENERIC_PLANS`) preferred reading a table of a few thousand rows
# whole over a look-up per key.
RANDOM_PAGE_COST = 1.1


def _server_settings(
    schema: str, random_page_cost: float, generic_plans: bool = False
) -> dict[str, str]:
    settings = {
        "search_path": f"{schema},public",
        "application_name": schema,
        "random_page_cost": str(random_page_cost),
    }
    if generic_plans:
        settings["plan_cache_mode"] = "force_generic_plan"
    return settings


async def create_pool(
    dsn: str,
    schema: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    random_page_cost: float = RANDOM_PAGE_COST,
) -> asyncpg.Pool:
    """A pool whose connections see the service's schema first, are named after it and
    decode JSON with orjson."""
    check_schema(schema)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=_server_settings(schema, random_page_cost),
    )
    assert pool is not None
    return pool


async def connect(
    dsn: str,
    schema: str,
    *,
    random_page_cost: float = RANDOM_PAGE_COST,
    generic_plans: bool = False,
) -> asyncpg.Connection:
    """One connection outside the pool, set up as the pool's are (the service's schema first,
    JSON by orjson): an ordered consumer's lead holds its lock on one and does its work on it.
    `generic_plans`: every statement on it runs on the plan PostgreSQL keeps for it, made for
    any parameters (`plan_cache_mode = force_generic_plan`, as `outbox.GENERIC_PLANS` for one
    transaction): a consumer's statements take arrays of the batch's keys, and for the short
    arrays of light traffic the planner judges a fresh plan cheaper at every call."""
    check_schema(schema)
    conn = await asyncpg.connect(
        dsn, server_settings=_server_settings(schema, random_page_cost, generic_plans)
    )
    try:
        await _init_connection(conn)
    except BaseException:
        conn.terminate()
        raise
    return conn


@dataclass(frozen=True)
class Migration:
    """One ordered SQL file; `scope` keeps runtime and service files apart."""

    scope: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def read_migrations(scope: str, directory: Path) -> list[Migration]:
    """The `NNN_name.sql` files of a directory, in order; anything else there is an error."""
    out = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _FILE_RE.fullmatch(path.name)
        if not m:
            raise ValueError(f"migration file {path.name!r} must be named NNN_description.sql")
        out.append(Migration(scope, int(m.group(1)), path.stem, path.read_text(encoding="utf-8")))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return out


def runtime_migrations() -> list[Migration]:
    root = resources.files("gridloop_runtime") / "sql"
    return read_migrations("runtime", Path(str(root)))


async def migrate(conn: Conn, schema: str, migrations: Sequence[Migration]) -> list[str]:
    """Apply what is new, in order, each in its own transaction; refuse edited history.

    An advisory lock on the schema name serialises replicas that start together.
    Returns the names applied.
    """
    check_schema(schema)
    lock_key = int.from_bytes(
        hashlib.sha256(f"migrate:{schema}".encode()).digest()[:8], "big", signed=True
    )
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations (
                    scope text NOT NULL, version int NOT NULL, name text NOT NULL,
                    checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (scope, version))"""
        )
        rows = await conn.fetch(
            f'SELECT scope, version, checksum FROM "{schema}".schema_migrations'
        )
        done = {(r["scope"], r["version"]): r["checksum"] for r in rows}
        applied = []
        for mig in migrations:
            key = (mig.scope, mig.version)
            if key in done:
                if done[key] != mig.checksum:
                    raise RuntimeError(
                        f"migration {mig.scope}/{mig.name} changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(mig.sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (scope, version, name, checksum) '
                    "VALUES ($1, $2, $3, $4)",
                    mig.scope,
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
            applied.append(f"{mig.scope}/{mig.name}")
            log.info("migration applied", schema=schema, migration=f"{mig.scope}/{mig.name}")
        return applied
    finally:
        await unlock_or_close(conn, lock_key)


def upsert_sql(
    table: str,
    columns: Sequence[str],
    *,
    key: str,
    update: Sequence[str],
    keep_existing: bool = False,
) -> str:
    """`INSERT INTO table (columns) VALUES ($1..$n) ON CONFLICT (key) DO UPDATE SET ...` for
    the `update` columns; `keep_existing` keeps a stored value where the new one is NULL."""
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    if keep_existing:
        sets = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, {table}.{c})" for c in update)
    else:
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in update)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {sets}"
    )


def lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key for a name (leadership of a relay or a consumer)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _is_array(sql_type: str) -> bool:
    return sql_type.endswith("[]")


def unnest_upsert(
    table: str,
    columns: Sequence[str],
    types: Mapping[str, str],
    *,
    key: str | None = None,
    update: Sequence[str] | None = None,
    extra: Mapping[str, str] | None = None,
    first: int = 1,
    ordered: bool = False,
    tail: str = "",
) -> str:
    """Many rows in one statement: `INSERT INTO table (columns) SELECT … FROM unnest($first,
    …)` with one array parameter per column (`unnest_args` builds them), and with `key`
    `ON CONFLICT (key) DO UPDATE SET` the `update` columns (default: all but the key).

    `types` gives each column's PostgreSQL type (absent: text). A `jsonb` column and an array
    column (`text[]`, `int[]`) travel as JSON text and are cast back: asyncpg would take a
    list value inside an array parameter for another dimension. `extra` columns take an SQL
    expression instead of a parameter (`now()`, a parameter after the arrays), on insert and
    on update; `ordered` inserts the rows in the order given (serial ids follow it); `tail`
    follows the statement (`RETURNING …`, a `WHERE` of the update)."""

    def param(i: int, c: str) -> str:
        t = types.get(c, "text")
        return f"${i}::{'text' if t == 'jsonb' or _is_array(t) else t}[]"

    def value(c: str) -> str:
        t = types.get(c, "text")
        if _is_array(t):
            return f"ARRAY(SELECT jsonb_array_elements_text(u.{c}::jsonb))::{t}"
        return f"u.{c}::jsonb" if t == "jsonb" else f"u.{c}"

    more = dict(extra or {})
    names = [*columns, *more]
    values = [*(value(c) for c in columns), *more.values()]
    params = ", ".join(param(i, c) for i, c in enumerate(columns, first))
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)} "
        f"FROM unnest({params}) "
        + (
            f"WITH ORDINALITY AS u({', '.join(columns)}, n) ORDER BY u.n"
            if ordered
            else f"AS u({', '.join(columns)})"
        )
    )
    if key is not None:
        changed = [*(update if update is not None else [c for c in columns if c != key]), *more]
        sql += f" ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(
            f"{c} = EXCLUDED.{c}" for c in changed
        )
    return f"{sql} {tail}".rstrip()


def unnest_args(
    columns: Sequence[str], types: Mapping[str, str], rows: Iterable[Sequence[Any]]
) -> list[list[Any]]:
    """The array parameters of `unnest_upsert` from rows given as tuples in column order."""
    out: list[list[Any]] = [[] for _ in columns]
    as_json = [types.get(c, "text") == "jsonb" or _is_array(types.get(c, "text")) for c in columns]
    for row in rows:
        for i, v in enumerate(row):
            out[i].append(orjson.dumps(v).decode() if as_json[i] and v is not None else v)
    return out


def unnest_attrs(
    columns: Sequence[str], types: Mapping[str, str], items: Iterable[object]
) -> list[list[Any]]:
    """`unnest_args` of objects whose attributes are named as the columns."""
    return unnest_args(columns, types, (tuple(getattr(i, c) for c in columns) for i in items))
