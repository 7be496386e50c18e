"""Generate the NATS accounts, users and subject permissions from the city's data.

Who may publish and subscribe where follows from the departments and the integrators'
sources a city defines (`departments.yaml`, `sources.yaml` in the city directory), so adding
a department or a source is a data change: edit the YAML, run this tool, apply.

    python tools/gen_nats_config.py                 # regenerate the files below
    python tools/gen_nats_config.py --check         # exit 1 if any of them is stale
    python tools/gen_nats_config.py --secret-keys   # the password keys a cluster needs
    python tools/gen_nats_config.py --new-secret    # a Secret with random passwords (stdout)
    python tools/gen_nats_config.py --local-out F --store-dir D
                                                    # a runnable local config; passwords from
                                                    # NATS_PW_* in the environment, else dev ones
    python tools/gen_nats_config.py --local-accounts-out F
                                                    # the accounts alone, passwords as above,
                                                    # for every node of a local cluster to
                                                    # `include` (GRIDLOOP_NATS_NODES=3 make run)

Generated (from data/demo-city unless --city says otherwise):

- deploy/base/nats/auth.conf          accounts and users for Kubernetes; every password is a
                                      `$NATS_PW_<USER>` variable the server reads from its
                                      environment (the Secret `gridloop-nats-auth`)
- deploy/overlays/dev/nats-passwords.env  the dev overlay's Secret: well-known dev passwords
- deploy/local/nats.conf              a complete single-node config for `make run`, dev passwords

The permission model. Services, the console and operators share one account, GRIDLOOP, which
holds JetStream and every stream; a system account, SYS. Every department and every integrator
has an account of its own, named as its user, which imports from GRIDLOOP only the subjects
that user works with:

- each service may publish and subscribe only its own subjects, plus the JetStream API and
  `_INBOX.>` it needs as a stream-managing JetStream client, and the acks of its streams;
- a department `dept-<code>` may publish `handling.<code>.>`, read `dispatch.<code>.>` (core
  subscribe, or its one durable consumer `dept-<code>` on DISPATCH: info, fetch, ack) and get
  handling's direct answers on `_INBOX.dept-<code>.>`;
- an integrator `src-<code>` may only publish `intake.<channel>.<code>` on its channels and
  read `notify.<code>` (core, or its durable `src-<code>` on NOTIFY);
- both may ask `$JS.API.INFO` (the account info), which standard JetStream clients ask
  before anything else (nats.js 2's `jetstreamManager()`): a read of totals and limits;
- departments and integrators get replies only on their own inbox prefix,
  `_INBOX.<user>.>` (nats-py: `nats.connect(..., inbox_prefix="_INBOX.<user>")`).

Why accounts: a publish carries a reply subject the publisher chooses, and JetStream sends
its acknowledgement there. Inside GRIDLOOP, `reply="case.x"` on a report would make JetStream
write its ack into CASES. Across an import the server replaces the reply subject with one of
its own and routes the answer back into the publisher's account, where no stream listens.
For the same reason the durable consumers of departments and integrators are created by the
services (dispatch, intake; with a fixed filter and no delivery subject) and their users may
not create consumers: a consumer's delivery subject is named in GRIDLOOP and would be
another way into a stream. Each external account also imports `$JS.API.INFO`, which keeps
the server from answering that account's JetStream API calls itself ("JetStream not enabled
for account", racing the real answer), and lets the user ask GRIDLOOP's account info.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CITY = ROOT / "data" / "demo-city"
AUTH_CONF = ROOT / "deploy" / "base" / "nats" / "auth.conf"
DEV_PASSWORDS = ROOT / "deploy" / "overlays" / "dev" / "nats-passwords.env"
LOCAL_CONF = ROOT / "deploy" / "local" / "nats.conf"

ACCOUNT = "GRIDLOOP"
SYSTEM_ACCOUNT = "SYS"
CHANNELS = ("hotline", "video", "patrol", "web")
CODE = re.compile(r"^[A-Za-z0-9-]+$")
SECRET_NAME = "gridloop-nats-auth"
# Not a user: the password the production cluster's routes authenticate with.
ROUTE_PASSWORD_KEY = "NATS_ROUTE_PASSWORD"

# What each service reads (its JetStream consumers ack on these streams) and publishes.
# Subjects as in ARCHITECTURE.md and gridloop_contracts.subjects. A service may also publish
# to what it consumes: the operators' DLQ replay (POST /admin/dlq/{id}/replay) re-publishes a
# dead letter to its original subject. Every service hears `city.updated` (live reload of the
# city's data, announced by an operator).
SERVICES: dict[str, dict[str, tuple[str, ...]]] = {
    "intake": {
        "streams": ("INTAKE", "CASES"),
        "pub": ("case.>", "notify.>", "dlq.intake", "intake.>"),
        "sub": ("intake.>", "case.>", "city.updated"),
    },
    "dispatch": {
        "streams": ("CASES",),
        "pub": ("case.>", "dispatch.>", "dlq.dispatch"),
        "sub": ("case.>", "city.updated"),
    },
    "handling": {
        "streams": ("CASES", "HANDLING"),
        # Answers go on dispatch.<dept>.answer and, when a command names one, to a reply
        # subject in the department's own inbox space, `_INBOX.dept-<dept>.>` (service_user).
        "pub": ("case.>", "dispatch.*.answer", "dlq.handling", "handling.>"),
        "sub": ("case.>", "handling.>", "city.updated"),
    },
    "verify": {
        "streams": ("CASES",),
        "pub": ("case.>", "dlq.verify"),
        "sub": ("case.>", "city.updated"),
    },
    "scoring": {
        "streams": ("CASES",),
        "pub": ("case.>", "score.>", "dlq.scoring"),
        "sub": ("case.>", "city.updated"),
    },
}

# A JetStream client that creates streams and its durable consumers (the runtime does both
# at start-up) talks to the whole JetStream API and gets its answers on its inbox.
SERVICE_JS_PUB = ("$JS.API.>",)
SERVICE_JS_SUB = ("_INBOX.>",)
# What every external account imports only to keep the server's own answer out (module doc).
JS_API_INFO = "$JS.API.INFO"


class CityDataError(ValueError):
    """The city's departments or sources cannot be turned into NATS users."""


