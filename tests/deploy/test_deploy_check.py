"""deploy/ renders, validates and matches what the services read (tools/deploy_check.py), and
the NATS config generator reads the city's data and notices when its output is stale."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not installed: cannot render deploy/"
)


@needs_kubectl
def test_deploy_check_passes() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "deploy_check.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deploy-check: OK" in proc.stdout


@needs_kubectl
def test_deploy_check_names_a_missing_variable(
    check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drop a setting every service reads from the manifests: the check names it."""
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    common = copy / "base" / "config" / "common.env"
    lines = common.read_text().splitlines()
    common.write_text("\n".join(ln for ln in lines if not ln.startswith("CONSUMER_BATCH=")))
    monkeypatch.setattr(check, "OVERLAYS_DIR", copy / "overlays")
    report = check.Report()
    assert check.check_overlay("dev", ["latest"], report) > 0
    missing = [p for p in report.problems if "CONSUMER_BATCH" in p]
    assert len(missing) == len(check.SERVICES), report.problems
    assert "ServiceSettings" in missing[0]


@needs_kubectl
def test_deploy_check_refuses_an_age_on_cases(
    check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production overlay ages the feeds; aging CASES too is what the services would
    refuse at start-up, so the check refuses it before anything is applied."""
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    overlay = copy / "overlays" / "production" / "kustomization.yaml"
    text = overlay.read_text()
    assert "STREAM_MAX_AGE_DAYS=INTAKE=30," in text
    overlay.write_text(text.replace("STREAM_MAX_AGE_DAYS=", "STREAM_MAX_AGE_DAYS=CASES=365,"))
    monkeypatch.setattr(check, "OVERLAYS_DIR", copy / "overlays")
    report = check.Report()
    check.check_overlay("production", ["latest"], report)
    assert any("STREAM_MAX_AGE_DAYS: CASES keeps every event" in p for p in report.problems), (
        report.problems
    )


@needs_kubectl
def test_deploy_check_refuses_an_inbox_kept_shorter_than_the_outbox(
    check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production overlay prunes the commands' answers and keeps the outbox for ever;
    pruning the inbox under it is what the services would refuse at start-up (a
    re-published event would take effect twice), so the check refuses it."""
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    overlay = copy / "overlays" / "production" / "kustomization.yaml"
    text = overlay.read_text()
    assert "- COMMANDS_RETENTION_DAYS=90\n" in text
    monkeypatch.setattr(check, "OVERLAYS_DIR", copy / "overlays")
    report = check.Report()
    check.check_overlay("production", ["latest"], report)
    assert not [p for p in report.problems if "RETENTION" in p], report.problems

    overlay.write_text(text.replace("- COMMANDS_RETENTION_DAYS=90", "- INBOX_RETENTION_DAYS=30"))
    report = check.Report()
    check.check_overlay("production", ["latest"], report)
    assert any("INBOX_RETENTION_DAYS needs OUTBOX_RETENTION_DAYS" in p for p in report.problems), (
        report.problems
    )

    overlay.write_text(text.replace("- COMMANDS_RETENTION_DAYS=90", "- COMMANDS_RETENTION_DAYS=a"))
    report = check.Report()
    check.check_overlay("production", ["latest"], report)
    assert any("COMMANDS_RETENTION_DAYS='a' is not a number" in p for p in report.problems), (
        report.problems
    )


@needs_kubectl
def test_deploy_check_rejects_an_unknown_field(
    check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    manifest = copy / "base" / "services" / "verify.yaml"
    manifest.write_text(manifest.read_text().replace("readinessProbe:", "readinessProbes:"))
    monkeypatch.setattr(check, "OVERLAYS_DIR", copy / "overlays")
    report = check.Report()
    check.check_overlay("production", ["latest"], report)
    assert any("'readinessProbes' was unexpected" in p for p in report.problems), report.problems
    assert any("verify: readinessProbe must GET /readyz" in p for p in report.problems)


def test_every_service_settings_variable_is_found(check: ModuleType) -> None:
    names = check.service_env_names("intake")
    for var in ("DATABASE_URL", "NATS_URL", "NATS_PASSWORD", "HTTP_PORT", "JWT_SECRET"):
        assert var in names


def write_city(root: Path, departments: str, sources: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "departments.yaml").write_text(departments, encoding="utf-8")
    (root / "sources.yaml").write_text(sources, encoding="utf-8")
    return root


def test_generator_reads_the_shapes_a_city_file_takes(gen: ModuleType, tmp_path: Path) -> None:
    listed = gen.read_city(
        write_city(
            tmp_path / "a",
            "departments:\n- code: roads\n  name: 道路\n- water\n",
            "sources:\n- code: '12345'\n  channel: hotline\n- code: cams\n  channels: [video]\n",
        )
    )
    mapped = gen.read_city(
        write_city(
            tmp_path / "b",
            "roads: {name: 道路}\nwater: 供水\n",
            "'12345': {channel: hotline}\ncams: {channels: [video]}\n",
        )
    )
    for city in (listed, mapped):
        assert [d.code for d in city.departments] == ["roads", "water"]
        assert {s.code: s.channels for s in city.sources} == {
            "12345": ("hotline",),
            "cams": ("video",),
        }
    # No channel named: every channel, still only under its own source code.
    open_city = gen.read_city(write_city(tmp_path / "c", "[]", "- code: app\n"))
    user = gen.integrator_user(open_city.sources[0])
    assert [s for s in user.publish if s.startswith("intake.")] == [
        f"intake.{ch}.app" for ch in gen.CHANNELS
    ]


def test_generator_refuses_bad_codes_and_warns_on_missing_files(
    gen: ModuleType, tmp_path: Path
) -> None:
    with pytest.raises(gen.CityDataError, match="letters, digits"):
        gen.read_city(write_city(tmp_path / "bad", "- code: roads.east\n", "[]"))
    with pytest.raises(gen.CityDataError, match="collide"):
        gen.read_city(write_city(tmp_path / "dup", "- code: ab\n- code: AB\n", "[]"))
    with pytest.raises(gen.CityDataError, match="channel"):
        gen.read_city(write_city(tmp_path / "ch", "[]", "- {code: x, channel: fax}\n"))
    empty = tmp_path / "empty"
    empty.mkdir()
    city = gen.read_city(empty)
    assert city.departments == [] and city.sources == [] and len(city.warnings) == 2


def test_adding_a_department_makes_the_generated_config_stale(
    gen: ModuleType, tmp_path: Path
) -> None:
    """The committed config is the demo city's; one more department is a data change that
    the check notices until the tool is run again."""
    assert gen.stale_files() == []
    city = tmp_path / "city"
    shutil.copytree(gen.DEFAULT_CITY, city)
    with (city / "departments.yaml").open("a", encoding="utf-8") as f:
        f.write("- code: bridges\n  name: 桥梁管理所\n")
    files = gen.generated_files(city)
    assert "dept-bridges" in files[gen.AUTH_CONF]
    assert '"dispatch.bridges.>"' in files[gen.AUTH_CONF]
    assert "NATS_PW_DEPT_BRIDGES=" in files[gen.DEV_PASSWORDS]
    assert set(gen.stale_files(city)) == {gen.AUTH_CONF, gen.DEV_PASSWORDS, gen.LOCAL_CONF}


def test_secret_template_holds_every_key(gen: ModuleType) -> None:
    import yaml

    city = gen.read_city(gen.DEFAULT_CITY)
    secret = yaml.safe_load(gen.new_secret(city, "gridloop"))
    assert secret["metadata"]["name"] == gen.SECRET_NAME
    assert sorted(secret["stringData"]) == sorted(gen.secret_keys(city))
    assert "NATS_ROUTE_PASSWORD" in secret["stringData"]


def _cluster(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (cluster,) = [d for d in docs if d["kind"] == "Cluster"]
    return cluster


@pytest.fixture(scope="module")
def production(check: ModuleType) -> list[dict[str, Any]]:
    """The production overlay, rendered once."""
    return list(check.render("production"))


@needs_kubectl
def test_deploy_check_finds_the_production_database_backed_up(
    check: ModuleType, production: list[dict[str, Any]]
) -> None:
    report = check.Report()
    external: dict[str, set[str]] = {}
    check.check_backups("production", production, report, external)
    assert report.problems == []
    assert external == {"gridloop-pg-backup-s3": {"ACCESS_KEY_ID", "ACCESS_SECRET_KEY"}}


def _no_archiver(docs: list[dict[str, Any]]) -> None:
    _cluster(docs)["spec"]["plugins"][0]["isWALArchiver"] = False


def _other_store(docs: list[dict[str, Any]]) -> None:
    _cluster(docs)["spec"]["plugins"][0]["parameters"]["barmanObjectName"] = "gridloop-pg-bakup"


def _spec(kind: str, **changes: Any) -> Callable[[list[dict[str, Any]]], None]:
    def edit(docs: list[dict[str, Any]]) -> None:
        (doc,) = [d for d in docs if d["kind"] == kind]
        doc["spec"].update(changes)

    return edit


@needs_kubectl
@pytest.mark.parametrize(
    ("edit", "refused"),
    [
        (
            _no_archiver,
            "Cluster gridloop-pg archives no WAL through barman-cloud.cloudnative-pg.io",
        ),
        (_other_store, "archives to ObjectStore 'gridloop-pg-bakup', not rendered"),
        (
            _spec("ObjectStore", retentionPolicy="30"),
            "retentionPolicy '30' is not a recovery window",
        ),
        (_spec("ObjectStore", retentionPolicy=None), "has no retentionPolicy"),
        # a restore takes the reports since its point again from INTAKE, kept 30 days
        (_spec("ObjectStore", retentionPolicy="6w"), "INTAKE keeps reports 30 days"),
        (_spec("ScheduledBackup", schedule="0 18 * * *"), "needs six fields, seconds first"),
        (_spec("ScheduledBackup", method="barmanObjectStore"), "method must be plugin"),
        (
            _spec("ScheduledBackup", cluster={"name": "gridloop-pg-old"}),
            "Cluster gridloop-pg has no ScheduledBackup",
        ),
    ],
)
def test_deploy_check_refuses_a_database_without_backups(
    check: ModuleType,
    production: list[dict[str, Any]],
    edit: Callable[[list[dict[str, Any]]], None],
    refused: str,
) -> None:
    """The production database archives its WAL and takes a base backup a night into an
    object store with a recovery window; a manifest that loses any of it is refused before
    it is applied (a Cluster applied without archiving runs, and nothing says so until the
    day a restore is needed)."""
    docs = deepcopy(production)
    edit(docs)
    report = check.Report()
    check.check_backups("production", docs, report, {})
    assert [p for p in report.problems if "production/backups" in p and refused in p], (
        report.problems
    )


@needs_kubectl
def test_the_restore_patch_makes_the_database_anew_from_its_archive(
    check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """postgres-restore.yaml, listed under the production overlay's patches, turns the
    Cluster into one bootstrapped from the object store the overlay backs up to, and it goes
    on being backed up, under a name of its own; archiving into the archive it restores from
    is refused."""
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    overlay = copy / "overlays" / "production"
    kustomization = overlay / "kustomization.yaml"
    text = kustomization.read_text()
    assert "postgres-restore.yaml" not in text
    kustomization.write_text(
        text.replace("patches:\n", "patches:\n  - path: postgres-restore.yaml\n", 1)
    )
    monkeypatch.setattr(check, "OVERLAYS_DIR", copy / "overlays")
    docs = check.render("production")
    (cluster,) = [d for d in docs if d["kind"] == "Cluster"]
    assert list(cluster["spec"]["bootstrap"]) == ["recovery"]
    (source,) = cluster["spec"]["externalClusters"]
    assert cluster["spec"]["bootstrap"]["recovery"]["source"] == source["name"]
    (store,) = [d for d in docs if d["kind"] == "ObjectStore"]
    assert source["plugin"]["parameters"] == {
        "barmanObjectName": store["metadata"]["name"],
        "serverName": cluster["metadata"]["name"],
    }
    report = check.Report()
    check.check_backups("production", docs, report, {})
    assert report.problems == []

    cluster["spec"]["plugins"][0]["parameters"]["serverName"] = "gridloop-pg"
    check.check_backups("production", docs, report, {})
    assert [p for p in report.problems if "archive it is restored from" in p], report.problems
