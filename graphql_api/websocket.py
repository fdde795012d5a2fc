"""Subscriptions over websockets at /graphql: ``graphql-transport-ws`` and, for older
clients, the legacy ``graphql-ws``, both through Strawberry's handlers.

The token is checked once, at ``connection_init``, by the same path as HTTP
(``graphql_api/auth.py``); a socket without a valid one is refused with the protocol's
close (4403, or ``connection_error`` on the legacy protocol). Strawberry times out a
missing ``connection_init`` only on ``graphql-transport-ws``; the legacy handler here
closes such a socket too (4408), so no one holds a socket without signing in.

What a client sends is checked here before Strawberry's handlers see it, since they
index into each message as it comes (a ``[]`` raised a TypeError that dropped the
socket). A message over ``max_body_bytes``, the limit of an HTTP body, closes the socket
with 1009 before it is parsed; the rest are parsed as HTTP bodies are (orjson, nested at
most ``MAX_JSON_NESTING`` deep). A malformed message closes a ``graphql-transport-ws``
socket with 4400 and the reason, as that protocol's spec says; on the legacy protocol it
is answered with ``connection_error`` (or ``error``, for an operation's message with an
id) and the socket carries on, as that spec says. Every error sent on either protocol
carries ``extensions.code``, and nothing a client sends is logged above INFO.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from starlette.websockets import WebSocketDisconnected as StarletteWebSocketDisconnected
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage, StartMessage
from strawberry.types.unset import UnsetType

from domain.state import AppState
from graphql_api.auth import authenticate_caller, authorization_from_connection_params
from graphql_api.context import Context
from graphql_api.http import MAX_JSON_NESTING, json_nesting, refusal_before_parsing
from graphql_api.schema import schema
from infra.settings import Settings

log = logging.getLogger(__name__)

NO_TOKEN = 'Send connection_init with {"Authorization": "Bearer <token>"}'
INIT_TIMEOUT_CODE = 4408
MESSAGE_TOO_BIG_CODE = 1009
INTERNAL_ERROR_CODE = 1011
# A close frame's reason is at most 123 bytes of UTF-8 (RFC 6455, 5.5).
MAX_CLOSE_REASON_BYTES = 123
SUBSCRIPTION_LIMIT = "Subscription limit reached"


@dataclass(frozen=True)
class Malformed:
    """A frame that is no JSON message: binary, not JSON, or nested too deep."""

    reason: str


def _parse(text: str) -> object:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return Malformed(f"WebSocket message must be valid JSON ({str(error).split(':')[0]})")
    if json_nesting(value) > MAX_JSON_NESTING:
        return Malformed(f"JSON is nested more than {MAX_JSON_NESTING} deep")
    return value


def _utf8_length_over(text: str, limit: int) -> bool:
    # A character is 1 to 4 bytes: encode only when the count of characters cannot tell.
    return len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit)


class BoundedWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's adapter, reading each frame under the size limit and parsing it as
    the HTTP edge parses bodies. Unlike Strawberry's, ``iter_json`` yields a ``Malformed``
    for a frame that is not a JSON message instead of raising, so that the handlers can
    answer it as their protocol says (the legacy one carries on after it)."""

    max_message_bytes: int

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        while self.ws.application_state != WebSocketState.DISCONNECTED:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            text: str | None = frame.get("text")
            data: str | bytes = text if text is not None else frame.get("bytes") or b""
            size_over = (
                _utf8_length_over(data, self.max_message_bytes)
                if isinstance(data, str)
                else len(data) > self.max_message_bytes
            )
            if size_over:
                log.info("websocket closed: a message over %d bytes", self.max_message_bytes)
                await self.close(
                    MESSAGE_TOO_BIG_CODE, f"Message over {self.max_message_bytes} bytes"
                )
                return
            if text is None:
                yield Malformed("WebSocket message type must be text")
            else:
                yield _parse(text)

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            # Closed here while an operation still ran: Starlette raises a RuntimeError
            # that Strawberry's handlers do not expect; this is the error they know.
            raise WebSocketDisconnected
        await super().send_json(message)

    async def close(self, code: int, reason: str) -> None:
        # Strawberry puts what the client sent in some reasons (an unknown type, an id).
        encoded = reason.encode()[:MAX_CLOSE_REASON_BYTES]
        # A client gone first (Starlette's WebSocketDisconnect), or a socket closed
        # already (its WebSocketDisconnected): closed either way.
        with suppress(WebSocketDisconnect, StarletteWebSocketDisconnected):
            await super().close(code, encoded.decode(errors="ignore"))