@dataclass(frozen=True)
class Department:
    code: str
    name: str = ""


@dataclass(frozen=True)
class Source:
    code: str
    channels: tuple[str, ...] = CHANNELS
    name: str = ""


@dataclass(frozen=True)
class Import:
    """A subject an external account takes from GRIDLOOP. A `service` import carries the
    user's publishes into GRIDLOOP (answers come back under a reply subject the server
    makes); a `stream` import carries GRIDLOOP's messages on `subject` into the account.
    `response="stream"`: one request is answered many times (a pull request's messages)."""

    kind: str  # service | stream
    subject: str
    response: str | None = None


@dataclass(frozen=True)
class User:
    """One NATS user: a name, the variable that holds its password, and what it may do."""

    name: str
    kind: str  # service | department | integrator | operator | system
    account: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    note: str = ""
    # For a user in an account of its own: what the account imports from GRIDLOOP.
    imports: tuple[Import, ...] = ()

    @property
    def password_var(self) -> str:
        return "NATS_PW_" + re.sub(r"[^A-Za-z0-9]", "_", self.name).upper()

    @property
    def unrestricted(self) -> bool:
        return self.kind in ("operator", "system")


@dataclass
class City:
    departments: list[Department] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- reading the city -----------------------------------------------------------------------


def _entries(doc: Any, key: str, path: Path) -> list[dict[str, Any]]:
    """Accept the shapes a city file may reasonably take: a list of codes or of mappings
    with a `code` (or `id`), a mapping code -> attributes, either one under a top-level
    `key` (`departments:` / `sources:`)."""
    if doc is None:
        return []
    if isinstance(doc, dict) and key in doc:
        doc = doc[key]
        if doc is None:
            return []
    out: list[dict[str, Any]] = []
    if isinstance(doc, dict):
        for code, attrs in doc.items():
            if isinstance(attrs, dict):
                out.append({"code": attrs.get("code", code), **attrs})
            else:
                out.append({"code": code, "name": attrs if isinstance(attrs, str) else ""})
        return out
    if isinstance(doc, list):
        for item in doc:
            if isinstance(item, (str, int)):
                out.append({"code": str(item)})
            elif isinstance(item, dict):
                out.append(item)
            else:
                raise CityDataError(f"{path}: entry {item!r} is neither a code nor a mapping")
        return out
    raise CityDataError(f"{path}: expected a list or mapping of {key}, got {type(doc).__name__}")


