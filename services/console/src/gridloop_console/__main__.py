"""Entry point: `python -m gridloop_console` serves the console."""

from __future__ import annotations

import logging

import uvicorn
from gridloop_runtime import logging as glog

from .app import Console, create_app
from .settings import ConsoleSettings


def main() -> None:
    settings = ConsoleSettings()
    glog.setup(settings.service_name, settings.log_level, settings.log_json)
    # One line per forwarded request is too many; failures are logged by the proxy.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(Console.load(settings))
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        loop="uvloop",
        log_config=None,
        access_log=False,
        # Live event streams never end by themselves: give them a moment, then close them.
        timeout_graceful_shutdown=int(min(settings.shutdown_grace_s, 3)),
    )


if __name__ == "__main__":
    main()
