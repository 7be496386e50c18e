"""Intake on a new version of the city (live reload): one step swaps what reports are located,
classified and recorded with, for the handler table built at start-up too; without a versions
folder an announcement is refused and nothing changes."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import yaml
from gridloop_city import load_city
from gridloop_city.versions import digest, release
from gridloop_contracts.city import CityUpdatedV1
from gridloop_intake.context import Intake
from gridloop_intake.handlers import case_file_rules
from gridloop_intake.settings import IntakeSettings

DEMO_CITY = Path(__file__).resolve().parents[3] / "data" / "demo-city"
KEY = "demo-open311-key"


def renamed(tmp: Path) -> Path:
    """The demo city with sanitation renamed and the web portal's Open311 key replaced."""
    root = tmp / "v2"
    shutil.copytree(DEMO_CITY, root)
    depts = yaml.safe_load((root / "departments.yaml").read_text(encoding="utf-8"))
    for d in depts["departments"]:
        if d["code"] == "sanitation":
            d["name"] = "区环境卫生服务中心（新）"
    (root / "departments.yaml").write_text(yaml.safe_dump(depts, allow_unicode=True), "utf-8")
    text = (root / "sources.yaml").read_text(encoding="utf-8").replace(KEY, "key-2027")
    (root / "sources.yaml").write_text(text, encoding="utf-8")
    return root


def test_use_city_swaps_the_city_for_the_rules_the_table_already_holds(tmp_path: Path) -> None:
    intake = Intake.load(IntakeSettings(CITY_DATA_DIR=str(DEMO_CITY)))
    table = case_file_rules(intake.rules)  # built once at start-up, as bootstrap does
    assert intake.dept_name("sanitation") == "区环境卫生服务中心"
    assert intake.api_keys[KEY] == "web"

    new = load_city(renamed(tmp_path))
    intake.use_city(new)
    assert intake.city is new and intake.rules.city is new
    assert intake.dept_name("sanitation") == "区环境卫生服务中心（新）"
    assert KEY not in intake.api_keys and intake.api_keys["key-2027"] == "web"
    # the CASES table records with the same CaseRules object, now on the new city
    handler = next(iter(table.events.values()))
    assert getattr(handler, "__self__", None) is intake.rules


async def test_an_announcement_is_loaded_checked_and_applied_or_refused(tmp_path: Path) -> None:
    root = tmp_path / "versions"
    release(DEMO_CITY, root, "v1")
    settings = IntakeSettings(CITY_DATA_DIR=str(DEMO_CITY), CITY_VERSIONS_DIR=str(root))
    intake = Intake.load(settings)
    live = intake.live("v1")
    at = datetime(2026, 12, 2, 13, tzinfo=UTC)

    v2 = renamed(tmp_path)
    good = CityUpdatedV1(version="v2", digest=release(v2, root, "v2"), released_at=at)
    assert await live.apply(good) is True
    assert live.version == "v2" and intake.dept_name("sanitation").endswith("（新）")

    wrong = CityUpdatedV1(version="v1", digest=digest(root / "v2"), released_at=at)
    assert await live.apply(wrong) is False  # v1's files do not hash to v2's digest
    missing = CityUpdatedV1(version="v9", digest=digest(root / "v2"), released_at=at)
    assert await live.apply(missing) is False
    assert live.version == "v2" and intake.dept_name("sanitation").endswith("（新）")

    # a process without a versions folder refuses every announcement
    plain = Intake.load(IntakeSettings(CITY_DATA_DIR=str(DEMO_CITY)))
    assert await plain.live(None).apply(good) is False
    assert plain.dept_name("sanitation") == "区环境卫生服务中心"