def _problem_with_payload(payload: object) -> str | None:
    """Why an operation's payload is malformed, or None."""
    if not isinstance(payload, dict):
        return "payload must be an object with a query"
    expected: tuple[tuple[str, type, bool], ...] = (
        ("query", str, False),
        ("variables", dict, True),
        ("operationName", str, True),
        ("extensions", dict, True),
    )
    for name, kind, optional in expected:
        value = payload.get(name)
        if not (isinstance(value, kind) or (optional and value is None)):
            return f"payload.{name} must be {'a string' if kind is str else 'an object'}"
    return None


def _problem_with_message(
    message: object, *, operations: tuple[str, ...], ids_for: tuple[str, ...]
) -> str | None:
    """Why a message is malformed, or None: an object with a string ``type``, a non-empty
    string ``id`` where ``ids_for`` names its type, an object (or null) payload, and a
    well-formed operation where ``operations`` names its type."""
    if not isinstance(message, dict):
        return "A message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "A message needs a string type"
    if kind in ids_for:
        operation_id = message.get("id")
        if not isinstance(operation_id, str) or not operation_id:
            return f"{kind[:32]} needs a non-empty string id"
    if kind in operations:
        return _problem_with_payload(message.get("payload"))
    payload = message.get("payload")
    if payload is not None and not isinstance(payload, dict):
        return f"{kind[:32]}'s payload must be an object"
    return None


def _error(message: str, code: str, **extensions: object) -> dict[str, object]:
    return {"message": message, "extensions": {"code": code, **extensions}}


def _refusal(payload: Mapping[str, Any], settings: Settings) -> dict[str, object] | None:
    """The checks of the HTTP edge that come before parsing (``refusal_before_parsing``)."""
    refused = refusal_before_parsing(
        query=payload["query"],
        variables=payload.get("variables"),
        max_document_bytes=settings.max_document_bytes,
    )
    if refused is None:
        return None
    return _error(str(refused), refused.code, **refused.extensions)


def _too_many(limit: int) -> dict[str, object]:
    return _error(SUBSCRIPTION_LIMIT, "TOO_MANY_SUBSCRIPTIONS", maximum=limit)


class TransportHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """``graphql-transport-ws``: a malformed message closes the socket with 4400."""

    context: Context

    async def handle_message(self, message: object) -> None:
        if isinstance(message, Malformed):
            problem: str | None = message.reason
        else:
            problem = _problem_with_message(
                message, operations=("subscribe",), ids_for=("subscribe", "complete")
            )
        if problem is not None:
            log.info("websocket closed: malformed message (graphql-transport-ws): %s", problem)
            await self.handle_invalid_message(problem)
            return
        try:
            await super().handle_message(cast("Message", message))
        except WebSocketDisconnected:
            raise
        except Exception:
            log.exception("websocket message failed (graphql-transport-ws)")
            with suppress(Exception):
                await self.websocket.close(INTERNAL_ERROR_CODE, "Internal server error")

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, WebSocketDisconnected):
            return  # the socket closed while the operation ran: no one is left to tell
        await super().handle_task_exception(error)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # Strawberry closes a socket for a subscribe before the ack (4401) or an id in
        # use (4409); only an operation it would start is refused here.
        if self.connection_acknowledged and message["id"] not in self.operations:
            limit = self.max_subscriptions_per_connection
            refusal = _refusal(message["payload"], self.context.state.runtime.settings)
            if refusal is None and limit is not None and len(self.operations) >= limit:
                refusal = _too_many(limit)
            if refusal is not None:
                await self.websocket.send_json(
                    {"id": message["id"], "type": "error", "payload": [refusal]}
                )
                return
        await super().handle_subscribe(message)


class LegacyHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy protocol: a malformed message is answered and the socket carries on;
    a socket that never completes ``connection_init`` is closed."""

    context: Context
    init_timeout: timedelta = timedelta(seconds=10)

    async def handle(self) -> None:
        deadline = asyncio.create_task(self._close_unless_acknowledged())
        try:
            await super().handle()
        finally:
            deadline.cancel()
            with suppress(asyncio.CancelledError):
                await deadline

    async def _close_unless_acknowledged(self) -> None:
        await asyncio.sleep(self.init_timeout.total_seconds())
        if not self.connection_acknowledged:
            log.info("websocket closed: no connection_init in time (graphql-ws)")
            await self.websocket.close(
                code=INIT_TIMEOUT_CODE, reason="Connection initialisation timeout"
            )

    async def handle_message(self, message: object) -> None:
        if isinstance(message, Malformed):
            await self._refuse(None, message.reason)
            return
        problem = _problem_with_message(message, operations=("start",), ids_for=("start", "stop"))
        if problem is not None:
            await self._refuse(message, problem)
            return
        kind = cast("dict[str, object]", message)["type"]
        if kind not in ("connection_init", "connection_terminate", "start", "stop"):
            await self._refuse(message, f"Unknown message type: {str(kind)[:32]}")
            return
        if kind == "connection_init" and self.connection_acknowledged:
            # A second init would sign the socket in again, as whoever it names.
            await self._refuse(None, "The connection is already initialised")
            return
        try:
            await super().handle_message(cast("OperationMessage", message))
        except WebSocketDisconnected:
            raise
        except Exception:
            log.exception("websocket message failed (graphql-ws)")
            with suppress(Exception):
                await self.websocket.close(INTERNAL_ERROR_CODE, "Internal server error")

    async def _refuse(self, message: object, reason: str) -> None:
        """``error`` for an operation's message with a usable id, else
        ``connection_error``: the spec's answer to a message it cannot parse."""
        log.info("websocket message refused (graphql-ws): %s", reason)
        operation_id = message.get("id") if isinstance(message, dict) else None
        error = _error(reason, "BAD_REQUEST")
        if isinstance(operation_id, str) and operation_id:
            await self.websocket.send_json({"type": "error", "id": operation_id, "payload": error})
        else:
            await self.websocket.send_json({"type": "connection_error", "payload": error})

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # The socket closing while the operation runs ends it; no one is left to tell.
        with suppress(WebSocketDisconnected):
            await super().handle_async_results(operation_id, query, operation_name, variables)

    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged:
            limit = self.max_subscriptions_per_connection
            refusal = _refusal(message["payload"], self.context.state.runtime.settings)
            if refusal is None and limit is not None:
                restarted = message["id"] in self.tasks
                if not restarted and len(self.tasks) >= limit:
                    refusal = _too_many(limit)
            if refusal is not None:
                await self.websocket.send_json(
                    {"type": "error", "id": message["id"], "payload": refusal}
                )
                return
        await super().handle_start(message)


class SubscriptionEndpoint(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportHandler

    def __init__(self, state: AppState) -> None:
        settings = state.runtime.settings
        init_timeout = timedelta(seconds=settings.websocket_init_timeout_seconds)
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            connection_init_wait_timeout=init_timeout,
            max_subscriptions_per_connection=settings.max_subscriptions_per_socket,
            # Credentials travel in connection_init, never in cookies, so another site's
            # page gains nothing by opening a socket: any origin may connect.
            allowed_origins=("*",),
        )
        self.state = state
        self.graphql_ws_handler_class = type(
            "TimedLegacyHandler", (LegacyHandler,), {"init_timeout": init_timeout}
        )
        self.websocket_adapter_class = type(  # type: ignore[assignment]
            "SizedWebSocketAdapter",
            (BoundedWebSocketAdapter,),
            {"max_message_bytes": settings.max_body_bytes},
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        client = request.scope.get("client")
        return Context(state=self.state, client_ip=str(client[0]) if client else "unknown")

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        authorization = authorization_from_connection_params(context.connection_params)
        if authorization is None:
            log.info("websocket refused: no token in connection_init")
            raise ConnectionRejectionError(_rejection(NO_TOKEN))
        caller = await authenticate_caller(self.state, authorization)
        if caller.viewer_id is None:
            log.info("websocket refused: %s", caller.error)
            raise ConnectionRejectionError(_rejection(caller.error or NO_TOKEN))
        context.sign_in(caller)
        return None


def _rejection(message: str) -> dict[str, object]:
    return {"message": message, "extensions": {"code": "UNAUTHENTICATED"}}
