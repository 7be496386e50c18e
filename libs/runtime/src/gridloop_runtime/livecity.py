"""Live reload of the city's data: each service process hears `city.updated`
(`gridloop.city.updated.v1`, core NATS, so every replica hears it), loads the announced
version off the event loop, and swaps to it in one step — or refuses it, logs and counts why,
and keeps the version it has.

What a swap means is the service's business (its `swap` callback replaces the objects its
rules read, synchronously, so no message is handled half on one version, half on the other);
how a version is found and validated is the city package's (`gridloop_city.versions`), passed
in as `load`. Work already done under the old version stays as it was: a task dispatched
keeps its unit and deadline; only what happens next follows the new data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import structlog
from gridloop_contracts import decode
from gridloop_contracts.city import CityUpdatedV1
from gridloop_contracts.subjects import city as city_subject
from nats.aio.msg import Msg
from prometheus_client import Counter, Gauge

log = structlog.get_logger(__name__)

T = TypeVar("T")

SUBJECT = city_subject(CityUpdatedV1.subject_token)

CITY_RELOADS = Counter(
    "gridloop_city_reloads_total",
    "Announced versions of the city's data, by outcome (applied, refused, same)",
    ["service", "outcome"],
)
CITY_VERSION = Gauge(
    "gridloop_city_version_info",
    "The city data version in use (1 for the current)",
    ["service", "version"],
)


class LiveCity(Generic[T]):
    """The city data one service process works with, and how it changes version."""

    def __init__(
        self,
        service: str,
        data: T,
        version: str | None,
        *,
        load: Callable[[str, str], T] | None,
        swap: Callable[[T], None],
    ) -> None:
        self.service = service
        self.data = data
        self.version = version
        self._load = load  # (version, digest) -> data, raising ValueError when refused
        self._swap = swap
        self._lock = asyncio.Lock()
        CITY_VERSION.labels(service, version or "initial").set(1)

    async def apply(self, event: CityUpdatedV1) -> bool:
        """Load, validate and swap to an announced version; False (and the old data stays)
        when it is refused. Announcements are handled one at a time, in order."""
        async with self._lock:
            if event.version == self.version:
                CITY_RELOADS.labels(self.service, "same").inc()
                return True
            if self._load is None:
                return self._refuse(event, "this process has no CITY_VERSIONS_DIR")
            try:
                data = await asyncio.to_thread(self._load, event.version, event.digest)
            except (ValueError, OSError) as exc:  # CityDataError is a ValueError
                return self._refuse(event, str(exc))
            self._swap(data)  # one synchronous step: no handler runs in between
            CITY_VERSION.labels(self.service, self.version or "initial").set(0)
            self.data, self.version = data, event.version
            CITY_VERSION.labels(self.service, event.version).set(1)
            CITY_RELOADS.labels(self.service, "applied").inc()
            log.info("city data swapped", service=self.service, version=event.version)
            return True

    def _refuse(self, event: CityUpdatedV1, reason: str) -> bool:
        CITY_RELOADS.labels(self.service, "refused").inc()
        log.error(
            "city data version refused; the old one stays",
            service=self.service,
            version=event.version,
            current=self.version,
            reason=reason,
        )
        return False

    async def on_message(self, msg: Msg) -> None:
        try:
            env = decode(msg.headers, msg.data)
            if env.type != CityUpdatedV1.type_name:
                raise ValueError(f"not a {CityUpdatedV1.type_name}: {env.type}")
            event = CityUpdatedV1.model_validate(env.data)
        except Exception as exc:  # a malformed announcement changes nothing
            CITY_RELOADS.labels(self.service, "refused").inc()
            log.error("malformed city announcement ignored", service=self.service, error=str(exc))
            return
        await self.apply(event)

    def background(self) -> Callable[[Any, asyncio.Event], Awaitable[None]]:
        """A `ServiceDefinition.background` task: listen on `city.updated` until stopped."""

        async def city_updates(rt: Any, stop: asyncio.Event) -> None:
            sub = await rt.nc.subscribe(SUBJECT, cb=self.on_message)
            try:
                await stop.wait()
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

        return city_updates


async def announce(nc: Any, version: str, digest: str, *, note: str = "") -> CityUpdatedV1:
    """Tell every service process that `version` (released, hashing to `digest`) is in force."""
    from datetime import UTC, datetime

    from gridloop_contracts import Envelope, to_binary

    event = CityUpdatedV1(version=version, digest=digest, released_at=datetime.now(UTC), note=note)
    headers, payload = to_binary(Envelope.of(event, source="/gridloop/admin"))
    await nc.publish(SUBJECT, payload, headers=headers)
    await nc.flush()
    return event


def main(argv: list[str] | None = None) -> int:
    """`python -m gridloop_runtime.livecity VERSION DIGEST [NOTE]`: announce a version
    released with `gridloop-city release` (NATS_URL, NATS_USER, NATS_PASSWORD as the services)."""
    import os
    import sys

    import nats

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(main.__doc__, file=sys.stderr)
        return 2

    async def run() -> None:
        nc = await nats.connect(
            os.environ.get("NATS_URL", "nats://127.0.0.1:4222").split(","),
            user=os.environ.get("NATS_USER") or None,
            password=os.environ.get("NATS_PASSWORD") or None,
        )
        try:
            await announce(nc, args[0], args[1], note=args[2] if len(args) == 3 else "")
        finally:
            await nc.close()

    asyncio.run(run())
    print(f"announced city version {args[0]} on {SUBJECT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
