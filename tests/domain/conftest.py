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

from aperture.runtime import Runtime, Servers
from aperture.settings import Settings
from db.instrumentation import instrument_sqlalchemy
from db.shards import ShardMap
from domain.state import AppState


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
    app_state.password_hashing.shutdown()
