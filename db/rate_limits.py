"""Rate limits shared by every API process: a cost-weighted GCRA and log-in failure delays.

**GCRA** (generic cell rate algorithm, as in ATM networks and redis-cell). A bucket of
``capacity`` points refilled at ``refill_per_second`` is stored as one number, its
*theoretical arrival time* (TAT): the moment the bucket would be full again. A request of
``cost`` points at ``now`` moves it to ``new_tat = max(tat, now) + cost / rate``; it is
allowed when ``new_tat - now <= capacity / rate`` (the bucket still holds ``cost`` points),
otherwise it must wait ``new_tat - capacity / rate - now`` seconds. The key expires at the
TAT, when the bucket is full and the key says nothing a missing key would not.

Keys (every Redis key is built in ``db/``):

- ``rate:<quota name>:<subject>``: a bucket's TAT, microseconds of Redis ``TIME``
  (``rate:login-ip:203.0.113.7``, ``rate:signup-ip:…``, ``rate:viewer:<id>``, ``rate:ip:…``).
- ``failures:<name>:<subject>``: a hash ``{n, until}``, the failures counted and the Redis
  time (microseconds) before which no attempt is allowed (``failures:login:<sha256 of the
  lower-cased login>``).

Every decision is one round trip: a Lua script (``EVALSHA``) that reads Redis ``TIME`` so
that processes with skewed clocks agree. When Redis cannot be reached, each class falls
back to the same algorithm in process memory (one WARNING when it switches, none per
request) and tries Redis again every ``retry_interval`` seconds; the first answer switches
back without a word. In-process state is per process: during an outage every process
grants its own budget. The scripts touch several keys at once, so on a Redis Cluster the
keys of one call would need a shared hash tag; Aperture runs one Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# How long one Redis call may take before the limiter decides Redis is unreachable.
REDIS_TIMEOUT_SECONDS = 1.0
# While Redis is down, how often a request tries it again (the others stay in process).
RETRY_INTERVAL_SECONDS = 1.0
# In-process entries kept during an outage; beyond it the full (expired) ones go first,
# then the least recently used (which hands their subjects a fresh budget).
LOCAL_MAX_ENTRIES = 100_000
# How long failures are remembered after the delay they earned ran out.
FAILURE_MEMORY_SECONDS = 24 * 3600

_MICROS = 1_000_000

V = TypeVar("V")


@dataclass(frozen=True)
class Quota:
    name: str  # key namespace, e.g. "viewer", "ip", "login-ip"
    capacity: float  # burst, in points
    refill_per_second: float  # points restored per second

    @property
    def full_refill_seconds(self) -> float:
        return self.capacity / self.refill_per_second


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until this request would be allowed; 0.0 when allowed
    remaining: float  # points left in the tightest bucket after this request (0 if refused)


def rate_key(quota: Quota, subject: str) -> str:
    return f"rate:{quota.name}:{subject}"


def failures_key(name: str, subject: str) -> str:
    return f"failures:{name}:{subject}"


# The GCRA over KEYS[first..last]; ARGV from ``at``: cost, then per key its emission
# interval (µs per point) and burst tolerance (capacity * interval, µs). Returns {allowed,
# retry_after µs, remaining points} (numbers as strings: Lua numbers would be truncated to
# integers).
_GCRA_FUNCTION = """
local function gcra(first, last, at)
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local cost = tonumber(ARGV[at])
    local new_tats = {}
    local wait = 0
    local remaining = nil
    for i = first, last do
        local interval = tonumber(ARGV[at + 2 * (i - first) + 1])
        local tolerance = tonumber(ARGV[at + 2 * (i - first) + 2])
        local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
        if tat < now then tat = now end
        local new_tat = tat + cost * interval
        local allow_at = new_tat - tolerance
        if allow_at > now then
            if allow_at - now > wait then wait = allow_at - now end
        else
            new_tats[i] = new_tat
            local left = (tolerance - (new_tat - now)) / interval
            if remaining == nil or left < remaining then remaining = left end
        end
    end
    if wait > 0 then
        return {0, string.format('%.17g', wait), '0'}
    end
    if cost > 0 then
        for i = first, last do
            local ttl = math.ceil((new_tats[i] - now) / 1000)
            if ttl > 0 then
                redis.call('SET', KEYS[i], string.format('%.17g', new_tats[i]), 'PX', ttl)
            end
        end
    end
    return {1, '0', string.format('%.17g', remaining or 0)}
