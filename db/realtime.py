"""Live events between processes: Redis pub/sub, one channel per user (``rt:user:<id>``).

A process holds one subscriber connection for all its sockets. A user's channel is
subscribed while at least one of their sockets listens here, and unsubscribed when the
last one goes, so an idle socket costs a small backlog, not a connection or a task. A
listener hears a ``Gap`` as soon as Redis confirms its channel: from then on nothing
published is missed, so that is when a client catches up.

Pub/sub is fire-and-forget: whatever is published while no one listens, or while the
subscriber connection is being re-established, is gone. Listeners are told so (a
``Gap`` in their backlog, also when a backlog overflows), and catch up from the rows
(``messages(after:)``, ``notifications(after:)``), which are the truth.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Events a listener may fall behind by before it is told to catch up instead.
LISTENER_BACKLOG = 256
RECONNECT_DELAY_SECONDS = 1.0
# Redis takes any number of channels per SUBSCRIBE; this bounds one command's size.
CHANNELS_PER_COMMAND = 1000

# What a listener gets when events may have been lost: catch up from the rows.
Gap = None


def user_channel(user_id: int) -> str:
    return f"rt:user:{user_id}"


def _batches(user_ids: list[int]) -> list[list[int]]:
    return [
        user_ids[start : start + CHANNELS_PER_COMMAND]
        for start in range(0, len(user_ids), CHANNELS_PER_COMMAND)
    ]


class Listener:
    """One socket's view of one user's channel: a bounded backlog and, while the socket
    waits, one future. (An ``asyncio.Queue`` costs three deques per idle socket.)"""

    __slots__ = ("_backlog", "_waiter", "user_id")

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self._backlog: collections.deque[bytes | None] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, payload: bytes | None) -> None:
        if len(self._backlog) >= LISTENER_BACKLOG:
            # Too slow to keep up: drop what is queued and say so once.
            self._backlog.clear()
            payload = Gap
        self._backlog.append(payload)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> bytes | None:
        """The next payload (``Gap``: catch up), waiting for one if need be."""
        while not self._backlog:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._backlog.popleft()


class RealtimeBus:
    """This process's subscriber: one Redis connection, one reader task and one task that
    sends SUBSCRIBE and UNSUBSCRIBE, many channels per command, for whatever changed since
    its last round. A burst of new sockets costs a few commands, not one round trip each."""

    def __init__(self, redis: Redis, redis_url: str) -> None:
        self._redis = redis
        self._redis_url = redis_url
        self._listeners: dict[int, set[Listener]] = {}
        # Channels Redis was asked to subscribe (and not since to unsubscribe), and of
        # those, the ones it confirmed: events published from then on reach us.
        self._subscribed: set[int] = set()
        self._live: set[int] = set()
        self._changed = asyncio.Event()
        # Set once a subscribe went out: only then does the connection exist to read.
        self._connected = asyncio.Event()
        # Set when the connection was lost: the subscribing task makes a new one.
        self._reset_needed = False
        self._subscriber: Redis | None = None
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.published = 0

    async def publish(self, payloads: Sequence[tuple[int, bytes]]) -> None:
        """Send each (user id, payload) to that user's channel, in one round trip."""
        if not payloads:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, payload in payloads:
                pipe.publish(user_channel(user_id), payload)
            await pipe.execute()
        self.published += len(payloads)

    @contextlib.asynccontextmanager
    async def listen(self, user_id: int) -> AsyncIterator[Listener]:
        """A listener on ``user_id``'s channel. Its first item is a ``Gap`` once the
        channel is live: what was published before may not have reached it."""
        listener = Listener(user_id)
        self._add(listener)
        try:
            yield listener
        finally:
            self._remove(listener)

    def listening_users(self) -> int:
        return len(self._listeners)

    def _add(self, listener: Listener) -> None:
        self._ensure_started()
        self._listeners.setdefault(listener.user_id, set()).add(listener)
        if listener.user_id in self._live:
            listener.offer(Gap)
        elif listener.user_id not in self._subscribed:
            self._changed.set()  # its Gap comes with Redis's confirmation

    def _remove(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.user_id)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[listener.user_id]
            self._changed.set()

    def _ensure_started(self) -> None:
        if self._pubsub is None:
            # Its own connection, without the pool's 1 s read timeout: it waits for events.
            # No health_check_interval: redis-py's health check reads the PING's answer
            # in the sending task while the reader is already reading the same connection,
            # which broke it on the first SUBSCRIBE after 30 s without one. TCP keepalive
            # finds a dead peer instead.
            self._subscriber = Redis.from_url(
                self._redis_url,
                socket_connect_timeout=2,
                socket_keepalive=True,
            )
            self._pubsub = self._subscriber.pubsub()
            self._tasks = [
                asyncio.create_task(self._sync(self._pubsub), name="live-events-subscriptions"),
                asyncio.create_task(self._read(self._pubsub), name="live-events-reader"),
            ]

    async def _sync(self, pubsub: PubSub) -> None:
        """Brings Redis's subscriptions in line with the listeners, whenever they change.

        The only task that sends on the connection or resets it (the reader only reads),
        so that a reset never races a command being sent. It never stops: a failed round
        resets the connection and is done again."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                if self._reset_needed:
                    await self._reset(pubsub)
                await self._sync_once(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if isinstance(error, (RedisError, OSError)) or self._reset_needed:
                    # A lost connection (redis-py can fail oddly while it reconnects).
                    log.warning("live events: subscribing failed (%r); retrying", error)
                else:
                    log.exception("live events: subscribing failed; retrying")
                self._reset_needed = True
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
                self._changed.set()

    async def _sync_once(self, pubsub: PubSub) -> None:
        wanted = self._listeners.keys()
        joining = [user_id for user_id in wanted if user_id not in self._subscribed]
        leaving = [user_id for user_id in self._subscribed if user_id not in wanted]
        # The state changes before each command goes out, so that a listener added
        # meanwhile sees the channel as it will be, and asks for another round.
        self._subscribed.difference_update(leaving)
        self._live.difference_update(leaving)
        self._subscribed.update(joining)
        for batch in _batches(leaving):
            await pubsub.unsubscribe(*map(user_channel, batch))
        for batch in _batches(joining):
            await pubsub.subscribe(*map(user_channel, batch))
            self._connected.set()

    async def _reset(self, pubsub: PubSub) -> None:
        """A fresh connection: every wanted channel is subscribed anew, and each listener
        gets a Gap when its channel is live again."""
        self._reset_needed = False
        self._connected.clear()
        self._subscribed.clear()
        self._live.clear()
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                await self._connected.wait()
                message = await pubsub.get_message(timeout=None)
                if message is not None:
                    self._route(message)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                lost = isinstance(error, (RedisError, OSError)) or pubsub.connection is None
                if not lost:
                    log.exception("live events: dropping a message that could not be routed")
                    continue
                log.warning("live events: subscriber connection lost (%s); reconnecting", error)
                # The subscribing task resets the connection; read again once it is back.
                self._connected.clear()
                self._reset_needed = True
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
                self._changed.set()

    def _route(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in ("message", "subscribe"):
            return
        user_id = int(message["channel"][len(b"rt:user:") :])
        listeners = tuple(self._listeners.get(user_id, ()))
        if kind == "message":
            for listener in listeners:
                listener.offer(message["data"])
            return
        # Confirmed (also when redis-py resubscribed by itself after a reconnect): from
        # now on nothing is lost, and what came before is for catching up. Every
        # confirmation is a GAP: one that answers an older subscribe (the channel left
        # and rejoined meanwhile) may come early, but the newer one follows it.
        if user_id in self._subscribed:
            self._live.add(user_id)
            for listener in listeners:
                listener.offer(Gap)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._subscriber is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._subscriber.aclose()
        self._pubsub = self._subscriber = None
        self._tasks = []
