"""Serving the console from the tracker process: uvicorn in a thread of its own.

The ingest's thread is never touched: the console reads through the store's readers
and changes through the service functions, each in its own transaction.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from tracker.clock import Clock
from tracker.config import WebConfig
from tracker.web.app import BrokerState, StoreLike, WebSettings, create_app

log = logging.getLogger(__name__)


class LinkState:
    """The broker connection as the health check reports it."""

    def __init__(self, link: Any) -> None:
        self.link = link

    def broker_state(self) -> str:
        connected = getattr(self.link, "connected", None)
        if connected is None:
            return "unknown"
        return "connected" if connected.is_set() else "disconnected"


def secret_key(path: Path) -> bytes:
    """The console's signing key: read, or made once (mode 0600) and kept."""
    try:
        data = path.read_bytes().strip()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


class WebServer:
    """Start and stop the console beside a running tracker."""

    def __init__(
        self,
        cfg: WebConfig,
        store: StoreLike,
        clock: Clock,
        *,
        live: BrokerState | None = None,
        rules: Any = None,
        sim: Any = None,
    ) -> None:
        import uvicorn

        settings = WebSettings(
            host=cfg.host,
            port=cfg.port,
            secret_key=secret_key(cfg.secret_key_file),
            session_hours=cfg.session_hours,
            cookie_secure=cfg.cookie_secure,
        )
        self.app = create_app(store, clock, live=live, settings=settings, rules=rules, sim=sim)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=cfg.host,
                port=cfg.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="console", daemon=True)

    def start(self) -> None:
        self.thread.start()
        log.info("console on http://%s:%d/", self.server.config.host, self.server.config.port)

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    def stop(self) -> None:
        self.app.state.stopping.set()  # ends the live streams
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)