def _code(entry: Mapping[str, Any], path: Path, what: str) -> str:
    raw = entry.get("code", entry.get("id"))
    if raw is None:
        raise CityDataError(f"{path}: a {what} without a code: {dict(entry)!r}")
    code = str(raw)
    if not CODE.fullmatch(code):
        raise CityDataError(f"{path}: {what} code {code!r} must be letters, digits or '-'")
    return code


def _channels(entry: Mapping[str, Any], path: Path, code: str) -> tuple[str, ...]:
    found: list[str] = []
    for key in ("channels", "channel", "kind", "type"):
        value = entry.get(key)
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        if key in ("kind", "type") and not all(v in CHANNELS for v in values):
            continue  # a kind/type that is not a channel says something else
        for v in values:
            if v not in CHANNELS:
                raise CityDataError(f"{path}: source {code!r}: channel {v!r} not in {CHANNELS}")
            if v not in found:
                found.append(v)
        break
    return tuple(found) or CHANNELS


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CityDataError(f"{path}: not valid YAML: {exc}") from exc


def read_city(city_dir: Path) -> City:
    """The departments and sources of a city directory; a missing file means none (warned)."""
    city = City()
    dept_file = city_dir / "departments.yaml"
    if dept_file.is_file():
        for entry in _entries(_load_yaml(dept_file), "departments", dept_file):
            code = _code(entry, dept_file, "department")
            city.departments.append(Department(code, str(entry.get("name") or "")))
    else:
        city.warnings.append(f"{dept_file} not found: no department users")
    src_file = city_dir / "sources.yaml"
    if src_file.is_file():
        for entry in _entries(_load_yaml(src_file), "sources", src_file):
            code = _code(entry, src_file, "source")
            city.sources.append(
                Source(code, _channels(entry, src_file, code), str(entry.get("name") or ""))
            )
    else:
        city.warnings.append(f"{src_file} not found: no integrator users")
    _check_unique(city)
    city.departments.sort(key=lambda d: d.code)
    city.sources.sort(key=lambda s: s.code)
    return city


def _check_unique(city: City) -> None:
    for what, codes in (
        ("department", [d.code for d in city.departments]),
        ("source", [s.code for s in city.sources]),
    ):
        seen: dict[str, str] = {}
        for code in codes:
            # Password variables upper-case the code: `ab` and `AB` would share one.
            key = code.upper()
            if key in seen:
                raise CityDataError(f"{what} codes {seen[key]!r} and {code!r} collide")
            seen[key] = code


# -- the users ----------------------------------------------------------------------------


def feed_permissions(stream: str, durable: str) -> tuple[str, ...]:
    """The JetStream API a client needs to inspect and pull from one durable consumer that a
    service created for it (dispatch: `dept-<code>` on DISPATCH; intake: `src-<code>` on
    NOTIFY), and to ack its messages; and the account-info call `$JS.API.INFO`, with which
    a standard client checks the JetStream API before anything else (nats.js 2:
    `jetstreamManager()` with its default `checkAPI`): it reads GRIDLOOP's totals and limits
    and writes nothing. Not the create subject: a consumer's config names its delivery
    subject, which would be a way into any stream."""
    return (
        JS_API_INFO,
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    )


def feed_imports(stream: str, durable: str) -> tuple[Import, ...]:
    """What an external account imports for its feed consumer (see feed_permissions), and
    `$JS.API.INFO`, which keeps the server's own answer for the account out (module doc)."""
    account_info, info, next_msg, ack = feed_permissions(stream, durable)
    return (
        Import("service", account_info),
        Import("service", info),
        Import("service", next_msg, response="stream"),
        Import("service", ack),
    )


