"""Real servers for every test: embedded PostgreSQL and Valkey in a temporary directory,
or the external ones that ``APERTURE_DATABASE_URLS`` / ``APERTURE_REDIS_URL`` name."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, create_engine

from aperture.cli import uvicorn_options
from db.explore.store import MODEL_PREFIX
from db.instrumentation import instrument_sqlalchemy
from db.runtime import Runtime, shard_map_for, start_servers
from db.session import ShardSessions
from db.shards import ShardMap, shard_schema, to_sqlalchemy_url
from domain.accounts.passwords import configure_password_hashing
from domain.features import shard_tables
from domain.state import AppState
from graphql_api.app import create_app
from graphql_api.compiled import runs as compiled_runs
from infra.servers import Servers, servers_environment
from infra.settings import Settings
from migrations.runner import migrate
from tests.helpers import GraphQLClient

# Argon2 at its production cost (64 MiB, 3 passes) would dominate the suite's run time.
configure_password_hashing(memory_cost_kib=1024, time_cost=1)


def pytest_configure(config: pytest.Config) -> None:
    # xdist's load scheduling hands a worker a quarter of its share of the tests up front,
    # in collection order, so the slow tests put first below would all go to one worker.
    # One at a time, each worker takes the next test when it is free: the slow ones spread.
    if config.pluginmanager.hasplugin("xdist") and config.getoption("maxschedchunk") is None:
        config.option.maxschedchunk = 1


def _is_slow(item: pytest.Item) -> bool:
    """Marked slow, or driving processes of its own (`aperture` commands, servers, workers)."""
    return item.get_closest_marker("slow") is not None or "project_env" in getattr(
        item, "fixturenames", ()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, the rest in their order. On two workers, a test of half a minute
    that starts last keeps the run going while the other worker idles; started first, the
    quick tests fill in around it."""
    items.sort(key=lambda item: not _is_slow(item))


@pytest.fixture
def state(http: httpx.AsyncClient) -> AppState:
    """The AppState of the app behind ``http``/``gql``."""
    transport = http._transport
    assert isinstance(transport, httpx.ASGITransport)
    app_state: AppState = transport.app.state.aperture  # type: ignore[attr-defined]
    return app_state


# Statement counts are asserted on without an app built first (create_app also does it).
instrument_sqlalchemy()


@pytest.fixture(scope="session")
def test_data_dir() -> Iterator[Path]:
    # Short path: a Unix socket path must stay under 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="apt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(test_data_dir: Path) -> Settings:
    # Every test client shares one address: the edge's per-IP limits would trip across
    # tests. The rate-limit tests tune them back down on their own app.
    return Settings(
        data_dir=test_data_dir,
        rate_limit_ip_capacity=10**9,
        rate_limit_viewer_capacity=10**9,
        login_ip_capacity=10**6,
        signup_ip_capacity=10**6,
        # Every document a plan covers is answered by the stock executor and by its plan,
        # which must agree byte for byte (checked after each test, below).
        compiled_execution="verify",
    )


@pytest.fixture(autouse=True)
def compiled_plans_agree() -> Iterator[None]:
    """No compiled plan disagreed with the stock executor during the test."""
    before = len(compiled_runs.mismatches)
    yield
    assert compiled_runs.mismatches[before:] == []


@pytest.fixture(scope="session")
def servers(settings: Settings) -> Iterator[Servers]:
    started = start_servers(settings, postgres_cleanup="delete")
    yield started
    started.stop()


@pytest.fixture(scope="session")
def shard_map(settings: Settings, servers: Servers) -> ShardMap:
    shard_map = shard_map_for(settings, servers)
    migrate(shard_map)
    return shard_map


_cleaning_engines: dict[str, Engine] = {}


