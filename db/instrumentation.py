"""Counts SQL statements and Redis round trips made on behalf of one unit of work.

A counter is bound to a ``contextvars`` context, so it follows a GraphQL request into
every task it spawns (DataLoader batches, scatter-gather) and never sees other requests
or background workers. Tests use it to prove that resolvers have no N+1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@dataclass
class WorkCounter:
    sql_statements: int = 0
    redis_round_trips: int = 0
    statements_by_database: Counter[str] = field(default_factory=Counter)
    statements: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.sql_statements = 0
        self.redis_round_trips = 0
        self.statements_by_database.clear()
        self.statements.clear()


_current: ContextVar[WorkCounter | None] = ContextVar("aperture_work_counter", default=None)


@contextmanager
def count_work() -> Iterator[WorkCounter]:
    counter = WorkCounter()
    token = _current.set(counter)
    try:
        yield counter
    finally:
        _current.reset(token)


@contextmanager
def uncounted() -> Iterator[None]:
    """Work here counts toward no counter (a check that is not part of the request)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def record_redis_round_trip() -> None:
    counter = _current.get()
    if counter is not None:
        counter.redis_round_trips += 1


# Set on a connection's info when its transaction changes rows (``db/session.py`` reads it).
WROTE = "aperture.wrote"
_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE")


def _before_cursor_execute(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    if statement.lstrip()[:6].upper().startswith(_WRITES):
        conn.info[WROTE] = True
    counter = _current.get()
    if counter is not None:
        counter.sql_statements += 1
        counter.statements_by_database[str(conn.engine.url.database)] += 1
        counter.statements.append(statement)


_instrumented = False


def instrument_sqlalchemy() -> None:
    """Listen on every engine once; cheap when no counter is active (one ContextVar get
    and a look at the statement's first word)."""
    global _instrumented
    if not _instrumented:
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
        _instrumented = True
