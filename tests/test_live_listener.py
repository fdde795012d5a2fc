"""A socket's listener: events in order, a waiting socket woken by the next one, and a
socket too slow to keep up told to catch up (one GAP) instead of growing without bound;
and the bus behind them, on real Valkey, surviving a failed subscribe."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from db.realtime import LISTENER_BACKLOG, Gap, Listener, RealtimeBus
from infra.servers import Servers


async def test_events_come_in_order_and_wake_a_waiting_socket() -> None:
    listener = Listener(user_id=1)
    listener.offer(b"first")
    waiting = asyncio.create_task(asyncio.wait_for(listener.get(), 1))
    assert await waiting == b"first"
    later = asyncio.create_task(asyncio.wait_for(listener.get(), 1))
    await asyncio.sleep(0)
    assert not later.done()
    listener.offer(b"second")
    listener.offer(b"third")
    assert await later == b"second"
    assert await listener.get() == b"third"


async def test_a_socket_that_falls_behind_gets_one_gap_and_then_what_came_after() -> None:
    listener = Listener(user_id=1)
    for number in range(LISTENER_BACKLOG + 1):
        listener.offer(str(number).encode())
    listener.offer(b"after")
    assert await listener.get() is Gap
    assert await listener.get() == b"after"
    with pytest.raises(TimeoutError):  # nothing more was offered
        await asyncio.wait_for(listener.get(), 0.05)


async def test_the_bus_recovers_when_redis_py_fails_while_subscribing(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py once failed with an AttributeError while reconnecting inside a SUBSCRIBE;
    # that killed the subscribing task, and no socket ever went live again.
    bus = RealtimeBus(Redis.from_url(servers.redis_url), servers.redis_url)
    failures = iter([AttributeError("'NoneType' object has no attribute 'writelines'")])
    real_subscribe = PubSub.subscribe

    async def flaky_subscribe(self: PubSub, *channels: Any, **handlers: Any) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        await real_subscribe(self, *channels, **handlers)

    monkeypatch.setattr(PubSub, "subscribe", flaky_subscribe)
    try:
        async with bus.listen(user_id=7) as listener:
            assert await asyncio.wait_for(listener.get(), 5) is Gap  # live after a retry
            await bus.publish([(7, b"hello")])
            assert await asyncio.wait_for(listener.get(), 5) == b"hello"
    finally:
        await bus.close()
