"""Realtime across real server processes: a message sent through one process reaches a
subscriber on another, and a client whose socket keeps dropping while messages flow
catches up from its last cursor with nothing missing and nothing twice."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from db.runtime import Runtime
from infra.servers import Servers
from tests.conftest import server_processes
from tests.helpers import Account, GraphQLClient, sign_up
from tests.test_realtime import group, next_of, sent
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, Socket, open_socket

pytestmark = pytest.mark.slow

CATCH_UP = """
query($t: ID!, $after: String) {
  messages(threadId: $t, first: 100, after: $after) {
    edges { cursor node { seq text } } pageInfo { hasNextPage }
  }
}
"""
THREAD_EVENTS = """
subscription($threadId: ID) {
  messageEvents(threadId: $threadId) { kind seq message { seq text } }
}
"""


@pytest.fixture
def two_processes(
    servers: Servers, project_env: dict[str, str], runtime: Runtime
) -> Iterator[list[str]]:
    # One test client is one address: the per-address budgets would trip.
    generous = str(10**9)
    with server_processes(
        servers,
        project_env,
        count=2,
        rate_limit_ip_capacity=generous,
        rate_limit_viewer_capacity=generous,
        signup_ip_capacity=generous,
    ) as urls:
        yield urls


@pytest.fixture
async def clients(two_processes: list[str]) -> AsyncIterator[list[GraphQLClient]]:
    async with (
        httpx.AsyncClient(base_url=two_processes[0], timeout=10) as first,
        httpx.AsyncClient(base_url=two_processes[1], timeout=10) as second,
    ):
        yield [GraphQLClient(first), GraphQLClient(second)]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_message_sent_through_one_process_reaches_a_subscriber_on_another(
    two_processes: list[str], clients: list[GraphQLClient], protocol: str
) -> None:
    through_first, through_second = clients
    ana = await sign_up(through_first, "ana")
    ben = await sign_up(through_second, "ben")
    async with (
        open_socket(two_processes[1], protocol=protocol, token=ben.token) as bens,
        open_socket(two_processes[0], protocol=protocol, token=ana.token) as anas,
    ):
        await bens.listen(THREAD_EVENTS)
        await anas.listen(THREAD_EVENTS)
        hello = await sent(through_first, ana, "hi from process one", to=ben)
        assert (await next_of(bens, "MESSAGE"))["message"]["text"] == "hi from process one"
        reply = await sent(through_second, ben, "and back from two", thread_id=hello["threadId"])
        texts = [(await next_of(anas, "MESSAGE"))["message"]["text"] for _ in range(2)]
        assert texts == ["hi from process one", "and back from two"]
        assert reply["seq"] == hello["seq"] + 1


async def _catch_up(
    gql: GraphQLClient, reader: Account, thread_id: str, after: int | None
) -> list[tuple[int, str]]:
    """Every message after seq ``after``, page by page, as a reconnecting client reads."""
    found: list[tuple[int, str]] = []
    cursor = None if after is None else str(after)
    while True:
        page = (await gql(CATCH_UP, {"t": thread_id, "after": cursor}, token=reader.token)).ok()[
            "messages"
        ]
        found += [(edge["node"]["seq"], edge["node"]["text"]) for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return found
        cursor = page["edges"][-1]["cursor"]


async def test_a_client_whose_socket_keeps_dropping_misses_nothing_and_sees_nothing_twice(
    two_processes: list[str], clients: list[GraphQLClient]
) -> None:
    through_first, through_second = clients
    ana = await sign_up(through_first, "ana")
    ben = await sign_up(through_second, "ben")
    cy = await sign_up(through_first, "cy")
    thread_id = await group(through_first, ana, ben, cy)
    total = 120
    sent_texts: list[str] = []

    async def keep_sending() -> None:
        for number in range(total):
            sender = ana if number % 2 else cy
            await sent(through_first, sender, f"message {number}", thread_id=thread_id)
            sent_texts.append(f"message {number}")
            await asyncio.sleep(0.01)

    # What ben's client shows: messages keyed by seq, from the socket or from catching up.
    seen: dict[int, str] = {}
    duplicates_dropped = 0
    from_catch_up = 0
    last_seq: int | None = None
    randomness = random.Random(11)

    def take(seq: int, text: str) -> None:
        nonlocal duplicates_dropped, last_seq
        if seq in seen:
            duplicates_dropped += 1
            assert seen[seq] == text
            return
        seen[seq] = text
        last_seq = max(seq, last_seq or 0)

    async def one_connection(socket: Socket) -> None:
        nonlocal from_catch_up
        # Subscribe, and once live (its first GAP) catch up: whatever lands between the
        # two arrives twice at most, never not at all.
        await socket.listen(THREAD_EVENTS, {"threadId": thread_id})
        for seq, text in await _catch_up(through_second, ben, thread_id, last_seq):
            from_catch_up += seq not in seen
            take(seq, text)
        for _ in range(randomness.randint(2, 8)):
            try:
                event = await next_of(socket, "MESSAGE", timeout=1.0)
            except TimeoutError:
                return
            take(event["message"]["seq"], event["message"]["text"])

    sending = asyncio.create_task(keep_sending())
    reconnects = 0
    try:
        while not sending.done():
            async with open_socket(two_processes[reconnects % 2], token=ben.token) as socket:
                await one_connection(socket)
            reconnects += 1
            # Away for a moment while messages keep coming.
            await asyncio.sleep(randomness.uniform(0.05, 0.2))
        await sending
    finally:
        sending.cancel()
    for seq, text in await _catch_up(through_second, ben, thread_id, last_seq):
        from_catch_up += seq not in seen
        take(seq, text)

    assert reconnects >= 5
    assert from_catch_up > 0  # messages really were sent while the socket was down
    assert sorted(seen) == list(range(1, total + 1))
    assert [seen[seq] for seq in sorted(seen)] == sent_texts
