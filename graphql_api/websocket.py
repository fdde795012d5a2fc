"""Subscriptions over websockets at /graphql: ``graphql-transport-ws`` and, for older
clients, the legacy ``graphql-ws``, both through Strawberry's handlers.

The token is checked once, at ``connection_init``, by the same path as HTTP
(``graphql_api/auth.py``); a socket without a valid one is refused with the protocol's
close (4403, or ``connection_error`` on the legacy protocol). Strawberry times out a
missing ``connection_init`` only on ``graphql-transport-ws``; the legacy handler here
closes such a socket too (4408), so no one holds a socket without signing in.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UnsetType

from domain.state import AppState
from graphql_api.auth import authenticate_caller, authorization_from_connection_params
from graphql_api.context import Context
from graphql_api.schema import schema

log = logging.getLogger(__name__)

NO_TOKEN = 'Send connection_init with {"Authorization": "Bearer <token>"}'
INIT_TIMEOUT_CODE = 4408


class LegacyHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy protocol, closing a socket that never completes ``connection_init``."""

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


class SubscriptionEndpoint(GraphQL[Context, None]):
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
