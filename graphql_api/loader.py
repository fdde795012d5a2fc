"""The per-operation batch loader every field reads through.

A ``Loader`` batches the keys asked for in one tick of the event loop into one call of
its batch function, as a DataLoader does, and keeps what it loaded for the rest of the
operation. A value it already holds (loaded before, or *primed* by a page's planned read,
``graphql_api/posts/loaders.py: prime_page``) answers at once: ``get`` hands back the value
itself, not a future, so a page of 20 posts whose counters were read ahead costs its fields
no future, no task and no await each. A key it does not hold yet gives a future, settled
when the batch has loaded.

Resolvers return what ``get`` gives (``Loaded[T]``: the value, or an awaitable of it),
mapped with ``then``; both executors accept either (graphql-core awaits an awaitable, and so
does a compiled plan, ``graphql_api/compiled.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeAlias, TypeGuard, TypeVar, cast

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
R = TypeVar("R")

# A loader's answer: the value when it is known, else an awaitable of it.
Loaded: TypeAlias = T | Awaitable[T]


def pending(answer: object) -> TypeGuard[Awaitable[Any]]:
    """Whether ``answer`` is still to be awaited. Values loaded are rows, counts, flags and
    lists, never awaitables, so this asks the type alone (``inspect.isawaitable`` also
    asks the ``Awaitable`` ABC, several times slower for a value, on every field)."""
    return hasattr(type(answer), "__await__")


def then(answer: Loaded[T], use: Callable[[T], Loaded[R]]) -> Loaded[R]:
    """``use`` applied to ``answer``: at once when the answer is a value (and ``use`` gives
    one), else an awaitable."""
    if pending(answer):
        return _then(answer, use)
    return use(answer)  # type: ignore[arg-type]


async def _then(answer: Awaitable[T], use: Callable[[T], Loaded[R]]) -> R:
    result = use(await answer)
    if pending(result):
        return await cast(Awaitable[R], result)
    return result  # type: ignore[return-value]


class Loader(Generic[K, V]):
    """Batches loads by key for one operation; ``load_many`` is the batch function, giving a
    value for each key in order. ``key_of`` maps a key to what it is held by (a message to
    its thread and position), when keys are not hashable or not unique as they are."""

    __slots__ = ("_batch", "_key_of", "_load_many", "_pending", "_values")

    def __init__(
        self,
        load_many: Callable[[list[K]], Awaitable[Sequence[V]]],
        *,
        key_of: Callable[[K], Hashable] | None = None,
    ) -> None:
        self._load_many = load_many
        self._key_of = key_of
        self._values: dict[Hashable, V] = {}
        self._pending: dict[Hashable, asyncio.Future[V]] = {}
        # Keys waiting for the next dispatch; None when none is scheduled.
        self._batch: list[K] | None = None

    def _held_by(self, key: K) -> Hashable:
        return key if self._key_of is None else self._key_of(key)

    # Known values ----------------------------------------------------------------------

    def prime(self, key: K, value: V) -> None:
        """Hold ``value`` for ``key`` (read ahead elsewhere in this operation), unless a
        value is already held: the first answer an operation read is the one it keeps."""
        self._values.setdefault(self._held_by(key), value)

    def prime_many(self, values: Mapping[K, V]) -> None:
        held = self._values
        if not held and self._key_of is None:
            held.update(cast(Mapping[Hashable, V], values))  # nothing held yet to keep
        elif self._key_of is None:
            for key, value in values.items():
                held.setdefault(key, value)
        else:
            for key, value in values.items():
                held.setdefault(self._key_of(key), value)

    def known(self, key: K) -> bool:
        return self._held_by(key) in self._values

    def peek(self, key: K) -> V | None:
        """The value held for ``key``, without loading it; None when none is held."""
        return self._values.get(self._held_by(key))

    # Reads -----------------------------------------------------------------------------

    def get(self, key: K) -> Loaded[V]:
        """The value if held, else a future of it (loaded with this tick's batch)."""
        held = key if self._key_of is None else self._key_of(key)
        try:
            return self._values[held]
        except KeyError:
            return self._future(key, held)

    def get_many(self, keys: Sequence[K]) -> Loaded[list[V]]:
        """The values if all are held, else an awaitable of them, in order."""
        values = self._values
        try:
            if self._key_of is None:
                return [values[key] for key in keys]
            return [values[self._key_of(key)] for key in keys]
        except KeyError:
            return self._gather(keys)

    async def load(self, key: K) -> V:
        held = self._held_by(key)
        try:
            return self._values[held]
        except KeyError:
            return await self._future(key, held)

    async def load_many(self, keys: Sequence[K]) -> list[V]:
        answer = self.get_many(keys)
        if isinstance(answer, list):
            return answer
        return await answer

    def missing(self, keys: Iterable[K]) -> list[K]:
        """Those of ``keys`` not held, once each."""
        values = self._values
        if self._key_of is None:
            return [key for key in dict.fromkeys(keys) if key not in values]
        return list({self._key_of(key): key for key in keys if not self.known(key)}.values())

    async def fill(self, keys: Sequence[K]) -> None:
        """Load ``keys`` now, in one call of the batch function, and hold them: how a
        page loads a relation for all its rows at once, ahead of their fields, without a
        future per key (keys already held, or already on their way, are not read again)."""
        wanted = self.missing(keys)
        on_the_way = [
            self._pending[held] for key in wanted if (held := self._held_by(key)) in self._pending
        ]
        wanted = [key for key in wanted if self._held_by(key) not in self._pending]
        if wanted:
            loaded = list(await self._load_many(wanted))
            if len(loaded) != len(wanted):
                raise ValueError(f"a batch load of {len(wanted)} keys gave {len(loaded)} values")
            for key, value in zip(wanted, loaded, strict=True):
                self._values.setdefault(self._held_by(key), value)
        if on_the_way:
            await asyncio.gather(*on_the_way)

    async def _gather(self, keys: Sequence[K]) -> list[V]:
        futures = [
            self._future(key, held)
            for key in keys
            if (held := self._held_by(key)) not in self._values
        ]
        if futures:
            await asyncio.gather(*futures)
        values = self._values
        return [values[self._held_by(key)] for key in keys]

    # Batching ---------------------------------------------------------------------------

    def _future(self, key: K, held: Hashable) -> asyncio.Future[V]:
        future = self._pending.get(held)
        if future is not None and not future.cancelled():
            return future
        loop = asyncio.get_running_loop()
        future = self._pending[held] = loop.create_future()
        if self._batch is None:
            self._batch = []
            # As Strawberry's DataLoader: the batch closes when its task starts, after
            # everything the current and the next tick ask for has joined it.
            loop.call_soon(self._schedule, loop)
        self._batch.append(key)
        return future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        batch, self._batch = self._batch or [], None
        values, pending = self._values, self._pending
        waiting: dict[Hashable, K] = {}
        for key in batch:
            held = self._held_by(key)
            future = pending.get(held)
            if future is None or future.done():
                continue
            if held in values:  # primed while it waited
                del pending[held]
                future.set_result(values[held])
            else:
                waiting.setdefault(held, key)
        if not waiting:
            return
        try:
            loaded = list(await self._load_many(list(waiting.values())))
            if len(loaded) != len(waiting):
                raise ValueError(f"a batch load of {len(waiting)} keys gave {len(loaded)} values")
        except Exception as error:
            for held in waiting:
                future = pending.pop(held)
                if not future.done():
                    future.set_exception(error)
            return
        for held, value in zip(waiting, loaded, strict=True):
            values.setdefault(held, value)
            future = pending.pop(held)
            if not future.done():
                future.set_result(values[held])


async def fill(*relations: tuple[Loader[Any, Any], Sequence[Any]]) -> None:
    """Each loader's keys it does not hold yet, loaded now: each loader in one call, the
    loaders concurrently (a page's relations, ahead of its fields)."""
    needed = [(loader, keys) for loader, keys in relations if loader.missing(keys)]
    if len(needed) == 1:
        loader, keys = needed[0]
        await loader.fill(keys)
    elif needed:
        await asyncio.gather(*(loader.fill(keys) for loader, keys in needed))
