"""Live events (messages and notifications over websockets) of the owner's writes reach
no unauthorized socket; a member who may see them hears them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from tests.authorization.audit import SIGNED_IN, USERNAMES, Audit, World, send_message
from tests.helpers import create_post
from tests.ws_client import MESSAGE_EVENTS, NOTIFICATION_EVENTS, Socket, open_socket


async def test_live_events_reach_no_unauthorized_socket(world: World, live_server_url: str) -> None:
    audit = Audit(world)
    owner = world.accounts["owner"]
    listeners = ("insider", *SIGNED_IN)
    async with contextlib.AsyncExitStack() as stack:
        sockets: dict[str, Socket] = {}
        for viewer in listeners:
            socket = await stack.enter_async_context(
                open_socket(live_server_url, token=world.token(viewer))
            )
            await socket.listen(MESSAGE_EVENTS)
            await socket.listen(NOTIFICATION_EVENTS)
            sockets[viewer] = socket
        for viewer in ("former",):
            refused = await sockets[viewer].subscribe(
                MESSAGE_EVENTS, {"threadId": world.ids["group"]}
            )
            # graphql-transport-ws: a resolver's error is a ``next`` with errors, then
            # ``complete``.
            reply = await sockets[viewer].receive()
            done = await sockets[viewer].receive()
            text = json.dumps([reply, done])
            audit.check(viewer, "messageEvents(group)", text)
            payload = reply.get("payload") or {}
            codes = [error["extensions"]["code"] for error in payload.get("errors", [])]
            if (
                reply.get("id") != refused
                or payload.get("data") is not None
                or codes != ["NOT_FOUND"]
                or done != {"id": refused, "type": "complete"}
            ):
                audit.leak(viewer, "messageEvents(group)", f"not refused: {text[:300]}")
        text = world.plant("vault-secret-live-message")
        await send_message(world.gql, owner, world.ids["group"], text)
        await send_message(
            world.gql, owner, world.ids["direct"], world.plant("vault-secret-live-direct")
        )
        mentions = " ".join(f"@{USERNAMES[role]}" for role in SIGNED_IN)
        await create_post(world.gql, owner, world.plant(f"vault-secret-live-post {mentions}"))
        await world.gql(
            "mutation($p: ID!) { likePost(postId: $p) { post { id } } }",
            {"p": world.ids["pal_post"]},
            token=owner.token,
        )
        # The control: a member who may see it hears it (among its other events: the
        # notifications of the same writes may come first).
        heard: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            while not any(text in json.dumps(event) for event in heard):
                heard.append(await sockets["insider"].next_data(timeout=10.0))
        if not any(text in json.dumps(event) for event in heard):
            audit.leak("insider", "messageEvents", f"the member did not hear it: {heard}")

        async def drain(viewer: str) -> list[dict[str, Any]]:
            events = []
            with contextlib.suppress(TimeoutError):
                while True:
                    events.append(await sockets[viewer].receive(timeout=1.0))
            return events

        everyone = await asyncio.gather(*(drain(viewer) for viewer in SIGNED_IN))
        for viewer, events in zip(SIGNED_IN, everyone, strict=True):
            audit.check(viewer, "live events", json.dumps(events))
            if events:
                audit.leak(viewer, "live events", f"heard {events}")
    audit.assert_none()
