"""Fixtures of the integrator tests: the Node kits installed from their lock files, and the
five services as processes on a NATS with the users and permissions generated from the demo
city (as `make run` and deploy/ run it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gridloop_devkit.devstack import LocalPostgres
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import process_stack

ROOT = Path(__file__).resolve().parents[2]
# Each kit: a directory with package.json, package-lock.json and the script.
NODE_KITS = {
    "department": ROOT / "services" / "handling" / "examples" / "node",
    "integrator": ROOT / "services" / "intake" / "examples" / "node",
}
NODE_MAJOR = 20  # what the kits' `engines` ask (the CloudEvents SDK's lowest)


def installed(kit: Path) -> bool:
    """node_modules holds every package of the lock file at its version (npm's own record of
    what it installed, node_modules/.package-lock.json): nothing to fetch."""
    record = kit / "node_modules" / ".package-lock.json"
    if not record.is_file():
        return False
    want = json.loads((kit / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    have = json.loads(record.read_text(encoding="utf-8"))["packages"]
    return all(
        have.get(path, {}).get("version") == spec.get("version")
        for path, spec in want.items()
        if path  # "" is the kit itself
    )


def _absent(reason: str) -> None:
    # CI has Node (the machine ships it): there a missing one is a failure, not a skip.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_kits() -> dict[str, Path]:
    """The Node kits, their packages installed with `npm ci` from the committed lock files
    (skipped when node_modules already holds exactly those, so a machine offline can run
    them again)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _absent("the Node kits need `node` and `npm` (Node.js 20 or later) on PATH")
    assert node is not None and npm is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    major = re.match(r"v(\d+)", version)
    if major is None or int(major.group(1)) < NODE_MAJOR:
        _absent(f"the Node kits need Node.js {NODE_MAJOR} or later, found {version.strip()!r}")
    for kit in NODE_KITS.values():
        if installed(kit):
            continue
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=kit,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"npm ci in {kit}:\n{proc.stdout}\n{proc.stderr}"
        assert installed(kit), f"npm ci in {kit} left node_modules unlike the lock file"
    return NODE_KITS


@pytest.fixture(scope="module")
def stack(
    pg_server: LocalPostgres, work_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """The five services as processes on a NATS with the generated users and permissions."""
    name = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "i")
    with process_stack(
        work_dir / name,
        pg_server.create_database(name),
        env={"LOG_LEVEL": "INFO"},
        nats_auth=True,
    ) as s:
        yield s
