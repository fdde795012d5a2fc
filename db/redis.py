"""The shared Redis client: round trips counted, and a circuit breaker for outages.

Redis is a cache here (PostgreSQL holds the truth, §5 of docs/architecture.md), so the
API keeps answering while Redis is down, slower, from PostgreSQL. This module decides
quickly that Redis is down, stops paying for it while it is, and makes sure nothing
stale is served once it is back.

**Timeouts.** Connecting, writing and reading each give up after ``SOCKET_TIMEOUT_SECONDS``
(1 s), so a hung Redis (accepting connections, never answering) costs a request at most
about a second; a request waits at most ``POOL_WAIT_SECONDS`` for a free pooled connection.

**Breaker** (``RedisHealth``, one per client, reached with ``health_of(redis)``). The
connection classes below report every connection error or timeout (``BusyLoadingError``,
the ``LOADING`` answer of a restarting server, is one). The first one marks Redis
unavailable: one WARNING, no traceback. While unavailable, a command fails at once with
``RedisUnavailable`` (a ``redis.ConnectionError``) without touching the network, except
for one *probe* per ``PROBE_INTERVAL_SECONDS``: a request's connection attempt that
connects, PINGs, replays the pending invalidations (below), and only then marks Redis
available again (one INFO line). Every connection opened before the outage is dropped
when next used (``epoch``), so no half-dead socket from before the outage is reused.

**Stale cache after an outage.** A write that committed in PostgreSQL while its cache
update could not reach Redis would leave the old value in Redis (which keeps it across a
restart, AOF). The cache classes in ``db/`` therefore never fail a request on a Redis
error; instead they call ``invalidate_later(redis, key, ...)``, which remembers the key
and the commands that make it safe (by default ``DEL key``; a revoked session replays
``SET session:<hash> - EX ttl``, a relation set its version bump and delete) in a
process-local *pending* map, one entry per key, the latest winning. The probe replays
that map, batch by batch, on the probe's own connection, and the breaker lets cached
reads through again only once it is empty (a request that fails meanwhile adds to it, and
is replayed in the same probe). Entries recorded while the breaker is closed (a full
pool, an error answer) are replayed in the background at once. Limits:

- *Per process.* A write's invalidation is replayed by the process that made it. Another
  process whose breaker is closed may read the old value from the moment Redis answers
  again until that replay (at most about a probe interval plus the replay).
- *Lost with the process.* Pending entries of a process that exits or crashes before
  Redis returns are lost; those keys can be stale until their TTL
  (``APERTURE_CACHE_TTL_SECONDS``, 3600 by default). Sessions included: a token revoked
  during an outage by a process that then died may authenticate from its old cache entry
  until that entry expires. Past ``MAX_PENDING_KEYS`` entries the oldest are dropped
  (one WARNING), with the same bound.
- *Fills.* A reader that could not read Redis does not fill it, and a reader whose read
  came before the outage began does not fill it after (``epoch``), so a value read from
  PostgreSQL before a write cannot land after that write's replayed invalidation.

``redis_status(redis)`` (no I/O) or ``await probe_redis(redis)`` (one PING, which while
Redis is down is the probe when one is due) tell a readiness check ``"ok"`` or
``"degraded"``. ``after_recovery`` runs a callback once Redis is back (the fan-out jobs
that could not be queued during the outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from redis.asyncio import Connection, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import (
    AbstractConnection,
    BlockingConnectionPool,
    ConnectionPool,
    UnixDomainSocketConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from db.instrumentation import record_redis_round_trip

log = logging.getLogger(__name__)

# How long a connect, a write or a read may take before Redis counts as unreachable.
SOCKET_TIMEOUT_SECONDS = 1.0
# How long a request waits for a free pooled connection before treating Redis as a miss.
POOL_WAIT_SECONDS = 1.0
# While Redis is down, one connection attempt per interval; every other command fails fast.
PROBE_INTERVAL_SECONDS = 1.0
# Keys remembered for replay; past it the oldest are dropped (their TTL bounds them).
MAX_PENDING_KEYS = 200_000
# Keys replayed per round trip.
REPLAY_BATCH = 500
# Callbacks kept for after the outage (one per post whose fan-out could not be queued).
MAX_RECOVERY_HOOKS = 10_000
# A Redis error that did not open the breaker (an error answer, a full pool) is logged at
# most this often.
ERROR_LOG_INTERVAL_SECONDS = 60.0

Command = tuple[str | bytes | int | float, ...]
T = TypeVar("T")
_HEALTH_ATTRIBUTE = "_aperture_redis_health"
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


class RedisUnavailable(RedisConnectionError):
    """Raised at once, without touching the network, while the breaker is open."""


class RedisHealth:
    """Whether one client's Redis answers, and what must be replayed when it does again."""

    def __init__(
        self,
        *,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
        max_pending: int = MAX_PENDING_KEYS,
    ) -> None:
        self.probe_interval = probe_interval
        self.max_pending = max_pending
        self.available = True
        # Wall-clock start of the current outage; None while available.
        self.down_since: datetime | None = None
        # Bumped when an outage begins: connections and reads from before it are stale.
        self.epoch = 0
        self._down_at = 0.0
        self._next_probe = 0.0
        self._probing = False
        self._pending: OrderedDict[str, tuple[Command, ...]] = OrderedDict()
        self._dropped = 0
        self._hooks: dict[str, Callable[[], Awaitable[object]]] = {}
        self._client: Redis | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._last_error_log = -ERROR_LOG_INTERVAL_SECONDS

    # The breaker ---------------------------------------------------------------------

    def failed(self, error: BaseException) -> None:
        """A connection error or timeout: Redis is unavailable until a probe succeeds."""
        now = time.monotonic()
        self._next_probe = now + self.probe_interval
        if not self.available:
            return
        self.available = False
        self.epoch += 1
        self._down_at = now
        self.down_since = datetime.now(UTC)
        log.warning(
            "Redis is unreachable (%s: %s); serving from PostgreSQL, probing every %.0fs",
            type(error).__name__,
            str(error).splitlines()[0][:200] if str(error) else "",
            self.probe_interval,
        )

    def claim_probe(self) -> bool:
        """True for the one caller that may try Redis now while it is down."""
        if self._probing or time.monotonic() < self._next_probe:
            return False
        self._probing = True
        return True

    def probe_finished(self) -> None:
        self._probing = False

    def _recovered(self, replayed: int) -> None:
        # Called with nothing pending, and without awaiting since that was checked.
        self.available = True
        self.down_since = None
        lost = f"; {self._dropped} older invalidations were dropped" if self._dropped else ""
        log.info(
            "Redis is reachable again after %.1fs; replayed %d cache invalidations%s",
            time.monotonic() - self._down_at,
            replayed,
            lost,
        )
        self._dropped = 0
        if self._hooks:
            hooks = list(self._hooks.values())
            self._hooks.clear()
            _spawn(self._run_hooks(hooks))

    def note(self, error: RedisError) -> None:
        """A cache call failed and the caller fell back to PostgreSQL. The breaker already
        logged an outage; anything else is logged at most once a minute."""
        if not self.available:
            return
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_SECONDS:
            self._last_error_log = now
            log.warning(
                "Redis call failed (%s: %s); served from PostgreSQL", type(error).__name__, error
            )

    # Pending invalidations -------------------------------------------------------------

    def defer(self, key: str, commands: tuple[Command, ...]) -> None:
        """Remember that ``key`` may be stale: ``commands`` run before cached reads resume."""
        self._pending.pop(key, None)
        self._pending[key] = commands
        if len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            if not self._dropped:
                log.warning(
                    "more than %d cache keys await invalidation; the oldest are dropped and "
                    "may be stale until their TTL",
                    self.max_pending,
                )
            self._dropped += 1
        if self.available:
            self._flush_soon()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _batch(self) -> list[tuple[str, tuple[Command, ...]]]:
        batch: list[tuple[str, tuple[Command, ...]]] = []
        for item in self._pending.items():
            batch.append(item)
            if len(batch) >= REPLAY_BATCH:
                break
        return batch

    def _done(self, batch: list[tuple[str, tuple[Command, ...]]]) -> None:
        for key, commands in batch:
            # A newer entry for the key arrived during the replay: it stays.
            if self._pending.get(key) is commands:
                del self._pending[key]

    async def replay(self, connection: AbstractConnection) -> None:
        """On the probe's connection: run every pending entry, then mark Redis available."""
        replayed = 0
        while batch := self._batch():
            commands = [command for _, entry in batch for command in entry]
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
            for _ in commands:
                # An error answer (a key of another type): nothing more to do for it.
                with contextlib.suppress(ResponseError):
                    await connection.read_response()
            self._done(batch)
            replayed += len(batch)
        self._recovered(replayed)

    def _flush_soon(self) -> None:
        client = self._client
        if client is None or (self._flusher is not None and not self._flusher.done()):
            return
        self._flusher = _spawn(self._flush(client))

    async def _flush(self, client: Redis) -> None:
        """Entries recorded while the breaker is closed (a full pool, an error answer)."""
        while self._pending and self.available:
            batch = self._batch()
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for _, entry in batch:
                        for command in entry:
                            pipe.execute_command(*command)
                    await pipe.execute(raise_on_error=False)
            except RedisError:
                # Down now (the probe replays them) or busy: try again shortly.
                await asyncio.sleep(self.probe_interval)
                continue
            self._done(batch)

    # After the outage ------------------------------------------------------------------

    def after_recovery(self, name: str, hook: Callable[[], Awaitable[object]]) -> None:
        """Run ``hook`` once Redis is back (in the background); one per ``name``."""
        if len(self._hooks) < MAX_RECOVERY_HOOKS or name in self._hooks:
            self._hooks[name] = hook
        if self.available:
            hooks = list(self._hooks.values())
            self._hooks.clear()
            _spawn(self._run_hooks(hooks))

    async def _run_hooks(self, hooks: list[Callable[[], Awaitable[object]]]) -> None:
        for hook in hooks:
            try:
                await hook()
            except Exception as error:
                log.warning("a task deferred until Redis returned failed: %s", error)


