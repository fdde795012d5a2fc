"""GraphQL over HTTP, by the spec, hardened for a public endpoint.

One ASGI endpoint instead of Strawberry's router, so that every step a hostile request
could abuse is ours to bound (SECURITY.md lists the limits):

1. method and media type: POST with ``application/json``; GET for queries only (a
   mutation over GET is 405); the answer is ``application/graphql-response+json`` when
   the client accepts it (then request errors are 4xx), else ``application/json``;
2. the body is read up to ``max_body_bytes`` (413 past it) and must be strict UTF-8
   JSON, an object, nested at most ``MAX_JSON_NESTING`` deep;
3. admission: at most ``max_concurrent_requests`` operations run at once per process;
   the rest wait up to ``queue_timeout_seconds`` and then get a fast 503. Idle
   keep-alive connections never count: only requests in this handler do;
4. the operation runs under a wall-clock budget, and is cancelled (its SQL with it) when
   the budget runs out or the client disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import (
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from db.documents import PersistedDocuments
from domain.state import AppState
from graphql_api.context import Context
from graphql_api.edge import error_document
from graphql_api.error_handling import quieted, typed
from graphql_api.graphiql import GRAPHIQL_HEADERS, render_graphiql_page
from graphql_api.guard import document_fee, request_quotas
from graphql_api.persisted import DocumentRequest, DocumentResolver, PersistedQueryError
from graphql_api.schema import schema
from graphql_api.text import find_invalid_text
from infra.settings import Settings

log = logging.getLogger("graphql_api.http")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
MAX_JSON_NESTING = 64
T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its request was read: nothing to answer."""


class RequestRefused(Exception):
    """The request is refused whole, before any GraphQL runs."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = dict(headers or {})
        self.extensions = extensions


def refusal_before_parsing(
    *, query: str, variables: object, max_document_bytes: int
) -> RequestRefused | None:
    """What an operation is refused before its document is parsed (over HTTP and over a
    socket): a document too long, since parsing is the one step whose cost grows with the
    text alone, and text in the variables that could never be stored."""
    if len(query) > max_document_bytes:
        return RequestRefused(
            400,
            "QUERY_TOO_COMPLEX",
            f"The document is longer than {max_document_bytes:,} characters",
            limit="document",
            value=len(query),
            maximum=max_document_bytes,
        )
    invalid = find_invalid_text(variables, "variables") if variables else None
    if invalid is None:
        return None
    where, reason = invalid
    variable = where.removeprefix("variables.").split(".")[0].split("[")[0]
    return RequestRefused(400, "BAD_USER_INPUT", f"{where} contains {reason}", variable=variable)


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


@dataclass(frozen=True)
class IncomingRequest:
    """A request as sent: its document may be named by hash only (graphql_api/persisted.py)."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


