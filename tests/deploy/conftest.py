"""Fixtures of the deploy tests: the tools under test, loaded from tools/ (not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


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