def _spawn(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """A background task outside any request's context (its work counts for no request)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        coroutine.close()
        return None
    return loop.create_task(coroutine, context=contextvars.Context())


class _TrackedConnection(AbstractConnection):
    """Reports failures to the client's RedisHealth and fails fast while it says down."""

    def __init__(self, *args: Any, health: RedisHealth | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.health = health if health is not None else RedisHealth()
        self._epoch = -1
        self._probing = False

    def _stale(self) -> bool:
        return self.is_connected and self._epoch != self.health.epoch

    async def connect(self) -> None:
        if self._stale():
            await self.disconnect(nowait=True)
        await super().connect()  # type: ignore[no-untyped-call]

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self.is_connected:
            return
        health = self.health
        # Taken before connecting: an outage that begins meanwhile makes this one stale.
        epoch = health.epoch
        probe = False
        if not health.available and not self._probing:
            if not health.claim_probe():
                raise RedisUnavailable("Redis is unavailable; the next probe is due shortly")
            self._probing = probe = True
        # Set first: the handshake's own commands must not find the connection stale.
        self._epoch = epoch
        try:
            await super().connect_check_health(check_health, retry_socket_connect)
            if probe:
                await self.send_command("PING", check_health=False)
                await self.read_response()
                await health.replay(self)
        except Exception as error:
            # Any failed probe waits for the next interval, whatever went wrong.
            if probe or isinstance(error, _UNREACHABLE):
                health.failed(error)
                await self.disconnect(nowait=True)
            raise
        except BaseException:  # cancelled: the next caller may probe at once
            if probe:
                await self.disconnect(nowait=True)
            raise
        finally:
            if probe:
                self._probing = False
                health.probe_finished()

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._stale():
            await self.disconnect(nowait=True)
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        # A pipeline is packed into one send, so this counts round trips, not commands.
        record_redis_round_trip()
        try:
            await self._send_within_timeout(command, check_health)
        except _UNREACHABLE as error:
            self.health.failed(error)
            raise

    async def _send_within_timeout(self, command: Any, check_health: bool) -> None:
        """redis-py's ``send_packed_command`` with ``asyncio.timeout`` in place of
        ``asyncio.wait_for``, which on Python 3.11 wraps every send in a new task (4-8% of
        a GET's client CPU, measured); the same errors and disconnects."""
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        writer = self._writer
        if writer is None:
            raise RedisConnectionError("The connection closed before the command was sent")
        try:
            async with asyncio.timeout(self.socket_timeout):
                writer.writelines(command)
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as error:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {error}.") from error
        except BaseException:
            # A send cut short (cancelled) leaves the stream in an unknown state.
            await self.disconnect(nowait=True)
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except _UNREACHABLE as error:
            self.health.failed(error)
            raise


class CountingConnection(_TrackedConnection, Connection):
    pass


class CountingUnixConnection(_TrackedConnection, UnixDomainSocketConnection):
    pass


def create_redis(
    url: str,
    *,
    max_connections: int = 64,
    wait_seconds: float = POOL_WAIT_SECONDS,
    socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
    probe_interval: float = PROBE_INTERVAL_SECONDS,
) -> Redis:
    connection_class: type[Connection | UnixDomainSocketConnection] = (
        CountingUnixConnection if url.startswith("unix:") else CountingConnection
    )
    health = RedisHealth(probe_interval=probe_interval)
    # Blocking: under a burst, a request waits (briefly) for a free connection instead of
    # failing at once with "Too many connections".
    pool = BlockingConnectionPool.from_url(
        url,
        connection_class=connection_class,
        max_connections=max_connections,
        timeout=wait_seconds,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health=health,
    )
    setattr(pool, _HEALTH_ATTRIBUTE, health)
    client = Redis(connection_pool=pool, decode_responses=False)
    health._client = client
    return client


def health_of(redis: Redis) -> RedisHealth:
    """The breaker of a client from ``create_redis`` (any other gets one that never opens)."""
    pool: ConnectionPool = redis.connection_pool
    health = getattr(pool, _HEALTH_ATTRIBUTE, None)
    if not isinstance(health, RedisHealth):
        health = RedisHealth()
        health._client = redis
        setattr(pool, _HEALTH_ATTRIBUTE, health)
    return health


def redis_available(redis: Redis) -> bool:
    return health_of(redis).available


def redis_status(redis: Redis) -> Literal["ok", "degraded"]:
    """For readiness: "degraded" while the breaker says Redis is down (no I/O)."""
    return "ok" if health_of(redis).available else "degraded"


async def probe_redis(redis: Redis) -> Literal["ok", "degraded"]:
    """One PING through the breaker (the probe, if one is due), then ``redis_status``."""
    with contextlib.suppress(RedisError):
        await redis.ping()
    return redis_status(redis)


# Helpers for the caches ------------------------------------------------------------------


def note_failure(redis: Redis, error: RedisError) -> None:
    """A cache read or fill failed; the caller goes on from PostgreSQL."""
    health_of(redis).note(error)


def can_fill(redis: Redis, epoch: int | None = None) -> bool:
    """Whether a reader may fill the cache: Redis is up, and (given the epoch seen before
    reading) no outage began since, whose pending invalidations the fill could undo."""
    health = health_of(redis)
    return health.available and (epoch is None or epoch == health.epoch)


def read_epoch(redis: Redis) -> int:
    return health_of(redis).epoch


def invalidate_later(redis: Redis, error: RedisError, key: str, *commands: Command) -> None:
    """A cache write after a committed change failed: fix ``key`` before cached reads
    resume, with ``commands`` (``DEL key`` by default)."""
    health = health_of(redis)
    health.note(error)
    health.defer(key, commands or (("DEL", key),))


async def cached_get(redis: Redis, key: str) -> bytes | None:
    """GET, or None (a miss) when Redis cannot answer."""
    try:
        value = await redis.get(key)
    except RedisError as error:
        note_failure(redis, error)
        return None
    return value.encode() if isinstance(value, str) else value


async def fill_if_absent(
    redis: Redis, key: str, value: str | bytes, *, ex: int, epoch: int | None = None
) -> None:
    """SET NX EX for a reader's fill; skipped while Redis is down, errors ignored."""
    if not can_fill(redis, epoch):
        return
    try:
        await redis.set(key, value, ex=ex, nx=True)
    except RedisError as error:
        note_failure(redis, error)


async def overwrite(redis: Redis, key: str, value: str | bytes, *, ex: int) -> None:
    """SET EX after a commit; if Redis cannot take it, the same SET is replayed later."""
    try:
        await redis.set(key, value, ex=ex)
    except RedisError as error:
        invalidate_later(redis, error, key, ("SET", key, value, "EX", ex))


# Reads planned together -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedRead(Generic[T]):
    """One cache's read, to be sent with others in a single round trip: the commands it
    queues on a pipeline, how many replies they give, and how those replies read."""

    queue: Callable[[Pipeline], object]
    replies: int
    parse: Callable[[list[Any]], T]


def nothing_to_read(answer: T) -> PlannedRead[T]:
    """A plan with no command (nothing asked for): it answers ``answer``."""
    return PlannedRead(queue=lambda pipe: None, replies=0, parse=lambda replies: answer)


async def read_together(redis: Redis, reads: Sequence[PlannedRead[Any]]) -> list[Any] | None:
    """Every read's answer, in order, from one non-transactional pipeline: a page's ids,
    rows, counters, flags and relation sets cost one round trip instead of one each.
    None when Redis cannot answer (noted for the breaker): each caller then reads its
    own way, which goes to PostgreSQL."""
    if not reads:
        return []
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for read in reads:
                read.queue(pipe)
            replies = await pipe.execute()
    except RedisError as error:
        note_failure(redis, error)
        return None
    answers: list[Any] = []
    start = 0
    for read in reads:
        answers.append(read.parse(replies[start : start + read.replies]))
        start += read.replies
    return answers


async def read_together_or_raise(redis: Redis, reads: Sequence[PlannedRead[Any]]) -> list[Any]:
    """``read_together`` for a caller with no PostgreSQL answer of its own (a feed): a
    Redis that cannot answer raises ``RedisError``, after the breaker has noted it."""
    answers = await read_together(redis, reads)
    if answers is None:
        raise RedisUnavailable("Redis could not answer a planned read")
    return answers
