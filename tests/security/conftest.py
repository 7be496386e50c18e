"""Security fixtures: the five services as real processes on a real NATS and PostgreSQL, and
signed tokens for the city's people (and for nobody: expired, forged)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gridloop_city import City, load_city
from gridloop_devkit.devstack import LocalPostgres
from gridloop_devkit.launcher import SERVICES, Stack
from gridloop_devkit.testing import process_stack
from gridloop_runtime.auth import AuthSettings, issue_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def city() -> City:
    return load_city(ROOT / "data" / "demo-city")


@pytest.fixture(scope="module")
def stack(
    pg_server: LocalPostgres, work_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """All five services as separate processes (and the console, where the module's
    STACK_SERVICES names it), authenticating bearer tokens (and, for convenience, `X-User`
    of the city's users)."""
    name = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "s")
    env = getattr(request.module, "STACK_ENV", {})
    services = getattr(request.module, "STACK_SERVICES", tuple(SERVICES))  # e.g. + "console"
    with process_stack(
        work_dir / name, pg_server.create_database(name), env=env, services=services
    ) as s:
        yield s


class Tokens:
    """Bearer headers for the city's users, and for callers who are nobody."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.auth = AuthSettings()

    def of(self, user_id: str) -> dict[str, str]:
        u = self.city.users[user_id]
        token = issue_token(
            self.auth, user_id=u.id, roles=u.roles, dept=u.dept, territory=u.territory
        )
        return {"Authorization": f"Bearer {token}"}

    def expired(self, user_id: str) -> dict[str, str]:
        u = self.city.users[user_id]
        token = issue_token(self.auth, user_id=u.id, roles=u.roles, dept=u.dept, ttl_s=-60)
        return {"Authorization": f"Bearer {token}"}

    def forged(self, user_id: str) -> dict[str, str]:
        """A well-formed token signed with a key the services do not trust, claiming admin."""
        forger = AuthSettings(JWT_SECRET="not-the-city-secret-at-all-0123456789abcdef")
        token = issue_token(forger, user_id=user_id, roles=["admin"])
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tokens(city: City) -> Tokens:
    return Tokens(city)
