"""Argon2 password hashing off the event loop, in a bounded pool.

An Argon2id hash at its production cost (64 MiB, 3 passes) takes about 100 ms of CPU. On
the event loop it would stall every other request of the process for that long, so hashes
run in a small thread pool (argon2-cffi releases the GIL). The work waiting for a thread
is bounded too: past ``threads + queue`` jobs a log-in or sign-up is refused at once with
``SERVICE_UNAVAILABLE`` instead of queueing without end (a flood of log-ins would otherwise
grow memory and latency for everyone).

Unknown accounts are verified against a dummy hash with the current parameters, so that a
wrong password costs the same time whether or not the account exists.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import ARGON2_VERSION

from domain.errors import ServiceUnavailable

T = TypeVar("T")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _dummy_hash_for(hasher: PasswordHasher) -> str:
    """A well-formed hash with ``hasher``'s parameters that no password matches (random
    salt and digest): verifying against it costs what verifying a real one does."""
    return (
        f"$argon2{hasher.type.name.lower()}$v={ARGON2_VERSION}"
        f"$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
        f"${_b64(os.urandom(hasher.salt_len))}${_b64(os.urandom(hasher.hash_len))}"
    )


_hasher = PasswordHasher()
_dummy_hash = _dummy_hash_for(_hasher)


def configure_password_hashing(*, memory_cost_kib: int, time_cost: int) -> None:
    """Change the Argon2 cost of new hashes (and of the dummy hash with them)."""
    global _hasher, _dummy_hash
    hasher = PasswordHasher(memory_cost=memory_cost_kib, time_cost=time_cost)
    _hasher, _dummy_hash = hasher, _dummy_hash_for(hasher)


def current_hasher() -> PasswordHasher:
    return _hasher


def dummy_hash() -> str:
    return _dummy_hash


def hash_password(password: str) -> str:
    """Blocking: run it in a ``PasswordHashPool``."""
    return _hasher.hash(password)


def verify_password(encoded: str | None, password: str) -> bool:
    """Blocking. ``encoded`` None (no such account) verifies against the dummy hash, so it
    takes as long as a real account's wrong password, and is always False."""
    hasher, dummy = _hasher, _dummy_hash
    try:
        hasher.verify(encoded if encoded is not None else dummy, password)
    except (VerificationError, InvalidHashError):
        return False
    return encoded is not None


class PasswordHashPool:
    """``threads`` hashing threads and at most ``queue`` jobs waiting for one."""

    def __init__(self, *, threads: int, queue: int) -> None:
        self.threads = threads
        self.queue = queue
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        # Reserved slots: jobs running, waiting, or about to be submitted. Released from
        # the worker thread (or the loop, on cancel), hence the lock.
        self._lock = threading.Lock()
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def reserve(self) -> HashSlot:
        """A slot for one job, or SERVICE_UNAVAILABLE if every thread is busy and the
        queue is full. Reserve before any other work a refusal should not leave behind."""
        with self._lock:
            if self._in_use >= self.threads + self.queue:
                raise ServiceUnavailable(
                    "Too many log-ins and sign-ups at once: try again in a moment"
                )
            self._in_use += 1
        return HashSlot(self)

    def _release(self, _future: object = None) -> None:
        with self._lock:
            self._in_use -= 1

    async def hash(self, password: str) -> str:
        with self.reserve() as slot:
            return await slot.run(hash_password, password)

    async def verify(self, encoded: str | None, password: str) -> bool:
        with self.reserve() as slot:
            return await slot.run(verify_password, encoded, password)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class HashSlot:
    """One reserved job in a ``PasswordHashPool``; use as a context manager."""

    def __init__(self, pool: PasswordHashPool) -> None:
        self._pool = pool
        self._submitted = False
        self._closed = False

    async def run(self, function: Callable[..., T], *args: object) -> T:
        if self._submitted or self._closed:
            raise RuntimeError("a hash slot runs one job")
        future: Future[T] = self._pool._executor.submit(function, *args)
        self._submitted = True
        # The slot frees when the job ends, or when it is cancelled before starting
        # (a request that timed out); a job already running keeps its thread until done.
        future.add_done_callback(self._pool._release)
        return await asyncio.wrap_future(future)

    def __enter__(self) -> HashSlot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._submitted and not self._closed:
            self._pool._release()
        self._closed = True