class GraphQLEndpoint:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.settings: Settings = state.runtime.settings
        self.slots = asyncio.Semaphore(self.settings.max_concurrent_requests)
        self.graphiql_page = render_graphiql_page().encode()
        self.documents = DocumentResolver(
            self.settings,
            PersistedDocuments(
                state.runtime.redis, ttl_seconds=self.settings.persisted_documents_ttl_seconds
            ),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        method = scope["method"]
        media_type = APPLICATION_JSON
        try:
            if method not in ("GET", "POST"):
                raise RequestRefused(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "Use POST, or GET for queries",
                    headers={"Allow": "GET, POST"},
                )
            accept = headers.get("accept", "")
            if method == "GET" and self._wants_graphiql(scope, accept):
                await _send(
                    send, 200, self.graphiql_page, "text/html; charset=utf-8", GRAPHIQL_HEADERS
                )
                return
            media_type = negotiate(accept)
            incoming = await self._read_request(scope, receive, headers, method)
            request = await self._with_document(incoming)
            await self._serve(scope, receive, send, request, media_type=media_type, method=method)
        except RequestRefused as refused:
            log.info("refused %s %s: %s %s", method, scope["path"], refused.status, refused)
            body = error_document(str(refused), refused.code, **refused.extensions)
            await _send(send, refused.status, body, media_type, refused.headers)
        except ClientGone:
            log.info("client went away while sending %s %s", method, scope["path"])
        except Exception:
            log.exception("unexpected error serving %s %s", method, scope["path"])
            body = error_document("Internal server error", "INTERNAL_SERVER_ERROR")
            await _send(send, 500, body, media_type)

    def _wants_graphiql(self, scope: Scope, accept: str) -> bool:
        if not self.settings.graphiql_enabled or "text/html" not in accept:
            return False
        query_string = scope.get("query_string", b"")
        return b"query=" not in query_string and b"extensions=" not in query_string

    async def _with_document(self, incoming: IncomingRequest) -> GraphQLRequest:
        try:
            query = await self.documents.resolve(
                DocumentRequest(query=incoming.query, extensions=incoming.extensions)
            )
        except PersistedQueryError as error:
            raise RequestRefused(error.status, error.code, str(error)) from None
        return GraphQLRequest(
            query=query,
            variables=incoming.variables,
            operation_name=incoming.operation_name,
            extensions=incoming.extensions,
        )

    async def _read_request(
        self, scope: Scope, receive: Receive, headers: Headers, method: str
    ) -> IncomingRequest:
        if method == "GET":
            raw: dict[str, Any] = {}
            for name, value in _query_pairs(scope):
                raw[name] = _json(value.encode()) if name in ("variables", "extensions") else value
        else:
            content_type = headers.get("content-type", "")
            mime, _, parameters = content_type.partition(";")
            if mime.strip().lower() != APPLICATION_JSON:
                raise RequestRefused(
                    415, "UNSUPPORTED_MEDIA_TYPE", "Send the request as application/json"
                )
            for parameter in parameters.split(";"):
                name, _, value = parameter.partition("=")
                charset = value.strip().strip('"').lower()
                if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
                    raise RequestRefused(415, "UNSUPPORTED_MEDIA_TYPE", "The body must be UTF-8")
            try:
                async with asyncio.timeout(self.settings.body_timeout_seconds):
                    body = await self._read_body(receive, headers)
            except TimeoutError:
                raise RequestRefused(
                    408, "REQUEST_TIMEOUT", "The body took too long to arrive"
                ) from None
            if not body:
                raise RequestRefused(400, "BAD_REQUEST", "The request body is empty")
            parsed = _json(body)
            if not isinstance(parsed, dict):
                raise RequestRefused(400, "BAD_REQUEST", "The body must be a JSON object")
            raw = parsed
        return _graphql_request(raw)

    async def _read_body(self, receive: Receive, headers: Headers) -> bytes:
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        # isdigit() alone admits "²", which int() refuses (httptools and h11 refuse it
        # before us, other servers may not).
        if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: GraphQLRequest,
        *,
        media_type: str,
        method: str,
    ) -> None:
        refused = refusal_before_parsing(
            query=request.query,
            variables=request.variables,
            max_document_bytes=self.settings.max_document_bytes,
        )
        if refused is not None:
            raise refused
        await self._refuse_if_broke(scope, request)
        async with self._admission():
            outcome = await _until_disconnect(receive, self._execute(scope, request, method=method))
        if outcome is None:
            log.info("client went away: operation %s cancelled", request.operation_name or "-")
            return
        result, context = outcome
        await self._charge_refused_document(result, context, request)
        status, body, extra_headers = render(result, media_type=media_type)
        await _send(send, status, body, media_type, extra_headers)

    async def _refuse_if_broke(self, scope: Scope, request: GraphQLRequest) -> None:
        """A long document is only parsed for an address that can pay for reading it: one
        round trip, spent where parsing would cost far more (short ones are cheap)."""
        fee = document_fee(request.query)
        if not self.settings.rate_limits or fee == 1:
            return
        ip_quota, _ = request_quotas(self.settings)
        decision = await self.state.rate_limiter.peek([(ip_quota, _client_ip(scope))])
        if decision.remaining < fee:
            retry_after = max(1, math.ceil((fee - decision.remaining) / ip_quota.refill_per_second))
            raise RequestRefused(
                429,
                "RATE_LIMITED",
                f"Rate limit exceeded: reading this document costs {fee} points",
                headers={"Retry-After": str(retry_after)},
                retryAfter=retry_after,
            )

    async def _charge_refused_document(
        self, result: ExecutionResult, context: Context, request: GraphQLRequest
    ) -> None:
        """Operations are charged before they run; a document refused before that (it did
        not parse, validate, or pass a limit) still cost the reading, and pays for it, so
        refused documents cannot be sent for free."""
        errors = result.errors or []
        if not self.settings.rate_limits or result.data is not None or not errors:
            return
        if any((error.extensions or {}).get("code") == "RATE_LIMITED" for error in errors):
            return  # the guard charged, or refused, already
        if any(error.path is not None for error in errors):
            return  # it ran: the guard charged it
        ip_quota, _ = request_quotas(self.settings)
        await self.state.rate_limiter.acquire(
            [(ip_quota, context.client_ip)], cost=document_fee(request.query)
        )

    @contextlib.asynccontextmanager
    async def _admission(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.settings.queue_timeout_seconds):
                await self.slots.acquire()
        except TimeoutError:
            quieted.warning(
                "overloaded",
                "overloaded: a request waited %ss for a slot and got a 503",
                self.settings.queue_timeout_seconds,
            )
            raise RequestRefused(
                503,
                "OVERLOADED",
                "The server is busy: retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        try:
            yield
        finally:
            self.slots.release()

    async def _execute(
        self, scope: Scope, request: GraphQLRequest, *, method: str
    ) -> tuple[ExecutionResult, Context]:
        # Who is calling is checked with the operation's rate-limit charge, once its cost is
        # known (graphql_api/guard.py): one round trip on a cached session.
        context = Context(
            state=self.state,
            authorization=Headers(scope=scope).get("authorization"),
            client_ip=_client_ip(scope),
        )
        allowed = (
            (OperationType.QUERY,)
            if method == "GET"
            else (OperationType.QUERY, OperationType.MUTATION)
        )
        budget = self.settings.operation_timeout_seconds
        context.operation_name_given = request.operation_name is not None
        try:
            result = await _within_budget(
                schema.execute(
                    request.query,
                    variable_values=request.variables,
                    context_value=context,
                    operation_name=request.operation_name,
                    allowed_operation_types=allowed,
                ),
                budget=budget,
                committed=lambda: context.sessions.committed_writes > 0,
            )
        except CommittedPastBudget:
            quieted.warning(
                "timeout",
                "operation %s ran past twice its %ss budget after a commit and was cancelled",
                request.operation_name or "-",
                budget,
            )
            raise RequestRefused(
                503,
                "TIMEOUT",
                "The operation saved its changes but ran past its time budget before it "
                "could answer: they are kept, do not send it again; read them back instead",
                committed=True,
            ) from None
        except TimeoutError:
            quieted.warning(
                "timeout",
                "operation %s ran past its %ss budget and was cancelled",
                request.operation_name or "-",
                budget,
            )
            raise RequestRefused(
                503,
                "TIMEOUT",
                f"The operation ran past its time budget of {budget:g} s and was cancelled",
                headers={"Retry-After": "1"},
            ) from None
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise RequestRefused(
                    400, "BAD_REQUEST", "Subscriptions are not served over HTTP"
                ) from None
            raise RequestRefused(
                405,
                "METHOD_NOT_ALLOWED",
                f"A {error.operation_type.value} must be sent with POST",
                headers={"Allow": "POST"},
            ) from None
        except CannotGetOperationTypeError:
            wanted = request.operation_name
            raise RequestRefused(
                400,
                "GRAPHQL_VALIDATION_FAILED",
                f"The document has no operation named {wanted[:100]!r}"
                if wanted is not None
                else "The document has no operation to run",
            ) from None
        except MissingQueryError:
            raise RequestRefused(400, "BAD_REQUEST", "No query was sent") from None
        if context.session_unavailable:
            raise RequestRefused(
                503,
                "SERVICE_UNAVAILABLE",
                "The database holding this session is unavailable: try again shortly",
                headers={"Retry-After": "1"},
            )
        return result, context


def render(result: ExecutionResult, *, media_type: str) -> tuple[int, bytes, dict[str, str]]:
    """The status and body for a result, by the GraphQL-over-HTTP rules: a request that
    never executed (it did not parse, validate or coerce) has no ``data`` and, under
    graphql-response+json, a 400; refusals of the whole request keep their own status."""
    # Errors raised while parsing leave Strawberry's operation hooks early, untyped.
    errors = [
        error if (error.extensions or {}).get("code") else typed(error)
        for error in result.errors or []
    ]
    body: dict[str, Any] = {}
    request_error = result.data is None and bool(errors) and all(e.path is None for e in errors)
    if not request_error:
        body["data"] = result.data
    if errors:
        body["errors"] = [error.formatted for error in errors]
    if result.extensions:
        body["extensions"] = result.extensions
    headers: dict[str, str] = {}
    limited = [
        error.extensions["retryAfter"]
        for error in errors
        if error.extensions and error.extensions.get("code") == "RATE_LIMITED"
    ]
    if limited and result.data is None:
        # Nothing was answered: the request was refused whole (the operation's budget, or
        # a throttled logIn, whose null bubbles up to the root).
        status = 429
        headers["Retry-After"] = str(max(int(seconds) for seconds in limited))
    elif request_error and media_type == GRAPHQL_RESPONSE_JSON:
        status = 400
    else:
        status = 200
    return status, orjson.dumps(body), headers


def negotiate(accept: str) -> str:
    """graphql-response+json only when asked for; JSON for ``*/*``, none, or JSON."""
    if not accept:
        return APPLICATION_JSON
    offered: list[tuple[float, str]] = []
    for part in accept.split(","):
        mime, *parameters = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0:
            offered.append((weight, mime.lower()))
    for _, mime in sorted(offered, key=lambda pair: -pair[0]):
        if mime == GRAPHQL_RESPONSE_JSON:
            return GRAPHQL_RESPONSE_JSON
        if mime in (APPLICATION_JSON, "application/*", "*/*"):
            return APPLICATION_JSON
    raise RequestRefused(
        406,
        "NOT_ACCEPTABLE",
        f"Accept {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}",
    )


class CommittedPastBudget(TimeoutError):
    """The operation committed a write, and ran past its budget twice over."""


async def _within_budget(work: Awaitable[T], *, budget: float, committed: Callable[[], bool]) -> T:
    """``work``'s result, or TimeoutError once it has run ``budget`` seconds and is
    cancelled. Work that has committed a write by then gets as long again to finish what
    follows its commit (events, caches): cancelled there, its client would get an error
    for a write that happened, and retry it. Cancelled after that too, it raises
    ``CommittedPastBudget``, so that the client is told its write was kept."""
    task = asyncio.ensure_future(work)
    wrote = False
    try:
        done, _ = await asyncio.wait((task,), timeout=budget)
        if not done and committed():
            wrote = True
            log.warning("operation past its budget after a commit: letting it finish")
            done, _ = await asyncio.wait((task,), timeout=budget)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise CommittedPastBudget if wrote else TimeoutError


async def _until_disconnect(receive: Receive, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None if the client disconnected first (``work`` is then
    cancelled, and with it any SQL statement it was waiting on)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task.done():
        watcher.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def _graphql_request(raw: dict[str, Any]) -> IncomingRequest:
    query = raw.get("query")
    variables = raw.get("variables")
    operation_name = raw.get("operationName")
    extensions = raw.get("extensions")
    if query is not None and not isinstance(query, str):
        raise RequestRefused(400, "BAD_REQUEST", "'query' must be a string with the document")
    if variables is not None and not isinstance(variables, dict):
        raise RequestRefused(400, "BAD_REQUEST", "'variables' must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestRefused(400, "BAD_REQUEST", "'operationName' must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestRefused(400, "BAD_REQUEST", "'extensions' must be an object")
    return IncomingRequest(
        query=query, variables=variables, operation_name=operation_name, extensions=extensions
    )


def _json(raw: bytes) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        reason = str(error).split(":")[0]
        if "surrogate" in reason:
            # Well-formed JSON to a lenient parser, but no text we could ever store.
            raise RequestRefused(
                400, "BAD_USER_INPUT", f"A string contains an unpaired UTF-16 surrogate ({reason})"
            ) from None
        raise RequestRefused(400, "BAD_REQUEST", f"The body is not valid JSON: {reason}") from None
    if json_nesting(value) > MAX_JSON_NESTING:
        raise RequestRefused(
            400, "BAD_REQUEST", f"JSON is nested more than {MAX_JSON_NESTING} deep"
        )
    return value


def json_nesting(value: Any) -> int:
    """Depth of a JSON value, iteratively (orjson parses up to 1024 levels)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _query_pairs(scope: Scope) -> list[tuple[str, str]]:
    raw: bytes = scope.get("query_string", b"")
    if not raw.isascii():
        raise RequestRefused(400, "BAD_REQUEST", "The query string must be percent-encoded")
    try:
        return parse_qsl(raw.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise RequestRefused(400, "BAD_REQUEST", "The query string is not UTF-8") from None


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _too_large(limit: int) -> RequestRefused:
    return RequestRefused(
        413, "PAYLOAD_TOO_LARGE", f"The body is larger than {limit:,} bytes", maxBytes=limit
    )


async def _send(
    send: Send,
    status: int,
    body: bytes,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    content_type = media_type if "charset" in media_type else f"{media_type}; charset=utf-8"
    raw_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers.extend(
        (name.lower().encode(), value.encode()) for name, value in (headers or {}).items()
    )
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
