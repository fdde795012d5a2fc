"""Fixtures for domain tests: the domain's functions called directly, on the same embedded
PostgreSQL and Valkey as the rest of the suite, with no HTTP and no GraphQL.

The root ``runtime`` truncates every table and flushes Redis before each test; here one
runtime serves the whole folder and nothing is truncated. Each test makes its own
accounts with unique names (``tests/domain/support.py``), so what other tests left behind
cannot change its answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from db.instrumentation import instrument_sqlalchemy
from db.runtime import Runtime
from db.shards import ShardMap
from domain.jobs import load_features
from domain.state import AppState
from infra.servers import Servers
from infra.settings import Settings
from tests.domain.support import FrozenClock


@pytest.fixture(scope="package", autouse=True)
def features() -> None:
    """Every feature's event handlers registered, as in a running process: the inline ones
    (inboxes, notifications, media releases, Explore's log) run as a write's events are
    relayed. Without it, which ran here would depend on what another test imported."""
    load_features()


@pytest.fixture(scope="package")
async def runtime(
    settings: Settings, servers: Servers, shard_map: ShardMap
) -> AsyncIterator[Runtime]:
    # The app does this in create_app; without it count_work sees no SQL at all.
    instrument_sqlalchemy()
    runtime = Runtime.connect(settings, servers)
    yield runtime
    await runtime.close()


@pytest.fixture(scope="package")
def state(runtime: Runtime) -> Iterator[AppState]:
    app_state = AppState(runtime)
    yield app_state
    app_state.shutdown()


@pytest.fixture
def clock(state: AppState) -> Iterator[FrozenClock]:
    """The time stopped at now for the test, to move by hand; the real clock after."""
    real = state.clock
    frozen = FrozenClock(real())
    state.clock = frozen
    try:
        yield frozen
    finally:
        state.clock = real