def service_user(name: str, departments: Sequence[Department] = ()) -> User:
    spec = SERVICES[name]
    acks = tuple(f"$JS.ACK.{stream}.>" for stream in spec["streams"])
    # handling answers a department's command on a reply subject under its inbox prefix
    # (a wildcard spans whole tokens only: one subject per department).
    replies = tuple(f"_INBOX.dept-{d.code}.>" for d in departments) if name == "handling" else ()
    return User(
        name=name,
        kind="service",
        account=ACCOUNT,
        publish=(*spec["pub"], *replies, *SERVICE_JS_PUB, *acks),
        subscribe=(*spec["sub"], *SERVICE_JS_SUB),
        note=f"service {name}: streams it reads: {', '.join(spec['streams'])}",
    )


def department_user(dept: Department) -> User:
    name = f"dept-{dept.code}"
    own_inbox = f"_INBOX.{name}.>"
    return User(
        name=name,
        kind="department",
        account=name,
        publish=(f"handling.{dept.code}.>", *feed_permissions("DISPATCH", name)),
        subscribe=(f"dispatch.{dept.code}.>", own_inbox),
        note=f"department {dept.code}" + (f" ({dept.name})" if dept.name else ""),
        imports=(
            Import("service", f"handling.{dept.code}.>"),
            *feed_imports("DISPATCH", name),
            Import("stream", f"dispatch.{dept.code}.>"),
            # handling's direct answers to a command's `replyto`
            Import("stream", own_inbox),
        ),
    )


def integrator_user(src: Source) -> User:
    name = f"src-{src.code}"
    intake = tuple(f"intake.{ch}.{src.code}" for ch in src.channels)
    return User(
        name=name,
        kind="integrator",
        account=name,
        publish=(*intake, *feed_permissions("NOTIFY", name)),
        subscribe=(f"notify.{src.code}", f"_INBOX.{name}.>"),
        note=f"integrator {src.code}"
        + (f" ({src.name})" if src.name else "")
        + f": channels {', '.join(src.channels)}",
        imports=(
            *(Import("service", subject) for subject in intake),
            *feed_imports("NOTIFY", name),
            Import("stream", f"notify.{src.code}"),
        ),
    )


def users(city: City) -> list[User]:
    out = [service_user(name, city.departments) for name in SERVICES]
    # The console follows case events with a core subscription for its live feed; it keeps
    # nothing and publishes nothing (its one allowed subject is its own, unused).
    out.append(
        User(
            "console",
            "service",
            ACCOUNT,
            publish=("_INBOX.console.>",),
            subscribe=("case.>",),
            note="console: reads case events for the live feed (core subscription)",
        )
    )
    out.append(
        User(
            "admin",
            "operator",
            ACCOUNT,
            note="operators: nats CLI, DLQ inspection, stream maintenance",
        )
    )
    out += [department_user(d) for d in city.departments]
    out += [integrator_user(s) for s in city.sources]
    out.append(User("sys", "system", SYSTEM_ACCOUNT, note="server events and monitoring"))
    return out


def dev_password(user: User) -> str:
    """The well-known password of `user` in the dev overlay and `make run`. Never production."""
    return f"gridloop-dev-{user.name}"


# -- rendering ----------------------------------------------------------------------------


def _q(s: str) -> str:
    # Quoted, so that `$JS...` is a subject and not a variable reference.
    return json.dumps(s)


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def _render_user(user: User, password: str, indent: str) -> list[str]:
    lines = [f"{indent}# {user.note}"] if user.note else []
    head = f"{indent}{{ user: {_q(user.name)}, password: {password}"
    if user.unrestricted:
        return [*lines, head + " }"]
    return [
        *lines,
        head + ", permissions: {",
        f"{indent}    publish: {{ allow: {_list(user.publish)} }}",
        f"{indent}    subscribe: {{ allow: {_list(user.subscribe)} }}",
        f"{indent}}} }}",
    ]


