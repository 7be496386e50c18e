"""make deploy-check: render every overlay of deploy/ and check it is what the services need.

    python tools/deploy_check.py [--overlay NAME ...] [--kubernetes-version X.Y ...]

For each overlay under deploy/overlays (rendered with `kubectl kustomize`):

1. every resource validates against the Kubernetes OpenAPI schemas (kubernetes-validate,
   strict: unknown fields are errors), except the custom resources listed in CRD_KINDS;
2. every environment variable a service reads — the pydantic-settings aliases of its
   Settings class (`gridloop_<service>.settings`) and of the shared AuthSettings — is set
   in its Deployment (a ConfigMap via envFrom, or an env entry such as a Secret ref);
3. each service's Deployment runs `python -m gridloop_<service>` with the port, probes,
   NATS user, resources, security context and scrape annotations that go with it, and has
   its Service, PodDisruptionBudget, NetworkPolicy (and HorizontalPodAutoscaler);
4. Secrets and ConfigMaps that the overlay renders hold every key referenced;
5. the NATS config the overlay ships parses (`nats-server -t`), its auth.conf is the
   generated one, STREAM_REPLICAS fits the NATS cluster, and STREAM_MAX_AGE_DAYS is one
   the services take;
6. the retention of the runtime's rows (`*_RETENTION_DAYS`) is one the services take;
7. every PostgreSQL the overlay runs as a CloudNativePG Cluster archives its WAL and is
   backed up on a schedule, to an object store the overlay renders, within a recovery window.

Also: the files tools/gen_nats_config.py generates are not stale.

Exit status: 0 when all is well, 1 with one line per problem, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_nats_config
from gridloop_runtime.retention import Retention, stream_ages

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS_DIR = ROOT / "deploy" / "overlays"
SERVICES = ("intake", "dispatch", "handling", "verify", "scoring")
KUBERNETES_VERSIONS = ("1.29", "latest")

# Custom resources: their CRDs are not in the Kubernetes schemas, so they are not validated.
CRD_KINDS: dict[tuple[str, str], str] = {
    ("postgresql.cnpg.io/v1", "Cluster"): "CloudNativePG",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "CloudNativePG",
    ("barmancloud.cnpg.io/v1", "ObjectStore"): "CloudNativePG's Barman Cloud plugin",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "Prometheus Operator",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "Prometheus Operator",
    ("monitoring.coreos.com/v1", "PodMonitor"): "Prometheus Operator",
}

# Settings read by every service besides its own Settings class.
SHARED_SETTINGS = ("gridloop_runtime.auth:AuthSettings",)

# Variables a service reads that a cluster deliberately leaves unset, and why.
ALLOWED_UNSET: dict[str, str] = {
    "CLOCK_FILE": "a movable test clock; never in a cluster",
}

# Overlays that run one replica of each service, without autoscaling.
WITHOUT_AUTOSCALING = {"dev"}

MAX_MEMORY_LIMIT_MI = 512


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}")


# -- rendering -------------------------------------------------------------------------------


def kubectl() -> str | None:
    return shutil.which("kubectl")


def overlays() -> list[str]:
    return sorted(p.name for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").is_file())


def render(overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/overlays/<overlay>` as a list of resources."""
    binary = kubectl()
    if binary is None:
        raise RuntimeError("kubectl not found")
    proc = subprocess.run(
        [binary, "kustomize", str(OVERLAYS_DIR / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize failed:\n{proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


# -- 1. schemas --------------------------------------------------------------------------------


def validate_schemas(
    overlay: str, docs: list[dict[str, Any]], versions: Iterable[str], report: Report
) -> None:
    try:
        from kubernetes_validate import utils as kv
    except ImportError:
        report.problem(
            overlay, "kubernetes-validate is not installed (it is a dev dependency: uv sync)"
        )
        return
    for version in versions:
        v = kv.latest_version() if version == "latest" else version
        for doc in docs:
            ident = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            crd = CRD_KINDS.get((doc.get("apiVersion", ""), doc.get("kind", "")))
            if crd is not None:
                continue
            try:
                kv.validate(doc, v, strict=True)
            except kv.SchemaNotFoundError:
                report.problem(
                    overlay,
                    f"{ident}: no Kubernetes {v} schema for {doc.get('apiVersion')} "
                    f"{doc.get('kind')} (a custom resource? list it in CRD_KINDS)",
                )
            except kv.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                report.problem(overlay, f"{ident} (Kubernetes {v}): {path}: {exc.message}")


# -- 2. environment variables -----------------------------------------------------------------


def _settings_classes(module_name: str) -> list[type[Any]]:
    from pydantic_settings import BaseSettings

    module = importlib.import_module(module_name)
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseSettings)
        and obj.__module__ == module.__name__
    ]


def _env_names(cls: type[Any]) -> dict[str, str]:
    """The environment variables a pydantic-settings class reads (aliases, else prefix+name),
    each with the class that declares it."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        owner = next((k for k in cls.__mro__ if name in inspect.get_annotations(k)), cls)
        where = f"{owner.__module__}.{owner.__qualname__}"
        alias = info.validation_alias or info.alias
        if isinstance(alias, str):
            names[alias.upper()] = where
        elif alias is not None and hasattr(alias, "choices"):
            names.update({str(c).upper(): where for c in alias.choices if isinstance(c, str)})
        else:
            names[f"{prefix}{name}".upper()] = where
    return names


def service_env_names(service: str) -> dict[str, str]:
    """Variable -> the settings class that reads it, for one service."""
    out: dict[str, str] = {}
    classes = _settings_classes(f"gridloop_{service}.settings")
    if not classes:
        raise RuntimeError(f"gridloop_{service}.settings defines no BaseSettings subclass")
    for spec in SHARED_SETTINGS:
        module_name, _, cls_name = spec.partition(":")
        try:
            classes.append(getattr(importlib.import_module(module_name), cls_name))
        except (ImportError, AttributeError):
            continue
    for cls in classes:
        for env, where in _env_names(cls).items():
            out.setdefault(env, where)
    return out


@dataclass
class ContainerEnv:
    names: set[str]
    values: dict[str, str]
    secret_refs: list[tuple[str, str | None, str]]  # (secret, key or None for envFrom, var)
    configmap_refs: list[tuple[str, str | None, str]]


def container_env(container: Mapping[str, Any], docs: list[dict[str, Any]]) -> ContainerEnv:
    configmaps = by_kind(docs, "ConfigMap")
    secrets = by_kind(docs, "Secret")
    env = ContainerEnv(set(), {}, [], [])
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            env.configmap_refs.append((name, None, "envFrom"))
            for key, value in (configmaps.get(name, {}).get("data") or {}).items():
                env.names.add(prefix + key)
                env.values[prefix + key] = str(value)
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            env.secret_refs.append((name, None, "envFrom"))
            for key in secrets.get(name, {}).get("data") or {}:
                env.names.add(prefix + key)
    for entry in container.get("env") or []:
        env.names.add(entry["name"])
        if "value" in entry:
            env.values[entry["name"]] = str(entry["value"])
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            env.secret_refs.append((ref["name"], ref["key"], entry["name"]))
        ref = (entry.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            env.configmap_refs.append((ref["name"], ref["key"], entry["name"]))
    return env


def check_refs(
    where: str,
    env: ContainerEnv,
    docs: list[dict[str, Any]],
    report: Report,
    external: dict[str, set[str]],
) -> None:
    """A ConfigMap referenced must be rendered; a Secret rendered must hold the key (Secrets
    not rendered are the operator's to create: listed in the summary)."""
    configmaps = by_kind(docs, "ConfigMap")
    secrets = by_kind(docs, "Secret")
    for name, key, var in env.configmap_refs:
        if name not in configmaps:
            report.problem(where, f"{var} refers to ConfigMap {name}, which is not rendered")
        elif key is not None and key not in (configmaps[name].get("data") or {}):
            report.problem(where, f"{var}: ConfigMap {name} has no key {key}")
    for name, key, var in env.secret_refs:
        if name not in secrets:
            external.setdefault(name, set()).update([key] if key else [])
        elif key is not None and key not in (secrets[name].get("data") or {}):
            report.problem(where, f"{var}: Secret {name} has no key {key}")


# -- 3. the shape of each service ---------------------------------------------------------------


def _unhashed(name: str) -> str:
    """The name before kustomize's generator suffix (`-` and ten characters)."""
    return re.sub(r"-[a-z0-9]{10}$", "", name)


def _probe_path(container: Mapping[str, Any], probe: str) -> str | None:
    http = (container.get(probe) or {}).get("httpGet") or {}
    path = http.get("path")
    return str(path) if path is not None else None


def _memory_mi(quantity: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?", quantity)
    if not m:
        return float("inf")
    factor = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20}
    return float(m.group(1)) * factor.get(m.group(2) or "", 1 / 2**20)


def check_service(
    overlay: str,
    service: str,
    docs: list[dict[str, Any]],
    report: Report,
    external: dict[str, set[str]],
) -> None:
    where = f"{overlay}/{service}"
    deployments = by_kind(docs, "Deployment")
    dep = deployments.get(service)
    if dep is None:
        report.problem(where, f"no Deployment named {service}")
        return
    pod = dep["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod.get("containers") or []}
    container = containers.get(service)
    if container is None:
        report.problem(where, f"Deployment {service} has no container named {service}")
        return

    want_cmd = ["python", "-m", f"gridloop_{service}"]
    got_cmd = list(container.get("command") or []) + list(container.get("args") or [])
    if got_cmd != want_cmd:
        report.problem(where, f"runs {got_cmd}, expected {want_cmd} (as `make run` does)")

    # environment
    env = container_env(container, docs)
    try:
        wanted = service_env_names(service)
    except Exception as exc:  # an import error in a service is reported, not raised
        report.problem(where, f"cannot read its settings: {exc!r}")
        wanted = {}
    for var, owner in sorted(wanted.items()):
        if var in env.names or var in ALLOWED_UNSET:
            continue
        report.problem(
            where,
            f"{var} (read by {owner}) is not set: add it to deploy/base/config/common.env "
            f"or deploy/base/config/{service}.env, or to the Deployment's env",
        )
    check_refs(where, env, docs, report, external)

    # the values that must agree with the rest of the manifest
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    http_port = ports.get("http")
    if http_port is None:
        report.problem(where, "no container port named http")
    elif env.values.get("HTTP_PORT") != str(http_port):
        report.problem(
            where, f"HTTP_PORT={env.values.get('HTTP_PORT')} but the http port is {http_port}"
        )
    if env.values.get("SERVICE_NAME") != service:
        report.problem(where, f"SERVICE_NAME={env.values.get('SERVICE_NAME')}, not {service}")
    if env.values.get("HTTP_HOST") not in ("0.0.0.0", "::"):
        report.problem(where, "HTTP_HOST must be 0.0.0.0: probes come from outside the pod")
    if env.values.get("NATS_USER") != service:
        report.problem(where, f"NATS_USER={env.values.get('NATS_USER')}, not {service}")
    pw_key = gen_nats_config.service_user(service).password_var
    nats_pw = [(_unhashed(s), k) for s, k, var in env.secret_refs if var == "NATS_PASSWORD"]
    if nats_pw != [(gen_nats_config.SECRET_NAME, pw_key)]:
        report.problem(
            where,
            f"NATS_PASSWORD must come from Secret {gen_nats_config.SECRET_NAME} key {pw_key}",
        )

    # probes
    if _probe_path(container, "readinessProbe") != "/readyz":
        report.problem(where, "readinessProbe must GET /readyz")
    if _probe_path(container, "livenessProbe") != "/healthz":
        report.problem(where, "livenessProbe must GET /healthz")

    # resources
    limits = (container.get("resources") or {}).get("limits") or {}
    requests = (container.get("resources") or {}).get("requests") or {}
    if "memory" not in limits or "memory" not in requests or "cpu" not in requests:
        report.problem(where, "needs cpu/memory requests and a memory limit")
    elif _memory_mi(str(limits["memory"])) > MAX_MEMORY_LIMIT_MI:
        report.problem(where, f"memory limit {limits['memory']} > {MAX_MEMORY_LIMIT_MI}Mi")

    # security
    psc = pod.get("securityContext") or {}
    csc = container.get("securityContext") or {}
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        report.problem(where, "must set runAsNonRoot")
    if csc.get("readOnlyRootFilesystem") is not True:
        report.problem(where, "must set readOnlyRootFilesystem: true")
    if csc.get("allowPrivilegeEscalation") is not False:
        report.problem(where, "must set allowPrivilegeEscalation: false")
    if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
        report.problem(where, "must drop ALL capabilities")

    # metrics
    ann = dep["spec"]["template"].get("metadata", {}).get("annotations") or {}
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(http_port):
        report.problem(where, "needs prometheus.io/scrape and prometheus.io/port annotations")

    # companions
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        if service not in by_kind(docs, kind):
            report.problem(where, f"no {kind} named {service}")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    if overlay not in WITHOUT_AUTOSCALING:
        hpa = hpas.get(service)
        if hpa is None:
            report.problem(where, f"no HorizontalPodAutoscaler named {service}")
        elif int(hpa["spec"].get("minReplicas", 1)) < 2:
            report.problem(where, "HorizontalPodAutoscaler minReplicas < 2")


# -- 5. NATS ------------------------------------------------------------------------------------


def _nats_binary() -> str | None:
    candidate = Path(sys.executable).parent / "nats-server"
    return str(candidate) if candidate.exists() else shutil.which("nats-server")


def _config_variables(texts: Iterable[str]) -> set[str]:
    """The `$NAME` variable references of NATS config files (not in comments or quotes)."""
    found: set[str] = set()
    for text in texts:
        for line in text.splitlines():
            line = re.sub(r'"[^"]*"', '""', line)
            line = re.split(r"#|//", line, maxsplit=1)[0]
            found.update(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", line))
    return found


def common_config(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The settings every service reads: the rendered gridloop-common ConfigMap's data."""
    common = [
        cm
        for cm in by_kind(docs, "ConfigMap").values()
        if cm["metadata"]["name"].startswith("gridloop-common")
    ]
    return (common[0].get("data") or {}) if common else {}


def check_retention(overlay: str, docs: list[dict[str, Any]], report: Report) -> None:
    """The retention every service reads from the common ConfigMap, as the services judge it
    at start-up (they refuse to start on an inbox kept shorter than the outbox): refused here
    before anything is applied."""
    where = f"{overlay}/retention"
    config = common_config(docs)
    days: dict[str, float] = {}
    for kept in fields(Retention):
        # timers_days is TIMERS_RETENTION_DAYS (gridloop_runtime.settings)
        attr, name = kept.name, f"{kept.name.removesuffix('_days').upper()}_RETENTION_DAYS"
        if name not in config:
            continue
        try:
            value = float(config[name])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            report.problem(where, f"{name}={config[name]!r} is not a number of days (0: for ever)")
            return
        days[attr] = value
    if problem := Retention(**days).problem():
        report.problem(where, problem)


# CloudNativePG's plugin that archives WAL and takes base backups to an object store.
BACKUP_PLUGIN = "barman-cloud.cloudnative-pg.io"
# The plugin's retention: a recovery window of a number of days, weeks or months.
RECOVERY_WINDOW = re.compile(r"[1-9][0-9]*[dwm]")


def check_backups(
    overlay: str, docs: list[dict[str, Any]], report: Report, external: dict[str, set[str]]
) -> None:
    """Each CloudNativePG Cluster archives its WAL through the Barman Cloud plugin to an
    ObjectStore the overlay renders, which keeps a recovery window, never into the archive it
    is restored from, and a ScheduledBackup takes its base backups through the same plugin."""
    where = f"{overlay}/backups"
    stores = by_kind(docs, "ObjectStore")
    for name, cluster in by_kind(docs, "Cluster").items():
        archivers = [p for p in cluster["spec"].get("plugins") or [] if p.get("isWALArchiver")]
        if [p.get("name") for p in archivers] != [BACKUP_PLUGIN]:
            report.problem(
                where,
                f"Cluster {name} archives no WAL through {BACKUP_PLUGIN}: without it nothing "
                "can be restored (a plugins entry with isWALArchiver: true and barmanObjectName)",
            )
            continue
        parameters = archivers[0].get("parameters") or {}
        store_name = parameters.get("barmanObjectName")
        archive = (store_name, parameters.get("serverName", name))
        sources = {
            (p.get("barmanObjectName"), p.get("serverName", source["name"]))
            for source in cluster["spec"].get("externalClusters") or []
            if (p := (source.get("plugin") or {}).get("parameters"))
        }
        if archive in sources:
            report.problem(
                where,
                f"Cluster {name} would archive into the archive it is restored from "
                f"({archive[1]} in {store_name}): give its plugins entry a serverName of its own",
            )
        store = stores.get(str(store_name))
        if store is None:
            report.problem(
                where, f"Cluster {name} archives to ObjectStore {store_name!r}, not rendered"
            )
        else:
            _check_store(where, store, docs, report, external)
        _check_schedules(where, name, docs, report)


def _check_store(
    where: str,
    store: dict[str, Any],
    docs: list[dict[str, Any]],
    report: Report,
    external: dict[str, set[str]],
) -> None:
    """A recovery window, and credentials in a Secret the operator provides (listed) or one
    the overlay renders with the keys."""
    name = store["metadata"]["name"]
    window = store["spec"].get("retentionPolicy")
    if window is None:
        report.problem(
            where,
            f"ObjectStore {name} has no retentionPolicy: its backups are kept for ever and "
            "the store grows without end (a recovery window: 30d)",
        )
    elif not RECOVERY_WINDOW.fullmatch(str(window)):
        report.problem(
            where,
            f"ObjectStore {name}: retentionPolicy {window!r} is not a recovery window (days, "
            "weeks or months: 30d)",
        )
    else:
        _check_stream_ages(where, name, str(window), docs, report)
    secrets = by_kind(docs, "Secret")
    for ref in (store["spec"]["configuration"].get("s3Credentials") or {}).values():
        secret, key = ref["name"], ref["key"]
        if secret not in secrets:
            external.setdefault(secret, set()).add(key)
        elif key not in (secrets[secret].get("data") or {}):
            report.problem(where, f"ObjectStore {name}: Secret {secret} has no key {key}")


# The days in one unit of a recovery window (CloudNativePG: d, w, m).
WINDOW_DAYS = {"d": 1, "w": 7, "m": 31}


def _check_stream_ages(
    where: str, store: str, window: str, docs: list[dict[str, Any]], report: Report
) -> None:
    """A restore takes the reports and department commands since its point again from
    `INTAKE` and `HANDLING` (those over REST too: `intake.taken.<source>`,
    `handling._taken.<dept>`): the streams keep them at least the window."""
    days = int(window[:-1]) * WINDOW_DAYS[window[-1]]
    try:
        ages = stream_ages(common_config(docs).get("STREAM_MAX_AGE_DAYS", ""))
    except ValueError:
        return  # refused by the NATS check, naming the setting
    for stream, what in (("INTAKE", "reports"), ("HANDLING", "department commands")):
        kept = ages.get(stream, 0)
        if kept and kept < days:
            report.problem(
                where,
                f"{stream} keeps {what} {kept:g} days (STREAM_MAX_AGE_DAYS), ObjectStore "
                f"{store} restores up to {days} days back: a restore to a point older than "
                f"{kept:g} days could not take the {what} since again",
            )


def _check_schedules(where: str, cluster: str, docs: list[dict[str, Any]], report: Report) -> None:
    """Base backups of `cluster` on a CloudNativePG schedule, through the plugin."""
    scheduled = [
        s
        for s in by_kind(docs, "ScheduledBackup").values()
        if s["spec"]["cluster"]["name"] == cluster
    ]
    if not scheduled:
        report.problem(where, f"Cluster {cluster} has no ScheduledBackup: no base backups")
    for backup in scheduled:
        ident = f"ScheduledBackup {backup['metadata']['name']}"
        spec = backup["spec"]
        plugin = (spec.get("pluginConfiguration") or {}).get("name")
        if spec.get("method") != "plugin" or plugin != BACKUP_PLUGIN:
            report.problem(where, f"{ident}: method must be plugin, through {BACKUP_PLUGIN}")
        if len(str(spec.get("schedule", "")).split()) != 6:
            report.problem(
                where,
                f"{ident}: schedule {spec.get('schedule')!r} needs six fields, seconds first "
                "(CloudNativePG's cron)",
            )


def check_nats(overlay: str, docs: list[dict[str, Any]], report: Report) -> None:
    where = f"{overlay}/nats"
    sts = by_kind(docs, "StatefulSet").get("nats")
    if sts is None:
        report.problem(where, "no StatefulSet named nats")
        return
    configs = [
        cm
        for cm in by_kind(docs, "ConfigMap").values()
        if cm["metadata"]["name"].startswith("nats-config")
    ]
    if len(configs) != 1:
        report.problem(where, f"expected one nats-config ConfigMap, found {len(configs)}")
        return
    data: dict[str, str] = configs[0].get("data") or {}
    for key in ("nats.conf", "auth.conf"):
        if key not in data:
            report.problem(where, f"ConfigMap nats-config has no {key}")
            return
    if data["auth.conf"] != gen_nats_config.AUTH_CONF.read_text(encoding="utf-8"):
        report.problem(where, "auth.conf in the rendered ConfigMap differs from the generated one")

    # STREAM_REPLICAS must fit the cluster, and production wants 3.
    replicas = int(sts["spec"].get("replicas", 1))
    common = common_config(docs)
    stream_replicas = int(common.get("STREAM_REPLICAS", "1"))
    if stream_replicas > replicas:
        report.problem(where, f"STREAM_REPLICAS={stream_replicas} > {replicas} NATS servers")
    if replicas >= 3 and stream_replicas < 3:
        report.problem(where, f"a {replicas}-node cluster with STREAM_REPLICAS={stream_replicas}")
    # the streams' ages as the services will read them at start-up (they refuse a bad one)
    ages = common.get("STREAM_MAX_AGE_DAYS", "")
    try:
        stream_ages(ages)
    except ValueError as exc:
        report.problem(where, str(exc))
    if replicas >= 3 and "sync_interval: always" not in data["nats.conf"]:
        report.problem(where, "a production cluster must fsync every write (sync_interval: always)")

    # Every password the config names must reach the server's environment.
    container = next(
        (c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "nats"), None
    )
    variables = _config_variables(data.values())
    if container is not None:
        cenv = container_env(container, docs)
        secrets = by_kind(docs, "Secret")
        rendered = [n for n, _, var in cenv.secret_refs if var == "envFrom" and n in secrets]
        if rendered:
            for var in sorted(variables - cenv.names):
                report.problem(where, f"${var} is in the NATS config but in no Secret or env")
        else:
            report.notes.append(
                f"{where}: Secret {gen_nats_config.SECRET_NAME} must hold every key of "
                "`python tools/gen_nats_config.py --secret-keys`"
            )

    binary = _nats_binary()
    if binary is None:
        report.notes.append(f"{where}: nats-server not found; config not parsed")
        return
    with tempfile.TemporaryDirectory(prefix="gridloop-nats-conf-") as tmp:
        for key, text in data.items():
            (Path(tmp) / key).write_text(text, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
        for i, var in enumerate(sorted(variables)):
            # routes must be distinct URLs; everything else is a password or a name
            env[var] = (
                f"nats://route:x@127.0.0.{i + 1}:6222" if var.startswith("NATS_ROUTE_") else "x"
            )
        env["NATS_ROUTE_PASSWORD"] = "x"
        proc = subprocess.run(
            [binary, "-t", "-c", str(Path(tmp) / "nats.conf")],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        if proc.returncode != 0:
            report.problem(where, f"nats-server rejects the config: {proc.stderr.strip()}")


# -- all of it ----------------------------------------------------------------------------------


def check_overlay(overlay: str, versions: Iterable[str], report: Report) -> int:
    try:
        docs = render(overlay)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        report.problem(overlay, str(exc))
        return 0
    validate_schemas(overlay, docs, versions, report)
    external: dict[str, set[str]] = {}
    for service in SERVICES:
        check_service(overlay, service, docs, report, external)
    check_nats(overlay, docs, report)
    check_retention(overlay, docs, report)
    check_backups(overlay, docs, report, external)
    crds = sorted(
        {
            f"{d['kind']} ({CRD_KINDS[(d['apiVersion'], d['kind'])]})"
            for d in docs
            if (d.get("apiVersion", ""), d.get("kind", "")) in CRD_KINDS
        }
    )
    if crds:
        report.notes.append(f"{overlay}: custom resources not schema-checked: {', '.join(crds)}")
    if external:
        secrets = "; ".join(
            f"{name} ({', '.join(sorted(keys))})" for name, keys in sorted(external.items())
        )
        report.notes.append(f"{overlay}: Secrets the operator provides: {secrets}")
    return len(docs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlay", action="append", help="only this overlay (repeatable)")
    parser.add_argument(
        "--kubernetes-version",
        action="append",
        help=f"validate against these versions (default: {', '.join(KUBERNETES_VERSIONS)})",
    )
    args = parser.parse_args(argv)
    if kubectl() is None:
        print("deploy-check: kubectl not found (it renders the overlays)", file=sys.stderr)
        return 2
    report = Report()

    try:
        stale = gen_nats_config.stale_files()
    except gen_nats_config.CityDataError as exc:
        report.problem("nats", str(exc))
        stale = []
    for path in stale:
        report.problem(
            str(path.relative_to(ROOT)),
            "stale: the city's departments or sources changed; run "
            "`python tools/gen_nats_config.py`",
        )

    total = 0
    names = args.overlay or overlays()
    for overlay in names:
        total += check_overlay(overlay, args.kubernetes_version or KUBERNETES_VERSIONS, report)

    for note in report.notes:
        print(f"deploy-check: note: {note}")
    for problem in report.problems:
        print(f"deploy-check: FAIL {problem}", file=sys.stderr)
    if report.problems:
        print(f"deploy-check: {len(report.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"deploy-check: OK — {', '.join(names)}: {total} resources")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
