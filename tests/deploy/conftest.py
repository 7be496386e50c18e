"""Fixtures of the deploy tests: the tools under test, loaded from tools/ (not a package)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"


def load_tool(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))  # deploy_check imports gen_nats_config by name
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    """tools/gen_nats_config.py"""
    return load_tool("gen_nats_config")


@pytest.fixture(scope="session")
def check() -> ModuleType:
    """tools/deploy_check.py"""
    return load_tool("deploy_check")


def defined_metrics() -> set[str]:
    """Every series name the code's metrics export: the modules of the libraries and services
    that use prometheus_client are imported, then the default registry is read."""
    for src in [*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src")]:
        for path in src.rglob("*.py"):
            if "prometheus_client" in path.read_text(encoding="utf-8"):
                importlib.import_module(".".join(path.relative_to(src).with_suffix("").parts))
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


@pytest.fixture(scope="session")
def metrics() -> set[str]:
    """The gridloop_ series the code defines (`defined_metrics`)."""
    return {n for n in defined_metrics() if n.startswith("gridloop_")}