def _render_import(imp: Import) -> str:
    ref = f"{{ account: {ACCOUNT}, subject: {_q(imp.subject)} }}"
    return f"{{ {imp.kind}: {ref} }}"


def _render_exports(all_users: Sequence[User], indent: str) -> list[str]:
    """GRIDLOOP's exports: each subject some external account imports, to those accounts."""
    takers: dict[Import, list[str]] = {}
    for user in all_users:
        for imp in user.imports:
            takers.setdefault(imp, []).append(user.account)
    if not takers:
        return []
    lines = [f"{indent}exports: ["]
    for imp, accounts in takers.items():
        response = f", response_type: {imp.response}" if imp.response else ""
        lines.append(
            f"{indent}  {{ {imp.kind}: {_q(imp.subject)}{response}, accounts: {_list(accounts)} }}"
        )
    return [*lines, f"{indent}]"]


def render_accounts(all_users: Sequence[User], passwords: Mapping[str, str] | None) -> str:
    """The `accounts` block. Without `passwords`, each is the user's `$NATS_PW_*` variable."""

    def pw(user: User) -> str:
        return _q(passwords[user.name]) if passwords is not None else f"${user.password_var}"

    def users_of(account: str) -> list[str]:
        out = ["    users: ["]
        for user in all_users:
            if user.account == account:
                out += _render_user(user, pw(user), "      ")
        return [*out, "    ]"]

    lines = ["accounts {", f"  {ACCOUNT} {{", "    jetstream: enabled", *users_of(ACCOUNT)]
    lines += [*_render_exports(all_users, "    "), "  }"]
    for user in all_users:
        if user.account in (ACCOUNT, SYSTEM_ACCOUNT):
            continue
        lines += [f"  {_q(user.account)} {{", *users_of(user.account), "    imports: ["]
        lines += [f"      {_render_import(imp)}" for imp in user.imports]
        lines += ["    ]", "  }"]
    lines += [f"  {SYSTEM_ACCOUNT} {{", *users_of(SYSTEM_ACCOUNT), "  }"]
    lines += ["}", f"system_account: {SYSTEM_ACCOUNT}", ""]
    return "\n".join(lines)


def _header(city_dir: Path, what: str) -> str:
    try:
        shown = city_dir.resolve().relative_to(ROOT)
    except ValueError:
        shown = city_dir
    return (
        f"# GENERATED by tools/gen_nats_config.py from {shown} — do not edit.\n"
        f"# {what}\n"
        "# Regenerate after changing departments.yaml or sources.yaml.\n"
    )


def render_auth_conf(city: City, city_dir: Path) -> str:
    return (
        _header(
            city_dir,
            "NATS accounts, users and permissions; passwords come from the server's environment"
            f"\n# (the Secret {SECRET_NAME}, one NATS_PW_<USER> key per user).",
        )
        + "\n"
        + render_accounts(users(city), None)
    )


def render_dev_passwords(city: City, city_dir: Path) -> str:
    lines = [
        _header(city_dir, "Well-known DEV passwords for the dev overlay. Never use in production.")
    ]
    lines += [f"{u.password_var}={dev_password(u)}" for u in users(city)]
    lines.append(f"{ROUTE_PASSWORD_KEY}=gridloop-dev-route")
    return "\n".join(lines) + "\n"


def render_local_conf(
    city: City,
    city_dir: Path,
    *,
    store_dir: str = ".run/nats/js",
    listen: str = "127.0.0.1:4222",
    passwords: Mapping[str, str] | None = None,
    sync_always: bool = True,
) -> str:
    """A complete single-node config with literal passwords (dev ones unless given)."""
    all_users = users(city)
    pw = {u.name: (passwords or {}).get(u.name) or dev_password(u) for u in all_users}
    sync = "\n  sync_interval: always" if sync_always else ""
    return (
        _header(city_dir, "A single-node NATS with JetStream for `make run`; DEV passwords.")
        + f"\nlisten: {_q(listen)}\n"
        + f"jetstream {{\n  store_dir: {_q(store_dir)}{sync}\n}}\n\n"
        + render_accounts(all_users, pw)
    )