end
"""

# KEYS: one bucket per charge; ARGV as gcra's from 1.
_GCRA = _GCRA_FUNCTION + "return gcra(1, #KEYS, 1)\n"

# A request's whole envelope in one call. KEYS: the session's cache key, the user's hourly
# activity mark, the address's bucket, the viewer's bucket. ARGV: the user id the token
# names, the mark's lifetime (s), then gcra's. A cached session naming that user sets the
# mark (NX) and charges both buckets; a revoked one charges the address only; a session
# missing from the cache charges nothing (the caller reads PostgreSQL, then charges).
# Returns {session or false, marked, allowed, retry_after, remaining}.
_SESSION_AND_GCRA = (
    _GCRA_FUNCTION
    + """
local session = redis.call('GET', KEYS[1])
if not session then
    return {false, 0, 0, '0', '0'}
end
local marked = 0
local last = 3
if session == ARGV[1] then
    if redis.call('SET', KEYS[2], '1', 'EX', ARGV[2], 'NX') then marked = 1 end
    last = 4
end
local decision = gcra(3, last, 3)
return {session, marked, decision[1], decision[2], decision[3]}
"""
)


@dataclass(frozen=True)
class SessionCharge:
    """What the envelope's one call found: the cached session (None: not cached), whether
    it set the hourly activity mark, and the charge (None: nothing was charged)."""

    session: bytes | None
    marked: bool
    decision: Decision | None


# KEYS[1]: the subject's failure hash. ARGV: free failures, base delay µs, max delay µs,
# memory µs. An attempt inside the delay is refused (returns the wait, µs) and counts
# nothing; an allowed one is counted as a failure up front, so concurrent guesses cannot
# all slip through before the first is counted; a success clears the key.
_BEGIN_ATTEMPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'n', 'until')
local n = tonumber(state[1]) or 0
local blocked_until = tonumber(state[2]) or 0
if blocked_until > now then
    return string.format('%.17g', blocked_until - now)
end
n = n + 1
local free = tonumber(ARGV[1])
local delay = 0
if n >= free then
    delay = math.min(tonumber(ARGV[2]) * 2 ^ (n - free), tonumber(ARGV[3]))
end
redis.call('HSET', KEYS[1], 'n', n, 'until', string.format('%.17g', now + delay))
redis.call('PEXPIRE', KEYS[1], math.ceil((delay + tonumber(ARGV[4])) / 1000))
return '0'
"""


class _Outage:
    """Remembers that Redis failed: one WARNING on the switch, a retry now and then."""

    def __init__(self, what: str, retry_interval: float) -> None:
        self.what = what
        self.retry_interval = retry_interval
        self.down = False
        self._retry_at = 0.0

    def try_redis(self) -> bool:
        return not self.down or time.monotonic() >= self._retry_at

    def failed(self, error: BaseException) -> None:
        if not self.down:
            log.warning(
                "Redis unreachable (%s: %s): %s are kept in this process until it answers",
                type(error).__name__,
                error,
                self.what,
            )
        self.down = True
        self._retry_at = time.monotonic() + self.retry_interval

    def recovered(self) -> None:
        self.down = False


