"""Subscriptions over real websockets against a running server: both protocols, the
handshake's authentication, delivery only to thread members, and the end of delivery
after logging out, a block or a removal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from websockets.exceptions import ConnectionClosed

from db.shards import ShardMap
from infra.servers import Servers
from infra.settings import Settings
from tests.conftest import serve_in_thread
from tests.helpers import Account, GraphQLClient, sign_up
from tests.ws_client import LEGACY_WS, MESSAGE_EVENTS, TRANSPORT_WS, Socket, open_socket

SEND = """
mutation($threadId: ID, $userId: ID, $text: String) {
  sendMessage(input: {threadId: $threadId, userId: $userId, text: $text}) {
    message { seq threadId text }
  }
}
"""
START_GROUP = """
mutation($ids: [ID!]!, $title: String) {
  startThread(input: {userIds: $ids, title: $title}) { thread { id isGroup } }
}
"""
MAX_GROUP = 32
BOTH_PROTOCOLS = pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])


async def send(
    gql: GraphQLClient,
    sender: Account,
    text: str,
    *,
    to: Account | None = None,
    thread_id: str | None = None,
) -> Any:
    return await gql(
        SEND,
        {"userId": to.id if to else None, "threadId": thread_id, "text": text},
        token=sender.token,
    )


async def sent(gql: GraphQLClient, sender: Account, text: str, **where: Any) -> dict[str, Any]:
    message: dict[str, Any] = (await send(gql, sender, text, **where)).ok()["sendMessage"][
        "message"
    ]
    return message


async def group(gql: GraphQLClient, creator: Account, *members: Account) -> str:
    result = await gql(
        START_GROUP, {"ids": [m.id for m in members], "title": "crew"}, token=creator.token
    )
    thread_id: str = result.ok()["startThread"]["thread"]["id"]
    return thread_id


async def next_of(socket: Socket, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next messageEvents event of ``kind``, skipping others (thread updates)."""
    while True:
        payload = await socket.next_data(timeout)
        assert "data" in payload, payload
        event: dict[str, Any] = payload["data"]["messageEvents"]
        if event["kind"] == kind:
            return event


async def listening(socket: Socket, query: str = MESSAGE_EVENTS, **variables: Any) -> str:
    return await socket.listen(query, variables)


@BOTH_PROTOCOLS
async def test_a_message_reaches_the_other_member_live(
    gql: GraphQLClient, live_server_url: str, protocol: str
) -> None:
    ana = await sign_up(gql, "ana")
    ben = await sign_up(gql, "ben")
    async with open_socket(live_server_url, protocol=protocol, token=ben.token) as socket:
        await listening(socket)
        message = await sent(gql, ana, "hi ben", to=ben)
        event = await next_of(socket, "MESSAGE")
    assert event["threadId"] == message["threadId"]
    assert event["message"] == {"seq": 1, "text": "hi ben", "sender": {"username": "ana"}}


async def test_sockets_are_not_compressed(gql: GraphQLClient, live_server_url: str) -> None:
    # A browser always offers permessage-deflate; its zlib state would cost each idle
    # socket about 50 KB, for small events it barely shrinks.
    ana = await sign_up(gql, "ana")
    async with open_socket(live_server_url, token=ana.token) as socket:
        assert socket.connection.response is not None
        assert "Sec-WebSocket-Extensions" not in socket.connection.response.headers
        await listening(socket)


