"""Versions of a city's data for live reload: a versions folder holds one sub-folder per
released version and a `CURRENT` file naming the one in force.

    CITY_VERSIONS_DIR/
      CURRENT                 # "2026-12-02.1"
      2026-12-02.1/           # a complete city folder (what load_city reads)
      2026-11-20.1/

`gridloop-city release DIR --versions ROOT --version V` validates a city folder, copies it in
and makes it current; the `gridloop.city.updated.v1` event (version + digest) tells the
running services, which load it with `load_version` and swap to it, or refuse it and keep
theirs. A process that starts later reads `CURRENT`, so no restart goes back to an old version.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path

from .loader import City, CityDataError, load_city

CURRENT = "CURRENT"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def digest(folder: Path) -> str:
    """`sha256:<hex>` over a city folder's files (names and bytes, sorted by name): what the
    announcement carries, so a service loads exactly the released data."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        h.update(path.name.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + h.hexdigest()


def _check_version(version: str) -> None:
    if not _VERSION.match(version):
        raise CityDataError(f"version {version!r}: letters, digits, '.', '_', '-' (≤ 64)")


def release(source: Path, root: Path, version: str) -> str:
    """Validate `source` (load_city), copy it to `root/version` (never over an existing one)
    and make it current; returns its digest."""
    _check_version(version)
    load_city(source)
    target = root / version
    if target.exists():
        raise CityDataError(f"version {version} exists already in {root}")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    tmp.rename(target)  # whole or not at all
    set_current(root, version)
    return digest(target)


def set_current(root: Path, version: str) -> None:
    _check_version(version)
    tmp = root / f".{CURRENT}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    tmp.replace(root / CURRENT)


def current(root: Path) -> str | None:
    """The version in force, or None when nothing was released yet."""
    path = root / CURRENT
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8").strip() or None


def load_version(
    root: Path, version: str, expected_digest: str | None = None, *, parts: bool = True
) -> City:
    """Load and validate a released version (`parts=False`: without the parts register);
    `CityDataError` when it is missing, not the announced data (digest) or invalid."""
    _check_version(version)
    folder = root / version
    if not folder.is_dir():
        raise CityDataError(f"version {version}: no folder {folder}")
    if expected_digest is not None and digest(folder) != expected_digest:
        raise CityDataError(f"version {version}: its files do not match the announced digest")
    return load_city(folder, parts=parts)


@cache
def _load_cached(path: Path, parts: bool) -> City:
    # Once per process and folder: tests start services many times over the same data.
    return load_city(path, parts=parts)


def starting_city(
    data_dir: Path | str, versions_dir: str = "", *, parts: bool = True
) -> tuple[City, str | None]:
    """The city a service process starts on: the released version in force when
    `versions_dir` (CITY_VERSIONS_DIR) names a versions folder with a CURRENT one, else the
    folder `data_dir` (CITY_DATA_DIR); and that version (None: `data_dir`'s). `parts=False`:
    without the parts register, for a service that never looks a part up."""
    if versions_dir:
        root = Path(versions_dir)
        version = current(root)
        if version is not None:
            return load_version(root, version, parts=parts), version
    return _load_cached(Path(data_dir).resolve(), parts), None


def loader(versions_dir: str, *, parts: bool = True) -> Callable[[str, str], City] | None:
    """(version, digest) → the validated city, for `gridloop_runtime.livecity.LiveCity`;
    None without a versions folder (announcements are then refused)."""
    return partial(load_version, Path(versions_dir), parts=parts) if versions_dir else None
