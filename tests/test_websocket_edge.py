"""The websocket edge under bad input: malformed, oversized and out-of-order messages on
both protocols get the protocol's answer (a 4400 close on ``graphql-transport-ws``, a
``connection_error`` or ``error`` on the legacy ``graphql-ws``), never a crash, and
nothing a client sends is logged at ERROR."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from db.shards import ShardMap
from infra.servers import Servers
from infra.settings import Settings
from tests.conftest import serve_in_thread
from tests.helpers import GraphQLClient, sign_up
from tests.server_logs import describe, errors_logged
from tests.ws_client import LEGACY_WS, MESSAGE_EVENTS, TRANSPORT_WS, open_socket, raw_socket

VIEWER = "query { viewer { username } }"


async def init(connection: ClientConnection, token: str) -> None:
    await connection.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    ack = json.loads(await asyncio.wait_for(connection.recv(), 5))
    assert ack["type"] == "connection_ack", ack


async def close_code(connection: ClientConnection) -> tuple[int | None, str]:
    """How the server closed the socket (None: it answered something instead)."""
    try:
        answer = await asyncio.wait_for(connection.recv(), 5)
    except ConnectionClosed as closed:
        received = closed.rcvd
        return (received.code, received.reason) if received else (None, "no close frame")
    return None, f"answered {answer!r:.200}"


async def answer(connection: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(connection.recv(), 5))
    return message


Frame = str | bytes

TRANSPORT_MALFORMED: list[Frame] = [
    "[]",
    "{}",
    "1",
    "null",
    '"connection_init"',
    "not json",
    '{"type": 1}',
    '{"type": "bogus"}',
    '{"type": "' + "b" * 500 + '"}',
    b"\x00binary",
    "[" * 100 + "]" * 100,
    '{"type": "connection_init", "payload": "token"}',
]
TRANSPORT_MALFORMED_AFTER_INIT: list[Frame] = [
    '{"type": "subscribe", "id": 1, "payload": {"query": "{ viewer { id } }"}}',
    '{"type": "subscribe", "id": "", "payload": {"query": "{ viewer { id } }"}}',
    '{"type": "subscribe", "id": "1", "payload": "{ viewer { id } }"}',
    '{"type": "subscribe", "id": "1", "payload": {"query": 5}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": "{ viewer { id } }", "variables": []}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": "{ viewer { id } }", '
    '"operationName": 7}}',
    '{"type": "complete"}',
    '{"type": "complete", "id": {}}',
    '{"type": "ping", "payload": "x"}',
]


async def test_malformed_messages_close_graphql_transport_ws_with_4400(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana = await sign_up(gql, "ana")
    with errors_logged() as errors:
        for frame in TRANSPORT_MALFORMED + TRANSPORT_MALFORMED_AFTER_INIT:
            async with await raw_socket(live_server_url, TRANSPORT_WS) as connection:
                if frame in TRANSPORT_MALFORMED_AFTER_INIT:
                    await init(connection, ana.token)
                await connection.send(frame)
                code, reason = await close_code(connection)
                assert (code, bool(reason)) == (4400, True), (frame, code, reason)
    assert errors == [], describe(errors)


LEGACY_MALFORMED: list[Frame] = [
    "[]",
    "{}",
    "1",
    "null",
    '"start"',
    "not json",
    '{"type": 1}',
    '{"type": "bogus"}',
    b"\x00binary",
    "[" * 100 + "]" * 100,
    '{"type": "start", "id": 5, "payload": {"query": "subscription { x }"}}',
    '{"type": "stop"}',
]
LEGACY_MALFORMED_OPERATIONS: list[Frame] = [
    '{"type": "start", "id": "op", "payload": "subscription { x }"}',
    '{"type": "start", "id": "op", "payload": {"query": 5}}',
    '{"type": "start", "id": "op", "payload": {"query": "subscription { x }", "variables": 1}}',
    '{"type": "start", "id": "op"}',
    '{"type": "bogus", "id": "op"}',
]


async def test_malformed_messages_on_legacy_graphql_ws_are_answered_and_the_socket_works_on(
    gql: GraphQLClient, live_server_url: str
) -> None:
    """The legacy protocol's spec: a message that does not parse gets ``connection_error``
    "which does not disconnect the client, just ignore the message"; an operation's
    message gets ``error`` with its id."""
    ana = await sign_up(gql, "ana")
    with errors_logged() as errors:
        async with open_socket(live_server_url, protocol=LEGACY_WS) as socket:
            for frame in LEGACY_MALFORMED:
                await socket.connection.send(frame)
                refused = await socket.receive()
                assert refused["type"] == "connection_error", (frame, refused)
                assert refused["payload"]["extensions"]["code"] == "BAD_REQUEST", (frame, refused)
            ack = await socket.init({"Authorization": f"Bearer {ana.token}"})
            assert ack["type"] == "connection_ack"
            for frame in LEGACY_MALFORMED_OPERATIONS:
                await socket.connection.send(frame)
                refused = await socket.receive()
                assert (refused["type"], refused["id"]) == ("error", "op"), (frame, refused)
                assert refused["payload"]["extensions"]["code"] == "BAD_REQUEST", (frame, refused)
            await socket.listen(MESSAGE_EVENTS)
    assert errors == [], describe(errors)


async def test_a_second_connection_init_on_legacy_graphql_ws_is_refused(
    gql: GraphQLClient, live_server_url: str
) -> None:
    """graphql-transport-ws closes such a socket (4429); on the legacy protocol a second
    init would sign the socket in again, as whoever it names, under live subscriptions."""
    ana, bo = await sign_up(gql, "ana"), await sign_up(gql, "bo")
    async with open_socket(live_server_url, protocol=LEGACY_WS, token=ana.token) as socket:
        again = await socket.init({"Authorization": f"Bearer {bo.token}"})
        assert again["type"] == "connection_error", again
        assert again["payload"]["extensions"]["code"] == "BAD_REQUEST"
        await socket.send({"id": "who", "type": "start", "payload": {"query": VIEWER}})
        refused = await socket.receive()
    # Queries do not run over the legacy protocol; the refusal itself is typed.
    assert refused["type"] == "error"
    assert refused["payload"]["extensions"]["code"] == "BAD_REQUEST"


async def test_queries_and_mutations_over_legacy_start_are_refused_typed_and_not_run(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana = await sign_up(gql, "ana")
    with errors_logged() as errors:
        async with open_socket(live_server_url, protocol=LEGACY_WS, token=ana.token) as socket:
            for operation_id, query in (("q", VIEWER), ("m", "mutation { logOut }")):
                await socket.send(
                    {"id": operation_id, "type": "start", "payload": {"query": query}}
                )
                refused = await socket.receive()
                assert (refused["type"], refused["id"]) == ("error", operation_id), refused
                assert refused["payload"]["extensions"]["code"] == "BAD_REQUEST", refused
    assert errors == [], describe(errors)
    assert (await gql(VIEWER, token=ana.token)).ok()["viewer"]["username"] == "ana"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_message_over_the_body_limit_closes_the_socket_with_1009(
    settings: Settings, live_server_url: str, protocol: str
) -> None:
    frame = json.dumps(
        {"type": "connection_init", "payload": {"pad": "x" * settings.max_body_bytes}}
    )
    with errors_logged() as errors:
        async with await raw_socket(live_server_url, protocol) as connection:
            await connection.send(frame)
            code, reason = await close_code(connection)
    assert code == 1009, (code, reason)
    assert errors == [], describe(errors)


@pytest.fixture(scope="module")
def tuned_server(settings: Settings, servers: Servers, shard_map: ShardMap) -> Iterator[str]:
    """The app behind a server that takes uvicorn's default 16 MiB frames, as
    ``uvicorn aperture.web:app_from_environment`` would without our options, allowing one
    subscription per socket."""
    one_subscription = settings.model_copy(update={"max_subscriptions_per_socket": 1})
    with serve_in_thread(one_subscription, servers, ws_max_size=16 * 1024 * 1024) as url:
        yield url


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_the_app_itself_refuses_messages_over_the_limit_before_parsing(
    settings: Settings, tuned_server: str, protocol: str
) -> None:
    oversized = "[" * (settings.max_body_bytes + 1)
    with errors_logged() as errors:
        async with await raw_socket(tuned_server, protocol) as connection:
            await connection.send(oversized)
            code, reason = await close_code(connection)
    assert code == 1009, (code, reason)
    assert errors == [], describe(errors)


async def test_errors_over_graphql_transport_ws_are_typed(
    gql: GraphQLClient, live_server_url: str
) -> None:
    """A document that does not parse or validate, or names no operation, fails that
    operation (an ``error`` message with its code) and leaves the socket open."""
    ana = await sign_up(gql, "ana")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"query": "{ viewer {"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": VIEWER, "operationName": "Missing"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": "{ viewer { id } }" + " " * 200_000}, "QUERY_TOO_COMPLEX"),
        (
            {
                "query": "mutation($b: String) { updateProfile(input: {bio: $b}) { user { bio } } }",
                "variables": {"b": "nul \u0000 here"},
            },
            "BAD_USER_INPUT",
        ),
    ]
    with errors_logged() as errors:
        async with open_socket(live_server_url, token=ana.token) as socket:
            for number, (payload, code) in enumerate(cases):
                await socket.send({"id": str(number), "type": "subscribe", "payload": payload})
                refused = await socket.receive()
                assert refused["type"] == "error", (payload, refused)
                assert [e["extensions"]["code"] for e in refused["payload"]] == [code], refused
            await socket.send(
                {
                    "id": "node",
                    "type": "subscribe",
                    "payload": {"query": '{ node(id: "x") { id } }'},
                }
            )
            result = await socket.next_data()
            assert [e["extensions"]["code"] for e in result["errors"]] == ["BAD_USER_INPUT"]
    assert errors == [], describe(errors)


async def test_errors_over_legacy_graphql_ws_are_typed(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana = await sign_up(gql, "ana")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"query": "subscription { messageEvents {"}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "subscription { nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": MESSAGE_EVENTS, "operationName": "Missing"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": MESSAGE_EVENTS + " " * 200_000}, "QUERY_TOO_COMPLEX"),
        ({"query": MESSAGE_EVENTS, "variables": {"threadId": "\u0000"}}, "BAD_USER_INPUT"),
    ]
    with errors_logged() as errors:
        async with open_socket(live_server_url, protocol=LEGACY_WS, token=ana.token) as socket:
            for number, (payload, code) in enumerate(cases):
                await socket.send({"id": str(number), "type": "start", "payload": payload})
                refused = await socket.receive()
                assert refused["type"] == "error", (payload, refused)
                assert refused["payload"]["extensions"]["code"] == code, refused
    assert errors == [], describe(errors)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_the_subscription_limit_is_a_typed_error(
    gql: GraphQLClient, tuned_server: str, protocol: str
) -> None:
    ana = await sign_up(gql, "ana")
    async with open_socket(tuned_server, protocol=protocol, token=ana.token) as socket:
        await socket.listen(MESSAGE_EVENTS)
        refused_id = await socket.subscribe(MESSAGE_EVENTS)
        refused = await socket.receive()
    assert (refused["type"], refused["id"]) == ("error", refused_id), refused
    errors = refused["payload"] if protocol == TRANSPORT_WS else [refused["payload"]]
    assert [e["extensions"]["code"] for e in errors] == ["TOO_MANY_SUBSCRIPTIONS"], refused


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_operations_running_when_the_socket_closes_log_no_error(
    gql: GraphQLClient, live_server_url: str, protocol: str
) -> None:
    """Found by tests/test_fuzzing.py: an operation that answered after the server had
    closed its socket raised a RuntimeError of Starlette's, logged at ERROR."""
    ana = await sign_up(gql, "ana")
    start = "subscribe" if protocol == TRANSPORT_WS else "start"
    # What closes each socket at once: a malformed message, or the client's terminate.
    closing = "[]" if protocol == TRANSPORT_WS else '{"type": "connection_terminate"}'
    with errors_logged() as errors:
        for number in range(10):
            async with await raw_socket(live_server_url, protocol) as connection:
                await init(connection, ana.token)
                for query in ("subscription { nope }", MESSAGE_EVENTS, VIEWER):
                    operation = {
                        "id": f"{number}-{query[:5]}",
                        "type": start,
                        "payload": {"query": query},
                    }
                    await connection.send(json.dumps(operation))
                await connection.send(closing)
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await asyncio.wait_for(connection.recv(), 5)
        # An exception no one retrieved is logged when its task is collected.
        gc.collect()
    assert errors == [], describe(errors)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_client_gone_before_its_refusal_logs_no_error(
    live_server_url: str, protocol: str
) -> None:
    """Found by tests/test_fuzzing.py: closing a socket whose client had already left
    raised Starlette's WebSocketDisconnect, logged at ERROR."""
    refused = json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer ap_1_x"}})
    with errors_logged() as errors:
        for _ in range(10):
            connection = await raw_socket(live_server_url, protocol)
            await connection.send(refused)
            # Gone at once, without a close frame: the server refuses the token after.
            connection.transport.abort()
            await connection.wait_closed()
        # The refusals are answered once the token is looked up: a working socket after.
        async with await raw_socket(live_server_url, protocol) as last:
            await last.send(refused)
            if protocol == TRANSPORT_WS:
                assert (await close_code(last))[0] == 4403
            else:
                assert (await answer(last))["type"] == "connection_error"
    assert errors == [], describe(errors)
