"""A socket's listener: events in order, a waiting socket woken by the next one, and a
socket too slow to keep up told to catch up (one GAP) instead of growing without bound."""

from __future__ import annotations

import asyncio

import pytest

from db.realtime import LISTENER_BACKLOG, Gap, Listener


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