async def test_sockets_opened_in_a_burst_are_told_when_they_are_live_and_miss_nothing_after(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana = await sign_up(gql, "ana")
    members = [await sign_up(gql, f"m{n}") for n in range(MAX_GROUP - 1)]
    thread_id = await group(gql, ana, *members)
    async with contextlib.AsyncExitStack() as stack:
        sockets = await asyncio.gather(
            *(
                stack.enter_async_context(open_socket(live_server_url, token=member.token))
                for member in members
                for _ in range(2)  # two devices each
            )
        )
        # All at once: each returns on its GAP, whatever order the channels go live in.
        await asyncio.gather(*(socket.listen(MESSAGE_EVENTS) for socket in sockets))
        await sent(gql, ana, "right after live", thread_id=thread_id)
        heard = await asyncio.gather(*(next_of(socket, "MESSAGE") for socket in sockets))
    assert {event["message"]["text"] for event in heard} == {"right after live"}
    assert len(heard) == 2 * len(members)


async def test_a_lost_subscriber_connection_is_a_gap_and_delivery_resumes(
    gql: GraphQLClient, live_server_url: str, servers: Servers
) -> None:
    ana, ben = [await sign_up(gql, name) for name in ("ana", "ben")]
    async with open_socket(live_server_url, token=ben.token) as socket:
        await listening(socket)
        # Redis drops the server's subscriber connection: whatever is published before it
        # has subscribed again is lost, so the socket is told to catch up, once live.
        raw = redis.Redis.from_url(servers.redis_url)
        try:
            assert raw.client_kill_filter(_type="pubsub") >= 1
        finally:
            raw.close()
        assert (await next_of(socket, "GAP", timeout=10))["kind"] == "GAP"
        await sent(gql, ana, "after the gap", to=ben)
        assert (await next_of(socket, "MESSAGE"))["message"]["text"] == "after the gap"


async def test_reads_reactions_and_typing_arrive_and_typing_is_not_stored(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana = await sign_up(gql, "ana")
    ben = await sign_up(gql, "ben")
    message = await sent(gql, ben, "first", to=ana)
    thread = message["threadId"]
    async with open_socket(live_server_url, token=ben.token) as socket:
        await listening(socket, threadId=thread)
        (
            await gql(
                "mutation($t: ID!) { sendTypingIndicator(threadId: $t) }",
                {"t": thread},
                token=ana.token,
            )
        ).ok()
        typing = await next_of(socket, "TYPING")
        assert typing["user"] == {"username": "ana"} and typing["threadId"] == thread
        (
            await gql(
                'mutation($t: ID!) { reactToMessage(threadId: $t, seq: 1, emoji: "❤️") '
                "{ message { reactions { emoji user { username } } } } }",
                {"t": thread},
                token=ana.token,
            )
        ).ok()
        reaction = await next_of(socket, "REACTION")
        assert (reaction["seq"], reaction["emoji"]) == (1, "❤️")
        (
            await gql(
                "mutation($t: ID!) { markThreadRead(threadId: $t, seq: 1) { unreadCount } }",
                {"t": thread},
                token=ana.token,
            )
        ).ok()
        read = await next_of(socket, "READ")
        assert (read["seq"], read["user"]) == (1, {"username": "ana"})
    history = (
        await gql(
            "query($t: ID!) { messages(threadId: $t) { edges { cursor node { seq text "
            "reactions { emoji } } } } thread(id: $t) { readMarks { seq user { username } } } }",
            {"t": thread},
            token=ben.token,
        )
    ).ok()
    # Typing left nothing behind; the reaction and the read mark are stored.
    assert [edge["node"]["seq"] for edge in history["messages"]["edges"]] == [1]
    assert history["messages"]["edges"][0]["node"]["reactions"] == [{"emoji": "❤️"}]
    assert {"seq": 1, "user": {"username": "ana"}} in history["thread"]["readMarks"]


@BOTH_PROTOCOLS
async def test_a_bad_token_is_refused_at_connection_init(
    gql: GraphQLClient, live_server_url: str, protocol: str
) -> None:
    async with open_socket(live_server_url, protocol=protocol) as socket:
        if protocol == TRANSPORT_WS:
            await socket.send(
                {"type": "connection_init", "payload": {"Authorization": "Bearer ap_1_nope"}}
            )
            with pytest.raises(ConnectionClosed) as closed:
                await socket.receive()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        else:
            refused = await socket.init({"token": "ap_1_nope"})
            assert refused["type"] == "connection_error"
            assert refused["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
            with pytest.raises(ConnectionClosed):
                await socket.receive()


async def test_no_token_is_refused_and_subscribing_first_closes_the_socket(
    gql: GraphQLClient, live_server_url: str
) -> None:
    async with open_socket(live_server_url) as socket:
        await socket.send({"type": "connection_init", "payload": {}})
        with pytest.raises(ConnectionClosed) as closed:
            await socket.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with open_socket(live_server_url) as socket:
        await socket.subscribe(MESSAGE_EVENTS)
        with pytest.raises(ConnectionClosed) as closed:
            await socket.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


@pytest.fixture(scope="module")
def impatient_server(settings: Settings, servers: Servers, shard_map: ShardMap) -> Iterator[str]:
    """A server that waits half a second for connection_init and allows 2 subscriptions."""
    quick = settings.model_copy(
        update={"websocket_init_timeout_seconds": 0.5, "max_subscriptions_per_socket": 2}
    )
    with serve_in_thread(quick, servers) as url:
        yield url


@BOTH_PROTOCOLS
async def test_a_socket_that_never_sends_connection_init_is_closed(
    impatient_server: str, protocol: str
) -> None:
    async with open_socket(impatient_server, protocol=protocol) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await socket.receive(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_subscriptions_per_socket_are_bounded(
    gql: GraphQLClient, impatient_server: str
) -> None:
    ana = await sign_up(gql, "ana")
    async with open_socket(impatient_server, token=ana.token) as socket:
        await listening(socket)
        await listening(socket)
        third = await socket.subscribe(MESSAGE_EVENTS)
        refused = await socket.receive()
    assert refused["type"] == "error" and refused["id"] == third
    assert refused["payload"][0]["message"] == "Subscription limit reached"


async def test_only_members_receive_a_threads_events(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana, ben, eve = [await sign_up(gql, name) for name in ("ana", "ben", "eve")]
    message = await sent(gql, ana, "just us", to=ben)
    async with open_socket(live_server_url, token=eve.token) as eves:
        # Naming someone else's thread is as if it did not exist.
        await eves.subscribe(MESSAGE_EVENTS, {"threadId": message["threadId"]})
        refused = await eves.next_data()
        assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert (await eves.receive())["type"] == "complete"
        await listening(eves)
        async with open_socket(live_server_url, token=ben.token) as bens:
            await listening(bens)
            await sent(gql, ana, "still just us", to=ben)
            assert (await next_of(bens, "MESSAGE"))["message"]["text"] == "still just us"
        assert await eves.nothing_within(0.5)
    peek = await gql(
        "query($t: ID!) { messages(threadId: $t) { edges { node { text } } } }",
        {"t": message["threadId"]},
        token=eve.token,
    )
    assert peek.codes == ["NOT_FOUND"]


async def test_logging_out_ends_delivery_on_open_sockets(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana, ben = [await sign_up(gql, name) for name in ("ana", "ben")]
    async with open_socket(live_server_url, token=ben.token) as socket:
        operation = await listening(socket)
        (await gql("mutation { logOut { ok } }", token=ben.token)).ok()
        ended = await socket.next_data()
        assert ended["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", ended
        assert (await socket.receive()) == {"id": operation, "type": "complete"}
        await sent(gql, ana, "anyone there?", to=ben)
        assert await socket.nothing_within(0.5)


async def texts_until(socket: Socket, last: str) -> list[str]:
    """The texts of the messages the socket hears, up to and including ``last``."""
    texts: list[str] = []
    while not texts or texts[-1] != last:
        texts.append((await next_of(socket, "MESSAGE"))["message"]["text"])
    return texts


async def test_a_block_stops_delivery_both_ways_and_messaging(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana, ben, cy = [await sign_up(gql, name) for name in ("ana", "ben", "cy")]
    crew = await group(gql, cy, ana, ben)
    async with (
        open_socket(live_server_url, token=ana.token) as anas,
        open_socket(live_server_url, token=ben.token) as bens,
    ):
        await listening(anas)
        await listening(bens)
        await sent(gql, ben, "before", thread_id=crew)
        assert (await next_of(anas, "MESSAGE"))["message"]["text"] == "before"
        (
            await gql(
                "mutation($u: ID!) { block(userId: $u) { blockedUserId } }",
                {"u": ana.id},
                token=ben.token,
            )
        ).ok()
        await sent(gql, ben, "after", thread_id=crew)
        await sent(gql, ana, "hello?", thread_id=crew)
        await sent(gql, cy, "from cy", thread_id=crew)
        # Each still hears cy and their own messages (their other devices), and neither
        # hears the other.
        assert await texts_until(anas, "from cy") == ["hello?", "from cy"]
        assert await texts_until(bens, "from cy") == ["before", "after", "from cy"]
    refused = await send(gql, ana, "direct?", to=ben)
    assert refused.codes and refused.codes[0] in ("FORBIDDEN", "NOT_FOUND")
    added = await gql(
        "mutation($t: ID!, $u: [ID!]!) { addThreadMembers(threadId: $t, userIds: $u) "
        "{ thread { id } } }",
        {"t": await group(gql, ana, cy), "u": [ben.id]},
        token=ana.token,
    )
    assert added.codes and added.codes[0] in ("FORBIDDEN", "NOT_FOUND")


async def test_removal_from_a_thread_ends_its_delivery(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana, ben, cy = [await sign_up(gql, name) for name in ("ana", "ben", "cy")]
    crew = await group(gql, ana, ben, cy)
    async with open_socket(live_server_url, token=cy.token) as socket:
        await listening(socket)
        (
            await gql(
                "mutation($t: ID!, $u: ID!) { removeThreadMember(threadId: $t, userId: $u) }",
                {"t": crew, "u": cy.id},
                token=ana.token,
            )
        ).ok()
        removed = await next_of(socket, "REMOVED_FROM_THREAD")
        assert removed["threadId"] == crew
        await sent(gql, ben, "cy is gone", thread_id=crew)
        assert await socket.nothing_within(0.5)
    history = await gql(
        "query($t: ID!) { messages(threadId: $t) { edges { node { text } } } }",
        {"t": crew},
        token=cy.token,
    )
    assert history.codes == ["NOT_FOUND"]


async def test_each_event_is_resolved_with_fresh_loaders(
    gql: GraphQLClient, live_server_url: str
) -> None:
    """A sender's profile read on a long-lived socket reflects a change made meanwhile."""
    ana, ben = [await sign_up(gql, name) for name in ("ana", "ben")]
    async with open_socket(live_server_url, token=ben.token) as socket:
        await listening(
            socket, "subscription { messageEvents { kind message { sender { fullName } } } }"
        )
        await sent(gql, ana, "one", to=ben)
        first = await next_of(socket, "MESSAGE")
        (
            await gql(
                'mutation { updateProfile(input: {fullName: "Ana Lima"}) { user { fullName } } }',
                token=ana.token,
            )
        ).ok()
        await sent(gql, ana, "two", to=ben)
        second = await next_of(socket, "MESSAGE")
    assert first["message"]["sender"]["fullName"] != "Ana Lima"
    assert second["message"]["sender"]["fullName"] == "Ana Lima"


async def test_the_operation_guard_applies_to_operations_over_a_socket(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana = await sign_up(gql, "ana")
    aliases = " ".join(f"a{n}: kind" for n in range(40))
    async with open_socket(live_server_url, token=ana.token) as socket:
        await socket.subscribe(f"subscription {{ messageEvents {{ {aliases} }} }}")
        refused = await socket.receive()
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        # A query over the socket is one more operation, signed in as the socket is.
        await socket.subscribe("{ viewer { username } }")
        answered = await socket.next_data()
        assert answered["data"] == {"viewer": {"username": "ana"}}
