"""Entry point: `python -m gridloop_scoring` serves; `python -m gridloop_scoring rebuild
[--apply] [--validate]` replays the CASES stream into a fresh projection and prints the
comparison."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
from gridloop_runtime import bus, db
from gridloop_runtime.service import serve

from .bootstrap import MIGRATIONS, build
from .context import Scoring
from .replay import rebuild
from .settings import ScoringSettings


async def _rebuild(settings: ScoringSettings, apply: bool, validate: bool = False) -> int:
    scoring = Scoring.load(settings)
    schema = db.check_schema(settings.db_schema_name)
    pool = await db.create_pool(settings.database_url, schema, min_size=1, max_size=2)
    nc = await bus.connect(
        settings.nats_url,
        name="scoring-rebuild",
        user=settings.nats_user,
        password=settings.nats_password,
    )
    try:
        async with pool.acquire() as conn:
            migrations = db.runtime_migrations() + db.read_migrations("scoring", MIGRATIONS)
            await db.migrate(conn, schema, migrations)
        report = await rebuild(
            pool,
            nc.jetstream(),
            scoring.fold,
            apply=apply,
            batch=settings.replay_batch,
            validate=validate,
        )
    finally:
        await nc.close()
        await pool.close()
    sys.stdout.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if report.identical or report.applied else 1


def main(argv: list[str]) -> int:
    if not argv:
        serve(build)
        return 0
    parser = argparse.ArgumentParser(prog="python -m gridloop_scoring")
    sub = parser.add_subparsers(dest="command", required=True)
    rb = sub.add_parser("rebuild", help="replay CASES into a fresh projection and compare")
    rb.add_argument("--apply", action="store_true", help="replace the live projection")
    rb.add_argument(
        "--validate",
        action="store_true",
        help="check every event with its full contract model (slower)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(_rebuild(ScoringSettings(), args.apply, args.validate))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