def render_local_accounts(
    city: City, city_dir: Path, *, passwords: Mapping[str, str] | None = None
) -> str:
    """The accounts, users and permissions with literal passwords (dev ones unless given),
    and nothing else: each node of a local cluster includes it beside its own listen,
    JetStream and cluster settings (gridloop_devkit.devstack.LocalNatsCluster)."""
    all_users = users(city)
    pw = {u.name: (passwords or {}).get(u.name) or dev_password(u) for u in all_users}
    return (
        _header(city_dir, "NATS accounts and users for a local cluster's nodes to include.")
        + "\n"
        + render_accounts(all_users, pw)
    )


def passwords_from_env(
    all_users: Iterable[User], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """NATS_PW_<USER> from the environment where set; dev passwords elsewhere."""
    env = os.environ if env is None else env
    return {u.name: env.get(u.password_var) or dev_password(u) for u in all_users}


def generated_files(city_dir: Path = DEFAULT_CITY) -> dict[Path, str]:
    """Every file this tool owns, with the content it should have."""
    city = read_city(city_dir)
    return {
        AUTH_CONF: render_auth_conf(city, city_dir),
        DEV_PASSWORDS: render_dev_passwords(city, city_dir),
        LOCAL_CONF: render_local_conf(city, city_dir),
    }


def stale_files(city_dir: Path = DEFAULT_CITY) -> list[Path]:
    """The generated files whose content differs from what the city data gives."""
    return [
        path
        for path, text in generated_files(city_dir).items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def secret_keys(city: City) -> list[str]:
    """The keys Secret gridloop-nats-auth must hold."""
    return [*(u.password_var for u in users(city)), ROUTE_PASSWORD_KEY]


def new_secret(city: City, namespace: str) -> str:
    """A Secret manifest with a fresh random password for every user (production)."""
    data = {key: secrets.token_urlsafe(24) for key in secret_keys(city)}
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--city", type=Path, default=DEFAULT_CITY, help="the city directory")
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    parser.add_argument(
        "--secret-keys", action="store_true", help=f"print the keys of Secret {SECRET_NAME}"
    )
    parser.add_argument(
        "--new-secret",
        metavar="NAMESPACE",
        nargs="?",
        const="gridloop",
        help=f"print a Secret {SECRET_NAME} with random passwords",
    )
    parser.add_argument("--local-out", type=Path, help="write a runnable local config here")
    parser.add_argument(
        "--local-accounts-out",
        type=Path,
        help="write the accounts alone here, for each node of a local cluster to include",
    )
    parser.add_argument("--store-dir", default=".run/nats/js", help="JetStream dir (--local-out)")
    parser.add_argument("--listen", default="127.0.0.1:4222", help="listen address (--local-out)")
    args = parser.parse_args(argv)

    try:
        city = read_city(args.city)
    except CityDataError as exc:
        print(f"gen_nats_config: {exc}", file=sys.stderr)
        return 2
    for warning in city.warnings:
        print(f"gen_nats_config: warning: {warning}", file=sys.stderr)

    if args.secret_keys:
        print("\n".join(secret_keys(city)))
        return 0
    if args.new_secret:
        print(new_secret(city, args.new_secret), end="")
        return 0
    if args.local_accounts_out:
        args.local_accounts_out.parent.mkdir(parents=True, exist_ok=True)
        args.local_accounts_out.write_text(
            render_local_accounts(city, args.city, passwords=passwords_from_env(users(city))),
            encoding="utf-8",
        )
        return 0
    if args.local_out:
        all_users = users(city)
        args.local_out.parent.mkdir(parents=True, exist_ok=True)
        args.local_out.write_text(
            render_local_conf(
                city,
                args.city,
                store_dir=args.store_dir,
                listen=args.listen,
                passwords=passwords_from_env(all_users),
            ),
            encoding="utf-8",
        )
        return 0

    files = generated_files(args.city)
    if args.check:
        stale = stale_files(args.city)
        for path in stale:
            print(
                f"gen_nats_config: {path.relative_to(ROOT)} is stale: "
                "run `python tools/gen_nats_config.py`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"gen_nats_config: wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
