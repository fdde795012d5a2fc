"""Which failures mean "a server we depend on is unreachable", not "our code is wrong"."""

from __future__ import annotations

import asyncio

import psycopg
import redis
from sqlalchemy import exc as sa_exc


def is_unavailable(error: BaseException) -> bool:
    """PostgreSQL or Redis cannot be reached, refused us, timed out, or cancelled a
    statement for running past its budget: the request may succeed later as it is."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    if isinstance(error, psycopg.errors.QueryCanceled):
        return True
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(
        error, redis.ConnectionError | redis.TimeoutError | ConnectionError | asyncio.TimeoutError
    )