class _BoundedStore(Generic[V]):
    """An LRU dict whose entries carry an expiry (monotonic seconds)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: str, value: V, expires_at: float, now: float) -> None:
        self._entries[key] = (expires_at, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            for stale in [k for k, (expiry, _) in self._entries.items() if expiry <= now]:
                del self._entries[stale]
            # Still full of live entries: drop the oldest tenth at once, so that the
            # sweep above does not run on every insert.
            excess = len(self._entries) - self.max_entries
            if excess > 0:
                for _ in range(max(excess, self.max_entries // 10)):
                    self._entries.popitem(last=False)

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class RateLimiter:
    """Cost-weighted GCRA buckets in Redis, all-or-nothing across several quotas."""

    def __init__(
        self,
        redis: Redis,
        *,
        redis_timeout: float = REDIS_TIMEOUT_SECONDS,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
        local_max_entries: int = LOCAL_MAX_ENTRIES,
    ) -> None:
        self.redis = redis
        self.redis_timeout = redis_timeout
        self._script = redis.register_script(_GCRA)
        self._with_session = redis.register_script(_SESSION_AND_GCRA)
        self._outage = _Outage("rate limits", retry_interval)
        self._local: _BoundedStore[float] = _BoundedStore(local_max_entries)

    @property
    def degraded(self) -> bool:
        """True while decisions are made in process because Redis did not answer."""
        return self._outage.down

    async def acquire(self, charges: Sequence[tuple[Quota, str]], cost: float = 1.0) -> Decision:
        """Take ``cost`` points from every (quota, subject) bucket, or from none.

        One Redis round trip. A refused request consumes nothing; its ``retry_after`` is
        the wait until every bucket holds ``cost`` points (if nothing else takes them).
        A ``cost`` above a quota's capacity can never pass: it is refused without touching
        anything, with ``retry_after`` = that quota's full-refill time (capacity / rate),
        finite so that it fits a Retry-After header; callers cap costs at the capacity
        first. ``cost`` 0 only reads (see ``peek``).
        """
        if cost < 0 or math.isnan(cost):
            raise ValueError(f"cost must be >= 0, not {cost}")
        if not charges:
            return Decision(allowed=True, retry_after=0.0, remaining=math.inf)
        too_big = [quota for quota, _ in charges if cost > quota.capacity]
        if too_big:
            wait = max(quota.full_refill_seconds for quota in too_big)
            return Decision(allowed=False, retry_after=wait, remaining=0.0)
        if self._outage.try_redis():
            keys = [rate_key(quota, subject) for quota, subject in charges]
            args: list[str] = [repr(float(cost))]
            for quota, _ in charges:
                interval = _MICROS / quota.refill_per_second
                args += [repr(interval), repr(interval * quota.capacity)]
            try:
                # asyncio.timeout, not wait_for: no task per call (Python 3.11).
                async with asyncio.timeout(self.redis_timeout):
                    allowed, wait_us, remaining = await self._script(keys=keys, args=args)
            except (RedisError, TimeoutError) as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()
                return Decision(
                    allowed=bool(allowed),
                    retry_after=float(wait_us) / _MICROS,
                    remaining=max(float(remaining), 0.0),
                )
        return self._acquire_locally(charges, cost)

    async def charge_with_session(
        self,
        *,
        session_key: str,
        session_value: str,
        mark_key: str,
        mark_seconds: int,
        address: tuple[Quota, str],
        viewer: tuple[Quota, str],
        cost: float,
    ) -> SessionCharge | None:
        """The session check, the activity mark and the charge to the address and (for a
        valid session) the viewer, in one round trip (``_SESSION_AND_GCRA``); None when
        Redis cannot answer, or the cost could never pass: then the caller takes each
        step on its own (and the limiter its in-process fallback)."""
        quotas = (address[0], viewer[0])
        if cost < 0 or math.isnan(cost) or any(cost > quota.capacity for quota in quotas):
            return None
        if not self._outage.try_redis():
            return None
        args: list[str | int] = [session_value, mark_seconds, repr(float(cost))]
        for quota in quotas:
            interval = _MICROS / quota.refill_per_second
            args += [repr(interval), repr(interval * quota.capacity)]
        keys = [session_key, mark_key, rate_key(*address), rate_key(*viewer)]
        try:
            async with asyncio.timeout(self.redis_timeout):
                session, marked, allowed, wait_us, remaining = await self._with_session(
                    keys=keys, args=args
                )
        except (RedisError, TimeoutError) as error:
            self._outage.failed(error)
            return None
        self._outage.recovered()
        if session is None:
            return SessionCharge(session=None, marked=False, decision=None)
        return SessionCharge(
            session=session,
            marked=bool(marked),
            decision=Decision(
                allowed=bool(allowed),
                retry_after=float(wait_us) / _MICROS,
                remaining=max(float(remaining), 0.0),
            ),
        )

    async def peek(self, charges: Sequence[tuple[Quota, str]]) -> Decision:
        """Points the tightest bucket holds now, taking nothing (one round trip)."""
        return await self.acquire(charges, 0.0)

    def _acquire_locally(self, charges: Sequence[tuple[Quota, str]], cost: float) -> Decision:
        now = time.monotonic()
        wait = 0.0
        remaining = math.inf
        updates: list[tuple[str, float]] = []
        for quota, subject in charges:
            key = rate_key(quota, subject)
            interval = 1.0 / quota.refill_per_second
            tolerance = interval * quota.capacity
            tat = max(self._local.get(key, now) or now, now)
            new_tat = tat + cost * interval
            allow_at = new_tat - tolerance
            if allow_at > now:
                wait = max(wait, allow_at - now)
            else:
                updates.append((key, new_tat))
                remaining = min(remaining, (tolerance - (new_tat - now)) / interval)
        if wait > 0:
            return Decision(allowed=False, retry_after=wait, remaining=0.0)
        if cost > 0:
            for key, new_tat in updates:
                if new_tat > now:
                    self._local.put(key, new_tat, expires_at=new_tat, now=now)
        return Decision(allowed=True, retry_after=0.0, remaining=max(remaining, 0.0))


@dataclass(frozen=True)
class BackoffPolicy:
    """Failures allowed free, then a delay of ``base * 2^(n - free)`` seconds after the
    n-th (n ≥ free), at most ``max_delay_seconds``; counts are forgotten
    ``memory_seconds`` after the last delay ran out, or at once on a success."""

    free_failures: int
    base_delay_seconds: float
    max_delay_seconds: float
    memory_seconds: float = FAILURE_MEMORY_SECONDS

    def delay_after(self, failures: int) -> float:
        if failures < self.free_failures:
            return 0.0
        exponent = failures - self.free_failures
        if exponent >= 64:  # 2^64 s is past any cap
            return float(self.max_delay_seconds)
        return float(min(self.base_delay_seconds * 2**exponent, self.max_delay_seconds))


class FailureBackoff:
    """Growing delays between attempts on one subject (an account), shared by every
    process through Redis, in process while Redis is down."""

    def __init__(
        self,
        redis: Redis,
        *,
        name: str,
        redis_timeout: float = REDIS_TIMEOUT_SECONDS,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
        local_max_entries: int = LOCAL_MAX_ENTRIES,
    ) -> None:
        self.redis = redis
        self.name = name
        self.redis_timeout = redis_timeout
        self._begin = redis.register_script(_BEGIN_ATTEMPT)
        self._outage = _Outage(f"{name} failure counts", retry_interval)
        self._local: _BoundedStore[tuple[int, float]] = _BoundedStore(local_max_entries)

    @property
    def degraded(self) -> bool:
        return self._outage.down

    async def begin_attempt(self, subject: str, policy: BackoffPolicy) -> float:
        """0.0 if an attempt may go ahead now (it is counted as a failure until
        ``succeeded`` clears the count), else the seconds to wait (nothing counted)."""
        if self._outage.try_redis():
            args = [
                str(policy.free_failures),
                repr(policy.base_delay_seconds * _MICROS),
                repr(policy.max_delay_seconds * _MICROS),
                repr(policy.memory_seconds * _MICROS),
            ]
            try:
                wait_us = await asyncio.wait_for(
                    self._begin(keys=[failures_key(self.name, subject)], args=args),
                    self.redis_timeout,
                )
            except (RedisError, TimeoutError) as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()
                return float(wait_us) / _MICROS
        return self._begin_locally(subject, policy)

    async def succeeded(self, subject: str) -> None:
        """Forget the subject's failures (a right password)."""
        key = failures_key(self.name, subject)
        self._local.pop(key)
        if self._outage.try_redis():
            try:
                await asyncio.wait_for(self.redis.delete(key), self.redis_timeout)
            except (RedisError, TimeoutError) as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()

    async def failures(self, subject: str) -> int:
        """Failures counted now (attempts under way included); for tests and operators."""
        key = failures_key(self.name, subject)
        if self._outage.try_redis():
            try:
                raw = await asyncio.wait_for(self.redis.hget(key, "n"), self.redis_timeout)
            except (RedisError, TimeoutError) as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()
                return int(raw) if raw is not None else 0
        entry = self._local.get(key, time.monotonic())
        return entry[0] if entry is not None else 0

    def _begin_locally(self, subject: str, policy: BackoffPolicy) -> float:
        now = time.monotonic()
        key = failures_key(self.name, subject)
        failures, blocked_until = self._local.get(key, now) or (0, 0.0)
        if blocked_until > now:
            return blocked_until - now
        failures += 1
        delay = policy.delay_after(failures)
        self._local.put(
            key,
            (failures, now + delay),
            expires_at=now + delay + policy.memory_seconds,
            now=now,
        )
        return 0.0
