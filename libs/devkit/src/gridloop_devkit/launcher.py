"""Brings the whole system up on one machine: NATS (one server, or a cluster), PostgreSQL,
the evidence store (S3), a local SMTP server for the mail to residents, and the five
services as separate processes. `make run` uses it; so do the end-to-end tests, the chaos
suite and `make bench`, which kill and restart single services through it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .devstack import (
    LocalNats,
    LocalNatsCluster,
    LocalObjectStore,
    LocalPostgres,
    LocalSmtp,
    free_port,
)

SERVICES: dict[str, int] = {
    "intake": 8001,
    "dispatch": 8002,
    "handling": 8003,
    "verify": 8004,
    "scoring": 8005,
}
# The command-centre console: a web app over the five services' APIs (no database).
CONSOLE_PORT = 8006
# Replica i > 0 of a service is the process `<service>-<i>` on the service's port + i * this.
REPLICA_PORT_STEP = 10
# The local evidence store's S3 port (S3_PORT) and bucket (S3_BUCKET) under make run.
S3_PORT = 8333
EVIDENCE_BUCKET = "gridloop-evidence"


def service_of(instance: str) -> tuple[str, int]:
    """`dispatch-2` -> ("dispatch", 2); `dispatch` -> ("dispatch", 0)."""
    name, _, index = instance.rpartition("-")
    if name and index.isdigit():
        return name, int(index)
    return instance, 0


def replicas_from_env(default: int = 1) -> int:
    """GRIDLOOP_REPLICAS: processes of every service (the production shape runs several)."""
    value = os.environ.get("GRIDLOOP_REPLICAS", "").strip()
    n = int(value) if value else default
    if n < 1:
        raise ValueError(f"GRIDLOOP_REPLICAS must be 1 or more, not {value!r}")
    return n


def nats_nodes_from_env(default: int = 1) -> int:
    """GRIDLOOP_NATS_NODES: nats-servers of the local bus; more than one form a JetStream
    cluster (production runs three) and the services' streams are replicated on up to
    three of them (STREAM_REPLICAS)."""
    value = os.environ.get("GRIDLOOP_NATS_NODES", "").strip()
    n = int(value) if value else default
    if n < 1:
        raise ValueError(f"GRIDLOOP_NATS_NODES must be 1 or more, not {value!r}")
    return n


def stream_replicas_for(nats_nodes: int) -> int:
    """R3 on a cluster of three or more (as in production), else one copy per node."""
    return min(nats_nodes, 3)


@dataclass
class Stack:
    """The five services (and, unless URLs are given, their NATS and PostgreSQL)."""

    state_dir: Path
    nats_url: str | None = None
    database_url: str | None = None
    ports: dict[str, int] = field(default_factory=lambda: dict(SERVICES))
    env: Mapping[str, str] = field(default_factory=dict)
    durable: bool = True
    # Run the local nats-server with the generated users and subject permissions
    # (deploy/local via tools/gen_nats_config.py); each service logs in as itself.
    nats_auth: bool = False
    services: tuple[str, ...] = tuple(SERVICES)
    # Processes of each of the five services (the console stays one): replica 0 is named as
    # the service, the others `<service>-<i>`; they share the service's consumers, timers and
    # outbox as in production.
    replicas: int = 1
    # nats-servers: one (the default), or a JetStream cluster of this many on loopback, the
    # services given every node's URL and STREAM_REPLICAS (stream_replicas_for).
    nats_nodes: int = 1
    nats: LocalNats | LocalNatsCluster | None = None
    postgres: LocalPostgres | None = None
    # The evidence store (photos, voice notes): the S3 settings given to the services (S3_*),
    # or, with `local_s3` (make run, process_stack), a local SeaweedFS started on S3_PORT
    # (env or environment; 0: a free port) whose settings they are given.
    s3: Mapping[str, str] | None = None
    local_s3: bool = False
    object_store: LocalObjectStore | None = None
    # The mail to residents: unless SMTP_HOST is given (the city's relay), a local SMTP
    # server keeping every message under <state_dir>/mail (LocalSmtp).
    smtp: LocalSmtp | None = None
    # where each process's log was when it was last started (what its last run wrote)
    log_starts: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_platform(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.nats_url is None:
            port = int(self.env.get("NATS_PORT", os.environ.get("NATS_PORT", "4222")))
            if self.nats_nodes > 1:
                # Client ports NATS_PORT, +1, +2 …; a store, config and log per node.
                self.nats = LocalNatsCluster(
                    self.state_dir / "nats-cluster",
                    size=self.nats_nodes,
                    port=port,
                    accounts_file=self.generated_nats_accounts() if self.nats_auth else None,
                    sync_always=self.durable,
                    log_dir=self.state_dir,
                ).start()
            else:
                config = self.generated_nats_config(port) if self.nats_auth else None
                self.nats = LocalNats(
                    self.state_dir / "nats",
                    port=port,
                    config_file=config,
                    sync_always=self.durable,
                    log_file=self.state_dir / "nats.log",
                ).start()
            self.nats_url = self.nats.url
        if self.s3 is None and self.local_s3:
            # launched first: it readies itself while PostgreSQL and the services start
            port = int(self.env.get("S3_PORT", os.environ.get("S3_PORT", str(S3_PORT))))
            bucket = self.env.get("S3_BUCKET", os.environ.get("S3_BUCKET", EVIDENCE_BUCKET))
            self.object_store = LocalObjectStore(
                self.state_dir / "s3",
                port=port,
                buckets=(bucket,),
                log_file=self.state_dir / "s3.log",
            ).launch()
            self.s3 = self.object_store.settings()
        if self.database_url is None:
            self.postgres = LocalPostgres(
                self.state_dir / "pg",
                port=int(self.env.get("PG_PORT", os.environ.get("PG_PORT", "55432"))),
                durable=self.durable,
                log_file=self.state_dir / "postgres.log",
            ).start()
            with contextlib.suppress(subprocess.CalledProcessError):
                self.postgres.create_database("gridloop")
            self.database_url = self.postgres.url("gridloop")
        self.start_smtp()

    def start_smtp(self) -> None:
        """The local SMTP server, unless the environment names a relay (SMTP_HOST)."""
        if self.smtp is not None or self.env.get("SMTP_HOST") or os.environ.get("SMTP_HOST"):
            return
        port = int(self.env.get("SMTP_PORT", os.environ.get("SMTP_PORT", "0")) or 0)
        self.smtp = LocalSmtp(
            self.state_dir / "mail", port=port, log_file=self.state_dir / "smtp.log"
        ).start()

    def generated_nats_config(self, port: int) -> Path:
        """The generated local NATS configuration, with users and permissions from the city."""
        tool = Path(__file__).resolve().parents[4] / "tools" / "gen_nats_config.py"
        out = self.state_dir / "nats.conf"
        subprocess.run(
            [
                sys.executable,
                str(tool),
                "--local-out",
                str(out),
                "--store-dir",
                str(self.state_dir / "nats" / "js"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            check=True,
            capture_output=True,
        )
        return out

    def generated_nats_accounts(self) -> Path:
        """The generated accounts, users and permissions alone, for every node of a local
        cluster to include (dev passwords, or NATS_PW_<USER> from the environment)."""
        tool = Path(__file__).resolve().parents[4] / "tools" / "gen_nats_config.py"
        out = self.state_dir / "nats-accounts.conf"
        subprocess.run(
            [sys.executable, str(tool), "--local-accounts-out", str(out)],
            check=True,
            capture_output=True,
        )
        return out

    @property
    def nats_servers(self) -> list[str]:
        """The NATS URLs the services are given (NATS_URL, split), for a client to connect."""
        return (self.nats_url or "").split(",")

    def instances(self, name: str | None = None) -> list[str]:
        """The processes of one service (or of every service), replica 0 first."""
        names = [name] if name else list(self.services)
        return [
            n if i == 0 else f"{n}-{i}"
            for n in names
            for i in range(1 if n == "console" else self.replicas)
        ]

    def port(self, instance: str) -> int:
        if instance in self.ports:
            return self.ports[instance]
        name, index = service_of(instance)
        return self.ports[name] + REPLICA_PORT_STEP * index

    def service_env(self, instance: str) -> dict[str, str]:
        assert self.nats_url and self.database_url
        name, _ = service_of(instance)
        env = dict(os.environ)
        env.update(
            {
                "SERVICE_NAME": name,
                "SERVICE_INSTANCE": instance,
                "HTTP_PORT": str(self.port(instance)),
                "NATS_URL": self.nats_url,
                "DATABASE_URL": self.database_url,
            }
        )
        env.update(self.s3 or {})
        if self.nats_nodes > 1:
            env["STREAM_REPLICAS"] = str(stream_replicas_for(self.nats_nodes))
        if self.smtp is not None:
            env.update(self.smtp.env())
        if self.nats_auth and self.nats is not None:
            env.update({"NATS_USER": name, "NATS_PASSWORD": f"gridloop-dev-{name}"})
        if name == "console":
            env.update(
                {
                    f"CONSOLE_{svc.upper()}_URL": self.url(svc)
                    for svc in SERVICES
                    if svc in self.ports
                }
            )
        if name == "intake" and "console" in self.ports:
            # the mails' links lead to this stack's console (its public page)
            env["INTAKE_PUBLIC_URL"] = self.url("console") + "/public/"
        env.update(self.env)
        return env

    def start_service(self, instance: str) -> subprocess.Popen[bytes]:
        """Start one process: a service's replica 0 by the service's name, or `<service>-<i>`."""
        name, _ = service_of(instance)
        log = open(self.state_dir / f"{instance}.log", "ab")  # noqa: SIM115
        self.log_starts[instance] = log.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", f"gridloop_{name}"],
            env=self.service_env(instance),
            stdout=log,
            stderr=log,
        )
        self.procs[instance] = proc
        return proc

    def start(self, timeout: float = 120) -> None:
        self.start_platform()
        for instance in self.instances():
            self.start_service(instance)
        if self.object_store is not None:
            self.object_store.wait_ready(timeout)
        self.wait_ready(timeout)

    def url(self, instance: str) -> str:
        """A service's replica 0 (by the service's name) or one given replica."""
        return f"http://127.0.0.1:{self.port(instance)}"

    def urls(self, name: str) -> list[str]:
        """Every replica of a service."""
        return [self.url(i) for i in self.instances(name)]

    def wait_ready(self, timeout: float = 120, names: tuple[str, ...] | None = None) -> None:
        """Wait for the named processes (replica 0 of a service by its name), or all of them."""
        deadline = time.monotonic() + timeout
        pending = set(names or self.instances())
        moved: Counter[str] = Counter()
        while pending:
            for name in list(pending):
                proc = self.procs.get(name)
                if proc is not None and proc.poll() is not None:
                    log = (self.state_dir / f"{name}.log").read_bytes()
                    tail = log[-3000:].decode(errors="replace")
                    this_run = log[self.log_starts.get(name, 0) :]
                    if b"address already in use" in this_run and moved[name] < 3:
                        # its port was taken after it was chosen: another one, and again
                        moved[name] += 1
                        self.ports[name] = free_port()
                        self.start_service(name)
                        continue
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.url(name) + "/readyz", timeout=1).status_code == 200:
                        pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout}s: {sorted(pending)}")
            if pending:
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        """kill -9: no graceful shutdown, as a crash."""
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def stop_service(self, name: str, timeout: float = 30) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop_service(name)
        if self.nats:
            self.nats.stop()
        if self.postgres:
            self.postgres.stop()
        if self.object_store:
            self.object_store.stop()
        if self.smtp:
            self.smtp.stop()


def demo_tokens(stack: Stack) -> dict[str, tuple[str, str]]:
    """One demo user per role from the city's users, with a signed token for each."""
    try:
        from gridloop_city import load_city
    except ImportError:
        return {}
    from gridloop_runtime.auth import AuthSettings, issue_token
    from gridloop_runtime.settings import ServiceSettings

    city = load_city(ServiceSettings().city_data_dir)
    auth = AuthSettings()
    out: dict[str, tuple[str, str]] = {}
    for user in city.users.values():
        for role in user.roles:
            if role not in out:
                token = issue_token(
                    auth,
                    user_id=user.id,
                    roles=user.roles,
                    name=user.name,
                    dept=user.dept,
                    territory=user.territory,
                )
                out[role] = (user.id, token)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run gridloop locally with a demo city.")
    parser.add_argument(
        "--state-dir", default=".run", help="where NATS, PostgreSQL and logs keep state"
    )
    args = parser.parse_args(argv)
    stack = Stack(
        Path(args.state_dir).resolve(),
        nats_url=os.environ.get("NATS_URL"),
        database_url=os.environ.get("DATABASE_URL"),
        env={
            "AUTH_MODE": os.environ.get("AUTH_MODE", "dev"),
            "SMTP_PORT": os.environ.get("SMTP_PORT", "2525"),
        },
        nats_auth=os.environ.get("NATS_URL") is None,
        # an S3_ENDPOINT of your own (with its S3_* settings, read by the services) is used
        # as it is; else a local SeaweedFS on S3_PORT
        local_s3=not os.environ.get("S3_ENDPOINT"),
        ports={**SERVICES, "console": CONSOLE_PORT},
        services=(*SERVICES, "console"),
        replicas=replicas_from_env(),
        # a NATS_URL of your own is the bus as it is: the node count is for the local one
        nats_nodes=1 if os.environ.get("NATS_URL") else nats_nodes_from_env(),
    )
    shape = f" ({stack.replicas} replicas each)" if stack.replicas > 1 else ""
    bus = f"a {stack.nats_nodes}-node NATS cluster" if stack.nats_nodes > 1 else "NATS"
    print(
        f"gridloop: starting {bus}, PostgreSQL, the evidence store and the five services"
        f"{shape} ...",
        flush=True,
    )
    started = time.monotonic()
    try:
        stack.start()
    except BaseException as exc:
        print(f"gridloop: failed to start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print(f"gridloop: ready in {time.monotonic() - started:.1f}s\n")
    if isinstance(stack.nats, LocalNatsCluster):
        r = stream_replicas_for(stack.nats_nodes)
        print(f"  NATS        cluster {stack.nats.name!r}, {stack.nats_nodes} nodes, streams R{r}:")
        for node in stack.nats.nodes:
            monitor = f"http://127.0.0.1:{node.monitor_port}"
            print(f"    {node.server_name:<9} {node.url}   (monitoring {monitor})")
        print(f"  NATS_URL    {stack.nats_url}")
    else:
        print(f"  NATS        {stack.nats_url}")
    if stack.nats_auth:
        where = (
            f"{stack.state_dir.name}/nats-accounts.conf, in every node"
            if isinstance(stack.nats, LocalNatsCluster)
            else "deploy/local/nats.conf"
        )
        print(f"              users and subject permissions from the city ({where});")
        print("              departments log in as dept-<code>, integrators as src-<code>,")
        print("              password gridloop-dev-<user>, e.g. dept-sanitation:")
        print("              gridloop-dev-dept-sanitation")
    print(f"  PostgreSQL  {stack.database_url}")
    if stack.object_store is not None:
        store = stack.object_store
        print(f"  S3          {store.endpoint}   (SeaweedFS; bucket {store.buckets[0]},")
        print(f"              access key {store.access_key}, secret {store.secret_key})")
    else:
        print(f"  S3          {os.environ.get('S3_ENDPOINT')}   (yours)")
    if stack.smtp is not None:
        print(f"  SMTP        127.0.0.1:{stack.smtp.port}   (mail to residents, kept in ", end="")
        print(f"{stack.state_dir.name}/mail/new/)")
    for name in stack.services:
        if name == "console":
            continue
        extra = "   (Open311: /open311/v2/services.json)" if name == "intake" else ""
        print(f"  {name:<10}  {stack.url(name)}/docs{extra}")
        for replica in stack.instances(name)[1:]:
            print(f"  {replica:<10}  {stack.url(replica)}/docs")
    if "console" in stack.services:
        print(f"\n  console     {stack.url('console')}/   (sign in as a demo user)")
        print(f"  residents   {stack.url('console')}/public/   (no login: map, report, rating)")
    tokens = demo_tokens(stack)
    if tokens:
        (stack.state_dir / "tokens.json").write_text(
            json.dumps(tokens, indent=2, ensure_ascii=False)
        )
        print("\n  demo users (AUTH_MODE=dev: send `X-User: <id>`, or a bearer token):")
        for role, (user_id, _) in tokens.items():
            print(f"    {role:<13} {user_id}")
        print(f"  bearer tokens for each: {stack.state_dir}/tokens.json")
        print(
            '    e.g. curl -H "Authorization: Bearer $(jq -r .dispatcher[1] .run/tokens.json)" ...'
        )
    print(f"\n  logs in {stack.state_dir}/*.log — press Ctrl-C to stop\n", flush=True)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop:
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(f"gridloop: {name} exited ({proc.returncode}); restarting", flush=True)
                    stack.start_service(name)
            time.sleep(0.5)
    finally:
        print("gridloop: stopping ...", flush=True)
        stack.stop()
        print("gridloop: stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
