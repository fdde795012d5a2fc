"""Job queues: saq on Redis, one queue per kind of work, so each scales on its own.

A queue is a delivery mechanism, never the record of work owed: that lives in
PostgreSQL (the outbox, ``db/events``), and a sweeper queues again whatever a failed
enqueue, a killed worker or a Redis that lost its queue left behind. So an enqueue that
fails is logged, not raised.

While Redis is down (``db/redis.py``) nothing is tried: the job is queued by this process
once Redis answers again (the sweeper covers a process that exits first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from saq import Job, Queue

from db.redis import health_of, redis_available

log = logging.getLogger(__name__)

QUEUE_PREFIX = "aperture"
# saq's own Redis client has no socket timeout; an enqueue may take this long.
ENQUEUE_TIMEOUT_SECONDS = 1.0
CLOSE_TIMEOUT_SECONDS = 2.0
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


class JobQueues:
    def __init__(self, redis_url: str, redis: Redis) -> None:
        self._redis_url = redis_url
        # The API's client: its breaker says whether Redis is up.
        self._redis = redis
        self._queues: dict[str, Queue] = {}

    def get(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = Queue.from_url(self._redis_url, name=f"{QUEUE_PREFIX}:{name}")
            self._queues[name] = queue
        return queue

    async def enqueue(
        self,
        queue: str,
        job: str,
        *,
        key: str,
        kwargs: dict[str, Any],
        timeout_seconds: int,
        retries: int,
        defer_while_down: bool = True,
    ) -> bool:
        """Queue a job once per ``key``; False if it was not queued (the sweeper will)."""
        if defer_while_down and not redis_available(self._redis):
            self._enqueue_after_recovery(
                queue, job, key=key, kwargs=kwargs, timeout=timeout_seconds, retries=retries
            )
            return False

        async def attempt() -> Job | None:
            return await asyncio.wait_for(
                self.get(queue).enqueue(
                    job, key=key, timeout=timeout_seconds, retries=retries, **kwargs
                ),
                ENQUEUE_TIMEOUT_SECONDS,
            )

        try:
            try:
                queued = await attempt()
            except RedisConnectionError:
                # A connection saq pooled before a Redis restart fails once; a new one may not.
                queued = await attempt()
        except (RedisError, OSError, TimeoutError) as error:
            if defer_while_down and isinstance(error, UNREACHABLE):
                # Same server as the caches: the breaker takes it from here (one WARNING).
                health_of(self._redis).failed(error)
                self._enqueue_after_recovery(
                    queue, job, key=key, kwargs=kwargs, timeout=timeout_seconds, retries=retries
                )
                return False
            log.warning("could not queue %s (%s); the sweeper will", key, error)
            return False
        return queued is not None

    def _enqueue_after_recovery(
        self,
        queue: str,
        job: str,
        *,
        key: str,
        kwargs: dict[str, Any],
        timeout: int,
        retries: int,
    ) -> None:
        # One try once Redis is back, with no second deferral; after that, the sweeper.
        health_of(self._redis).after_recovery(
            key,
            lambda: self.enqueue(
                queue,
                job,
                key=key,
                kwargs=kwargs,
                timeout_seconds=timeout,
                retries=retries,
                defer_while_down=False,
            ),
        )

    async def close(self) -> None:
        # saq's disconnect talks to Redis (PUNSUBSCRIBE): a Redis that is down or hung must
        # not fail the shutdown.
        for queue in self._queues.values():
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(queue.disconnect(), CLOSE_TIMEOUT_SECONDS)
