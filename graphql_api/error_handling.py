"""Every error leaves with ``extensions.code``; only our own failures are logged at ERROR.

The classes of error, and what the client sees:
- raised on purpose (``ApertureError``): its code and message, logged at INFO;
- the document did not parse or validate, or a variable could not be coerced: a client
  code (``GRAPHQL_PARSE_FAILED``, ``GRAPHQL_VALIDATION_FAILED``, ``BAD_USER_INPUT``), INFO;
- a database or Redis we depend on is unreachable: ``SERVICE_UNAVAILABLE`` for the
  fields that needed it, one WARNING line;
- anything else is our bug: logged once at ERROR with its traceback, and the client gets
  ``INTERNAL_SERVER_ERROR`` with no internals in the message.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult, StreamExecutionResult
from strawberry.types.execution import ExecutionContext

from db.errors import is_unavailable
from db.shards import UnknownShardError
from domain.errors import ApertureError, NotFound

log = logging.getLogger("domain.errors")

_VARIABLE = re.compile(r"^Variable '\$(\w+)'")
UNAVAILABLE_MESSAGE = "A database this field needs is unavailable or busy: try again shortly"
INTERNAL_MESSAGE = "Internal server error"


def classify(error: GraphQLError) -> tuple[str, dict[str, Any]]:
    """The client-facing code of ``error``, and any extensions to add."""
    original = error.original_error
    if isinstance(original, ApertureError):
        return original.code, {}
    if isinstance(original, UnknownShardError):
        return NotFound.code, {}
    if original is not None and is_unavailable(original):
        return "SERVICE_UNAVAILABLE", {}
    if isinstance(original, CannotGetOperationTypeError):
        # No operation by the name sent, as HTTP answers it (graphql_api/http.py).
        return "GRAPHQL_VALIDATION_FAILED", {}
    if isinstance(original, (InvalidOperationTypeError, MissingQueryError)):
        # An operation the transport does not run (a mutation over the legacy
        # graphql-ws protocol's start), or none at all.
        return "BAD_REQUEST", {}
    existing = (error.extensions or {}).get("code")
    if isinstance(existing, str):
        return existing, {}
    if isinstance(error, GraphQLSyntaxError):
        if "tokens. Parsing aborted" in error.message:
            return "QUERY_TOO_COMPLEX", {"limit": "tokens"}
        return "GRAPHQL_PARSE_FAILED", {}
    variable = _VARIABLE.match(error.message)
    if variable is not None and error.path is None:
        # Coercion of the request's variables: raised before any field, names the variable.
        return "BAD_USER_INPUT", {"variable": variable.group(1)}
    if original is None and error.path is None:
        return "GRAPHQL_VALIDATION_FAILED", {}
    return "INTERNAL_SERVER_ERROR", {}


def is_client_code(code: str) -> bool:
    return code not in ("INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE")


class _Quieted:
    """At most one line per ``interval`` for a condition that can repeat on every request
    (a database down, a full pool), with the count of the lines it held back."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last.get(key, -self.interval) < self.interval:
            self.held[key] = self.held.get(key, 0) + 1
            return
        self.last[key] = now
        held = self.held.pop(key, 0)
        suffix = f" ({held} more like it since the last report)" if held else ""
        log.warning(message + suffix, *args)


quieted = _Quieted()


def log_errors(errors: list[GraphQLError], execution_context: ExecutionContext | None) -> None:
    operation = execution_context.operation_name if execution_context else None
    unavailable: list[GraphQLError] = []
    for error in errors:
        code, _ = classify(error)
        where = ".".join(str(part) for part in error.path) if error.path else "-"
        if is_client_code(code):
            log.info("client error %s at %s (%s): %s", code, where, operation, error.message)
        elif code == "SERVICE_UNAVAILABLE":
            unavailable.append(error)
        else:
            log.error(
                "unexpected error at %s (%s): %s",
                where,
                operation,
                error.message,
                exc_info=error.original_error,
            )
    if unavailable:
        # One line per operation at most, and per kind of failure at most every 10 s.
        first = unavailable[0].original_error
        kind = type(first).__name__ if first is not None else "dependency"
        reason = str(first).splitlines()[0][:200] if first is not None and str(first) else ""
        quieted.warning(
            f"unavailable:{kind}",
            "%d field(s) of %s failed, %s: %s",
            len(unavailable),
            operation or "-",
            kind,
            reason,
        )


def typed(error: GraphQLError) -> GraphQLError:
    code, extra = classify(error)
    if code == "INTERNAL_SERVER_ERROR" and error.original_error is not None:
        message = INTERNAL_MESSAGE
    elif code == "SERVICE_UNAVAILABLE" and not isinstance(error.original_error, ApertureError):
        message = UNAVAILABLE_MESSAGE
    elif isinstance(error.original_error, UnknownShardError):
        # An id whose bits name a shard that does not exist names no object.
        message = "No object has this id"
    else:
        message = error.message
    extensions: dict[str, Any] = {**(error.extensions or {}), **extra, "code": code}
    if code in ("INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE") and not isinstance(
        error.original_error, ApertureError
    ):
        extensions = {"code": code}
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class TypedErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [typed(error) for error in result.errors]

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        # Over a websocket each result is sent as it comes, before the operation ends.
        if isinstance(result, ExecutionResult) and result.errors:
            result.errors = [typed(error) for error in result.errors]
        yield
