"""Reading a whole JetStream stream fast, for the replay: every message from the first to the
last one at the start, in big pull batches, without acks.

nats-py builds a message object, parses its headers with the e-mail parser and queues it for
each message — about 10,000 messages a second, far below what a replay of millions of events
needs. The data plane here is a second, plain connection that speaks the NATS protocol
itself: it sends pull requests for an ephemeral consumer (created and deleted through
nats-py) and cuts the replies out of large socket reads. Where it cannot connect the same
way as the service's own connection (TLS, credentials files, nkeys), `read` falls back to
nats-py's pull subscription; both yield the same batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from urllib.parse import unquote

import nats.errors
import orjson
import structlog
from gridloop_runtime.bus import quick_fetch
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

log = structlog.get_logger(__name__)

# (stream sequence, headers, body): headers keep only what the replay reads from them
# (`ce-id`, `ce-source`, `ce-type`, `ce-subject`, `content-type`) unless a message lacks
# some, then all of them.
Message = tuple[int, dict[str, str], bytes]

WANTED = ("ce-id", "ce-source", "ce-type")
_HEADER = re.compile(r"\r\n(ce-id|ce-source|ce-type|ce-subject|content-type): ([^\r]*)")
_READ = 1 << 20


class Unsupported(Exception):
    """The plain connection cannot log in the way the service's connection does."""


def parse_headers(block: bytes) -> dict[str, str]:
    """A NATS header block (`NATS/1.0\\r\\nk: v\\r\\n…\\r\\n\\r\\n`): the replay's keys by one
    regular expression; every header when the CloudEvents ones are not all there."""
    text = block.decode()
    headers = dict(_HEADER.findall(text))
    if len(headers) < 3 or not all(k in headers for k in WANTED):
        headers = {}
        for line in text.split("\r\n")[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip()] = value.strip()
    return headers


async def read(
    js: JetStreamContext, stream: str, subjects: str, *, batch: int = 20_000
) -> AsyncIterator[list[Message]]:
    """Every message of `stream` up to its last one now, in stream order, in batches."""
    info = await js.stream_info(stream)
    last = int(info.state.last_seq or 0)
    if last == 0 or int(info.state.messages or 0) == 0:
        return
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
        max_ack_pending=-1,
        filter_subject=subjects,
        num_replicas=1,
        mem_storage=True,
    )
    consumer = await js.add_consumer(stream, config)
    name = consumer.name
    try:
        try:
            reader = await _PlainReader.open(js, stream, name)
        except (Unsupported, OSError) as exc:
            log.info("replay reads through nats-py", reason=str(exc))
            async for msgs in _read_nats_py(js, stream, name, last, batch):
                yield msgs
            return
        try:
            async for msgs in reader.pull(last, batch):
                yield msgs
        finally:
            await reader.close()
    finally:
        with contextlib.suppress(Exception):  # an ephemeral consumer also expires by itself
            await js.delete_consumer(stream, name)


