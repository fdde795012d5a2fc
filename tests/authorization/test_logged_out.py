"""A logged-out session's token, beyond what every probe asks of it."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from tests.authorization.audit import World
from tests.ws_client import open_socket


async def test_a_logged_out_token_reads_nothing(world: World, live_server_url: str) -> None:
    """Every probe runs as ``logged_out`` too (``Audit.ask`` insists on UNAUTHENTICATED);
    here, what only a session can do: its socket is refused."""
    async with open_socket(live_server_url) as socket:
        await socket.send(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {world.token('logged_out')}"},
            }
        )
        with pytest.raises(ConnectionClosed) as closed:
            await socket.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
