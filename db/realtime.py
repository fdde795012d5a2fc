"""Live events between processes: Redis pub/sub, one channel per user (``rt:user:<id>``).

A process holds one subscriber connection for all its sockets. A user's channel is
subscribed while at least one of their sockets listens here, and unsubscribed when the
last one goes, so an idle socket costs a queue, not a connection or a task.

Pub/sub is fire-and-forget: whatever is published while no one listens, or while the
subscriber connection is being re-established, is gone. Listeners are told so (a
``None`` in their queue, also when a queue overflows), and catch up from the rows
(``messages(after:)``, ``notifications(after:)``), which are the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Events a listener may fall behind by before it is told to catch up instead.
LISTENER_BACKLOG = 256
RECONNECT_DELAY_SECONDS = 1.0

# What a listener gets when events may have been lost: catch up from the rows.
Gap = None


def user_channel(user_id: int) -> str:
    return f"rt:user:{user_id}"


class Listener:
    """One socket's view of one user's channel."""

    __slots__ = ("queue", "user_id")

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(LISTENER_BACKLOG)

    def offer(self, payload: bytes | None) -> None:
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            # Too slow to keep up: drop what is queued and say so once.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Gap)


class RealtimeBus:
    def __init__(self, redis: Redis, redis_url: str) -> None:
        self._redis = redis
        self._redis_url = redis_url
        self._listeners: dict[int, set[Listener]] = {}
        self._subscriber: Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Set while any channel is subscribed: the reader waits on it rather than polling.
        self._active = asyncio.Event()
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
        listener = Listener(user_id)
        await self._add(listener)
        try:
            yield listener
        finally:
            await self._remove(listener)

    def listening_users(self) -> int:
        return len(self._listeners)

    async def _add(self, listener: Listener) -> None:
        async with self._lock:
            listeners = self._listeners.setdefault(listener.user_id, set())
            listeners.add(listener)
            if len(listeners) > 1:
                return
            pubsub = await self._ensure_reader()
            try:
                await pubsub.subscribe(user_channel(listener.user_id))
                self._active.set()
            except RedisError as error:
                # The reader re-subscribes every channel when it reconnects.
                log.warning("live events: subscribe failed (%s); retrying", error)

    async def _remove(self, listener: Listener) -> None:
        async with self._lock:
            listeners = self._listeners.get(listener.user_id)
            if listeners is None:
                return
            listeners.discard(listener)
            if listeners:
                return
            del self._listeners[listener.user_id]
            if not self._listeners:
                self._active.clear()
            if self._pubsub is not None:
                with contextlib.suppress(RedisError):
                    await self._pubsub.unsubscribe(user_channel(listener.user_id))

    async def _ensure_reader(self) -> PubSub:
        if self._pubsub is None:
            # Its own connection, without the pool's 1 s read timeout: it waits for events.
            self._subscriber = Redis.from_url(
                self._redis_url,
                socket_connect_timeout=2,
                socket_keepalive=True,
                health_check_interval=30,
            )
            self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            self._reader = asyncio.create_task(self._read(), name="live-events-reader")
        return self._pubsub

    async def _read(self) -> None:
        assert self._pubsub is not None
        pubsub = self._pubsub
        while True:
            try:
                if not self._active.is_set():
                    # Nothing subscribed yet: the connection exists only after a subscribe.
                    await self._active.wait()
                    continue
                message = await pubsub.get_message(timeout=None)
                if message is None or message.get("type") != "message":
                    continue
                channel = message["channel"]
                user_id = int(channel[len(b"rt:user:") :])
                for listener in tuple(self._listeners.get(user_id, ())):
                    listener.offer(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                log.warning("live events: subscriber connection lost (%s); reconnecting", error)
                await self._resubscribe(pubsub)
            except Exception:
                log.exception("live events: dropping a message that could not be routed")

    async def _resubscribe(self, pubsub: PubSub) -> None:
        while True:
            await asyncio.sleep(RECONNECT_DELAY_SECONDS)
            try:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                channels = [user_channel(user_id) for user_id in self._listeners]
                if channels:
                    await pubsub.subscribe(*channels)
                    self._active.set()
                    # Sockets may have missed events meanwhile: each catches up.
                    for listeners in self._listeners.values():
                        for listener in listeners:
                            listener.offer(Gap)
                log.info("live events: subscriber reconnected (%d channels)", len(channels))
                return
            except (RedisError, OSError) as error:
                log.warning("live events: still cannot subscribe (%s)", error)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._subscriber is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._subscriber.aclose()
        self._pubsub = self._subscriber = self._reader = None