class _PlainReader:
    def __init__(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, stream: str, consumer: str
    ) -> None:
        self.r = r
        self.w = w
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = f"_INBOX.{secrets.token_hex(11)}"

    @classmethod
    async def open(cls, js: JetStreamContext, stream: str, consumer: str) -> _PlainReader:
        nc = js._nc  # the service's connection: its server and how it logged in
        url = nc.connected_url
        opts = nc.options
        if url is None or url.scheme not in ("nats", "") or opts.get("tls"):
            raise Unsupported("not a plain nats:// connection")
        if opts.get("user_credentials") or opts.get("nkeys_seed") or opts.get("signature_cb"):
            raise Unsupported("credentials other than user/password or token")
        host, port = url.hostname or "127.0.0.1", url.port or 4222
        r, w = await asyncio.open_connection(host, port, limit=_READ * 4)
        try:
            line = await r.readuntil(b"\r\n")
            if not line.startswith(b"INFO "):
                raise Unsupported("no INFO from the server")
            info = orjson.loads(line[5:])
            if info.get("tls_required") or info.get("nonce"):
                raise Unsupported("the server wants TLS or nkeys")
            connect: dict[str, object] = {
                "verbose": False,
                "pedantic": False,
                "headers": True,
                "no_responders": True,
                "protocol": 1,
                "lang": "python",
                "version": "gridloop-replay",
                "name": "scoring-replay-reader",
            }
            user = url.username or opts.get("user")
            password = url.password or opts.get("password")
            token = opts.get("token")
            if user:
                connect["user"] = unquote(user)
                connect["pass"] = unquote(password or "")
            elif token:
                connect["auth_token"] = token
            self = cls(r, w, stream, consumer)
            w.write(b"CONNECT " + orjson.dumps(connect) + b"\r\nPING\r\n")
            await w.drain()
            while True:
                line = await r.readuntil(b"\r\n")
                if line.startswith(b"PONG"):
                    break
                if line.startswith(b"-ERR"):
                    raise Unsupported(line.decode().strip())
            w.write(f"SUB {self.inbox}.* 1\r\n".encode())
            return self
        except BaseException:
            w.close()
            raise

    def _request(self, n: int, batch: int) -> None:
        body = orjson.dumps({"batch": batch, "expires": 30_000_000_000})
        self.w.write(
            f"PUB {self.next_subject} {self.inbox}.{n} {len(body)}\r\n".encode() + body + b"\r\n"
        )

    async def pull(self, last: int, batch: int) -> AsyncIterator[list[Message]]:
        """Keep two pull requests' worth of messages in flight until `last` has arrived."""
        requests = 0
        outstanding = 0
        for _ in range(2):
            self._request(requests, batch)
            requests += 1
            outstanding += batch
        buf = b""
        seq = 0
        while seq < last:
            chunk = await self.r.read(_READ)
            if not chunk:
                raise ConnectionError("the server closed the replay connection")
            buf = buf + chunk if buf else chunk
            out: list[Message] = []
            pos = 0
            size = len(buf)
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                if buf.startswith(b"HMSG ", pos):
                    parts = buf[pos + 5 : nl].split(b" ")
                    hlen = int(parts[-2])
                    end = nl + 2 + int(parts[-1])
                    if end + 2 > size:
                        break
                    start = nl + 2
                    if len(parts) == 5:  # subject sid reply hlen tlen: a message
                        tokens = parts[2].split(b".")
                        seq = int(tokens[-4])
                        out.append(
                            (seq, parse_headers(buf[start : start + hlen]), buf[start + hlen : end])
                        )
                        outstanding -= 1
                        pending = int(tokens[-1])
                        if seq >= last or pending == 0:
                            seq = max(seq, last)
                    else:  # a status: 408 (expired), 409 … the request is gone
                        status = buf[start : start + hlen]
                        if b" 404" in status or b" 408" in status or b" 409" in status:
                            outstanding = max(0, outstanding - batch)
                        if b" 404" in status and not out:
                            seq = max(seq, last)  # nothing left (deleted by limits)
                    pos = end + 2
                elif buf.startswith(b"PING", pos):
                    self.w.write(b"PONG\r\n")
                    pos = nl + 2
                elif buf.startswith(b"-ERR", pos):
                    raise ConnectionError(buf[pos:nl].decode())
                else:  # PONG, +OK, INFO
                    pos = nl + 2
            buf = buf[pos:]
            while outstanding < batch and seq < last:
                self._request(requests, batch)
                requests += 1
                outstanding += batch
            if out:
                yield out

    async def close(self) -> None:
        self.w.close()
        with contextlib.suppress(Exception):
            await self.w.wait_closed()


async def _read_nats_py(
    js: JetStreamContext, stream: str, consumer: str, last: int, batch: int
) -> AsyncIterator[list[Message]]:
    sub = quick_fetch(await js.pull_subscribe_bind(consumer, stream=stream))
    try:
        seq = 0
        while seq < last:
            try:
                msgs = await sub.fetch(min(batch, 2000), timeout=5.0)
            except (TimeoutError, nats.errors.TimeoutError):
                return  # the rest was deleted by the stream's limits meanwhile
            out: list[Message] = []
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                out.append((seq, dict(msg.headers or {}), msg.data))
            yield out
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