def empty_database(shard_map: ShardMap, index: int) -> None:
    """Delete every row of every shard on database ``index``, in one round trip. DELETE,
    not TRUNCATE: on tables this small it is five times faster (TRUNCATE makes new files
    for every table and index), and it runs before every test."""
    dsn = shard_map.database_urls[index]
    engine = _cleaning_engines.get(dsn)
    if engine is None:
        engine = create_engine(to_sqlalchemy_url(dsn), pool_size=1, pool_pre_ping=True)
        _cleaning_engines[dsn] = engine
    tables = shard_tables()
    statements = "; ".join(
        f"DELETE FROM {shard_schema(shard)}.{table}"
        for shard in shard_map.shards_on(index)
        for table in tables
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(statements)


def empty_every_table(shard_map: ShardMap) -> None:
    """Delete every row of every shard, one round trip per database."""
    for index in range(len(shard_map.database_urls)):
        empty_database(shard_map, index)


async def _delete_explore_models(runtime: Runtime) -> None:
    # Explore's models outlive Redis in the object store: no test serves another's.
    await runtime.object_store.delete(await runtime.object_store.list_keys(prefix=MODEL_PREFIX))


@pytest.fixture
async def runtime(
    settings: Settings, servers: Servers, shard_map: ShardMap
) -> AsyncIterator[Runtime]:
    # Each database is emptied on a thread of its own while this one connects: the DELETEs
    # wait on PostgreSQL, connecting is mostly Python (the S3 client's set-up).
    loop = asyncio.get_running_loop()
    emptying = [
        loop.run_in_executor(None, empty_database, shard_map, index)
        for index in range(len(shard_map.database_urls))
    ]
    runtime = Runtime.connect(settings, servers)
    await asyncio.gather(*emptying, runtime.redis.flushdb(), _delete_explore_models(runtime))
    yield runtime
    await runtime.close()


@pytest.fixture
async def tuned_gql(
    settings: Settings, servers: Servers, runtime: Runtime
) -> AsyncIterator[Callable[..., Awaitable[tuple[GraphQLClient, AppState]]]]:
    """A client on an app whose settings differ (thresholds, capacities) from the default."""
    opened: list[tuple[Runtime, httpx.AsyncClient]] = []

    async def make(**overrides: object) -> tuple[GraphQLClient, AppState]:
        tuned = Runtime.connect(settings.model_copy(update=overrides), servers)
        app = create_app(tuned, close_runtime=False)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://aperture.test"
        )
        opened.append((tuned, client))
        state: AppState = app.state.aperture
        return GraphQLClient(client), state

    yield make
    for tuned, client in opened:
        await client.aclose()
        await tuned.close()


@pytest.fixture
def app_state(runtime: Runtime) -> AppState:
    state: AppState = create_app(runtime, close_runtime=False).state.aperture
    return state


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime, close_runtime=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://aperture.test") as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


@pytest.fixture
def sessions(runtime: Runtime) -> ShardSessions:
    return ShardSessions(runtime.databases)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(settings: Settings, servers: Servers, **options: Any) -> Iterator[str]:
    """The real app over real HTTP, in a thread with its own event loop, with the same
    server options as `aperture serve` unless ``options`` replace some."""
    port = _free_port()
    # Media URLs point at the app itself unless a CDN is configured: at this port.
    settings = settings.model_copy(update={"port": port})
    holder: dict[str, uvicorn.Server] = {}

    def serve() -> None:
        async def main() -> None:
            runtime = Runtime.connect(settings, servers)
            config = uvicorn.Config(
                create_app(runtime),
                host="127.0.0.1",
                port=port,
                **{**uvicorn_options(settings), **options},
            )
            holder["server"] = uvicorn.Server(config)
            await holder["server"].serve()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        server = holder.get("server")
        if server is not None and server.started:
            break
        time.sleep(0.05)
    else:
        raise RuntimeError("live server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        holder["server"].should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server_url(settings: Settings, servers: Servers, shard_map: ShardMap) -> Iterator[str]:
    with serve_in_thread(settings, servers) as url:
        yield url


@pytest.fixture(scope="session")
def project_env() -> dict[str, str]:
    """Environment for CLI subprocesses, without any APERTURE_* the test run was given."""
    return {k: v for k, v in os.environ.items() if not k.startswith("APERTURE_")}


PROJECT_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def server_processes(
    servers: Servers, project_env: dict[str, str], *, count: int, **settings: str
) -> Iterator[list[str]]:
    """``count`` uvicorn processes over the same PostgreSQL and Redis, running no jobs,
    with ``APERTURE_<NAME>`` settings from ``settings``; yields their base URLs."""
    env = {
        **project_env,
        **servers_environment(servers),
        "APERTURE_SERVE_RUNS_WORKERS": "false",
        **{f"APERTURE_{name.upper()}": value for name, value in settings.items()},
    }
    ports = [_free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "aperture.web:app_from_environment",
                "--factory",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=PROJECT_ROOT,
            env=env,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        # Generous: a loaded 2-core machine starts two interpreters slowly.
        deadline = time.monotonic() + 90
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server process did not start")
                time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
