"""A real websocket GraphQL client for tests, on the ``websockets`` library, speaking
``graphql-transport-ws`` or the legacy ``graphql-ws``."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/graphql"


class Socket:
    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol
        self._ids = itertools.count(1)

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), timeout)
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") in ("ping", "pong", "ka"):
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                continue
            return message

    async def init(self, payload: dict[str, Any] | None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await self.send(message)
        return await self.receive()

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        operation_id = str(next(self._ids))
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.send(
            {
                "id": operation_id,
                "type": kind,
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return operation_id

    async def listen(self, query: str, variables: dict[str, Any] | None = None) -> str:
        """Subscribes, and returns once the server says it is live: a subscription's
        first event is a GAP, and whatever is sent after it reaches this socket."""
        operation_id = await self.subscribe(query, variables)
        first = await self.next_data()
        assert "data" in first, first
        (event,) = first["data"].values()
        assert event["kind"] == "GAP", first
        return operation_id

    async def next_data(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next payload of a subscription (``next``/``data``), or the error message."""
        message = await self.receive(timeout)
        if message["type"] in ("next", "data"):
            payload: dict[str, Any] = message["payload"]
            return payload
        return message

    async def nothing_within(self, seconds: float) -> bool:
        try:
            await self.receive(seconds)
        except TimeoutError:
            return True
        return False


async def raw_socket(http_url: str, protocol: str) -> ClientConnection:
    """A bare connection speaking ``protocol``, for sending frames exactly as given
    (``async with await raw_socket(...)``); it takes frames of any size from the server."""
    return await connect(
        ws_url(http_url),
        subprotocols=[Subprotocol(protocol)],
        open_timeout=5,
        proxy=None,
        max_size=None,
    )


@asynccontextmanager
async def open_socket(
    http_url: str, *, protocol: str = TRANSPORT_WS, token: str | None = None
) -> AsyncIterator[Socket]:
    """A socket; with ``token``, already through ``connection_init`` and acknowledged."""
    async with connect(
        ws_url(http_url),
        subprotocols=[protocol],  # type: ignore[list-item]
        open_timeout=5,
        proxy=None,
    ) as connection:
        socket = Socket(connection, protocol)
        if token is not None:
            ack = await socket.init({"Authorization": f"Bearer {token}"})
            assert ack["type"] == "connection_ack", ack
        yield socket


MESSAGE_EVENTS = """
subscription($threadId: ID) {
  messageEvents(threadId: $threadId) {
    kind threadId seq emoji user { username }
    message { seq text sender { username } }
  }
}
"""

NOTIFICATION_EVENTS = """
subscription {
  notificationEvents { kind unreadCount notification { kind actorCount text cursor read } }
}
"""
