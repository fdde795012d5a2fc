"""The GCRA limiter and the failure backoff, against the real Valkey (and a dead port)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from db.rate_limits import (
    BackoffPolicy,
    FailureBackoff,
    Quota,
    RateLimiter,
    failures_key,
    rate_key,
)
from db.runtime import Runtime
from infra.servers import Servers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _dead_redis(port: int | None = None, *, password: str | None = None) -> Redis:
    """A client for a port nothing listens on; no retries, so each failure is quick."""
    return Redis(
        host="127.0.0.1",
        port=port or _free_port(),
        password=password,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=0.5,
    )


async def test_burst_then_refusal_with_retry_after(runtime: Runtime) -> None:
    limiter = RateLimiter(runtime.redis)
    quota = Quota("t-burst", capacity=3, refill_per_second=2)
    remaining = []
    for _ in range(3):
        decision = await limiter.acquire([(quota, "alice")])
        assert decision.allowed
        assert decision.retry_after == 0.0
        remaining.append(decision.remaining)
    # Each acquire leaves about one point fewer (a little refills in between).
    assert [round(value) for value in remaining] == [2, 1, 0]
    refused = await limiter.acquire([(quota, "alice")])
    assert not refused.allowed
    assert refused.remaining == 0.0
    # One point at 2 points/s: about half a second, less whatever refilled meanwhile.
    assert 0.35 < refused.retry_after <= 0.5
    # Another subject has its own bucket.
    assert (await limiter.acquire([(quota, "bob")])).allowed
    # The key expires when the bucket is full again: 3 points at 2/s = 1.5 s at most.
    ttl_ms = await runtime.redis.pttl(rate_key(quota, "alice"))
    assert 1000 < ttl_ms <= 1500


async def test_cost_weighted_and_refused_costs_nothing(runtime: Runtime) -> None:
    limiter = RateLimiter(runtime.redis)
    quota = Quota("t-cost", capacity=10, refill_per_second=1)
    first = await limiter.acquire([(quota, "s")], cost=7)
    assert first.allowed
    assert 2.9 < first.remaining <= 3.0
    refused = await limiter.acquire([(quota, "s")], cost=5)
    assert not refused.allowed
    assert 1.9 < refused.retry_after <= 2.0
    # The refusal took nothing: 3 points are still there.
    assert (await limiter.acquire([(quota, "s")], cost=3)).allowed
    assert not (await limiter.acquire([(quota, "s")], cost=1)).allowed


async def test_refill_over_time(runtime: Runtime) -> None:
    limiter = RateLimiter(runtime.redis)
    quota = Quota("t-refill", capacity=2, refill_per_second=10)
    assert (await limiter.acquire([(quota, "s")])).allowed
    assert (await limiter.acquire([(quota, "s")])).allowed
    refused = await limiter.acquire([(quota, "s")])
    assert not refused.allowed
    await asyncio.sleep(refused.retry_after + 0.02)
    assert (await limiter.acquire([(quota, "s")])).allowed
    assert not (await limiter.acquire([(quota, "s")])).allowed
    # After the full refill time the whole burst is back, and the key is gone.
    await asyncio.sleep(quota.full_refill_seconds + 0.05)
    assert await runtime.redis.exists(rate_key(quota, "s")) == 0
    peeked = await limiter.peek([(quota, "s")])
    assert peeked.allowed
    assert peeked.remaining == pytest.approx(2.0)
    assert (await limiter.acquire([(quota, "s")], cost=2)).allowed


async def test_all_or_nothing_across_keys(runtime: Runtime) -> None:
    limiter = RateLimiter(runtime.redis)
    roomy = Quota("t-roomy", capacity=5, refill_per_second=0.01)
    tight = Quota("t-tight", capacity=1, refill_per_second=0.5)
    both = [(roomy, "ip-1"), (tight, "viewer-1")]
    first = await limiter.acquire(both)
    assert first.allowed
    # The tightest bucket after the request: the one-point quota, now empty.
    assert first.remaining < 0.1
    refused = await limiter.acquire(both)
    assert not refused.allowed
    # The tight bucket decides the wait: one point at 0.5/s.
    assert 1.8 < refused.retry_after <= 2.0
    # The refused charge left the roomy bucket as it was: 4 points, not 3.
    left = await limiter.peek([(roomy, "ip-1")])
    assert left.remaining == pytest.approx(4.0, abs=0.01)
    # Costs above a quota's capacity can never pass; they are refused, touching nothing.
    impossible = await limiter.acquire([(roomy, "ip-2")], cost=6)
    assert not impossible.allowed
    assert impossible.retry_after == roomy.full_refill_seconds
    assert await runtime.redis.exists(rate_key(roomy, "ip-2")) == 0


async def test_processes_share_buckets(runtime: Runtime, servers: Servers) -> None:
    """Two limiters on two clients (two processes) draw from one bucket."""
    other = Redis.from_url(servers.redis_url)
    try:
        quota = Quota("t-shared", capacity=2, refill_per_second=0.1)
        one, two = RateLimiter(runtime.redis), RateLimiter(other)
        assert (await one.acquire([(quota, "s")])).allowed
        assert (await two.acquire([(quota, "s")])).allowed
        assert not (await one.acquire([(quota, "s")])).allowed
        assert not (await two.acquire([(quota, "s")])).allowed
    finally:
        await other.aclose()


async def test_falls_back_in_process_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = _dead_redis()
    limiter = RateLimiter(dead, retry_interval=0.0)
    quota = Quota("t-fallback", capacity=2, refill_per_second=4)
    with caplog.at_level(logging.WARNING, logger="db.rate_limits"):
        assert (await limiter.acquire([(quota, "s")])).allowed
        assert limiter.degraded
        assert (await limiter.acquire([(quota, "s")])).allowed
        refused = await limiter.acquire([(quota, "s")])
        assert not refused.allowed
        assert 0.2 < refused.retry_after <= 0.25
        # All or nothing in process too.
        other = Quota("t-fallback-2", capacity=5, refill_per_second=1)
        assert not (await limiter.acquire([(other, "s"), (quota, "s")])).allowed
        assert (await limiter.peek([(other, "s")])).remaining == pytest.approx(5.0)
        await asyncio.sleep(refused.retry_after + 0.02)
        assert (await limiter.acquire([(quota, "s")])).allowed
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # One warning when it switched, none per request.
    assert len(warnings) == 1
    assert "rate limits" in warnings[0].getMessage()
    await dead.aclose()


@contextlib.asynccontextmanager
async def _tcp_proxy(port: int, target_host: str, target_port: int) -> AsyncIterator[None]:
    """A plain TCP relay to the real Valkey: Redis 'comes back' when it starts."""

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        for task in (
            asyncio.create_task(relay(reader, upstream_writer)),
            asyncio.create_task(relay(upstream_reader, writer)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await server.wait_closed()


async def test_switches_back_to_redis_silently(
    runtime: Runtime, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    target = urlsplit(servers.redis_url)
    assert target.hostname is not None
    assert target.port is not None
    port = _free_port()
    # Later proxied to the real server, which asks for its password.
    client = _dead_redis(port, password=target.password)
    limiter = RateLimiter(client, retry_interval=0.05)
    quota = Quota("t-back", capacity=5, refill_per_second=0.01)
    with caplog.at_level(logging.INFO, logger="db.rate_limits"):
        assert (await limiter.acquire([(quota, "s")])).allowed
        assert limiter.degraded
        assert await runtime.redis.exists(rate_key(quota, "s")) == 0
        async with _tcp_proxy(port, target.hostname, target.port):
            await asyncio.sleep(0.06)
            decision = await limiter.acquire([(quota, "s")])
            assert decision.allowed
            assert not limiter.degraded
            # Back in Redis: the bucket there starts full (the in-process one is left).
            assert decision.remaining == pytest.approx(4.0, abs=0.01)
            assert await runtime.redis.exists(rate_key(quota, "s")) == 1
            await client.aclose()
    assert [r.levelname for r in caplog.records if r.name == "db.rate_limits"] == ["WARNING"]


POLICY = BackoffPolicy(free_failures=2, base_delay_seconds=0.2, max_delay_seconds=0.5)


async def test_failure_backoff_grows_caps_and_resets(runtime: Runtime) -> None:
    backoff = FailureBackoff(runtime.redis, name="t-login")
    assert await backoff.begin_attempt("acct", POLICY) == 0.0  # failure 1: free
    assert await backoff.begin_attempt("acct", POLICY) == 0.0  # failure 2: 0.2 s delay
    wait = await backoff.begin_attempt("acct", POLICY)
    assert 0.15 < wait <= 0.2
    # A refused attempt counts nothing.
    assert await backoff.failures("acct") == 2
    await asyncio.sleep(wait + 0.01)
    assert await backoff.begin_attempt("acct", POLICY) == 0.0  # failure 3: 0.4 s
    wait = await backoff.begin_attempt("acct", POLICY)
    assert 0.35 < wait <= 0.4
    await asyncio.sleep(wait + 0.01)
    assert await backoff.begin_attempt("acct", POLICY) == 0.0  # failure 4: capped, 0.5 s
    wait = await backoff.begin_attempt("acct", POLICY)
    assert 0.45 < wait <= 0.5
    # The key lives for the delay plus the memory.
    ttl_s = await runtime.redis.ttl(failures_key("t-login", "acct"))
    assert POLICY.memory_seconds - 5 < ttl_s <= POLICY.memory_seconds + 1
    await backoff.succeeded("acct")
    assert await backoff.failures("acct") == 0
    assert await backoff.begin_attempt("acct", POLICY) == 0.0
    assert POLICY.delay_after(1) == 0.0
    assert POLICY.delay_after(10_000) == POLICY.max_delay_seconds


async def test_failure_backoff_in_process_when_redis_is_down() -> None:
    dead = _dead_redis()
    backoff = FailureBackoff(dead, name="t-login", retry_interval=0.0)
    assert await backoff.begin_attempt("acct", POLICY) == 0.0
    assert backoff.degraded
    assert await backoff.begin_attempt("acct", POLICY) == 0.0
    wait = await backoff.begin_attempt("acct", POLICY)
    assert 0.15 < wait <= 0.2
    assert await backoff.failures("acct") == 2
    await backoff.succeeded("acct")
    assert await backoff.begin_attempt("acct", POLICY) == 0.0
    await dead.aclose()


async def test_local_store_is_bounded() -> None:
    dead = _dead_redis()
    limiter = RateLimiter(dead, retry_interval=math.inf, local_max_entries=100)
    quota = Quota("t-bounded", capacity=10, refill_per_second=1)
    started = time.monotonic()
    for subject in range(1000):
        assert (await limiter.acquire([(quota, str(subject))])).allowed
    assert len(limiter._local) <= 100
    assert time.monotonic() - started < 2
    await dead.aclose()
