"""Fuzzing the public edge: GraphQL over HTTP with Schemathesis, both websocket
protocols with a seeded generator of bad frames, and the inputs fuzzing has found.

Pass, for every request: no 5xx, every error typed (``extensions.code``), and no ERROR
log line, since nothing a client sends is our failure. Budgets are fixed and the
generators seeded, so a run is the same every time and stays within seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema
from websockets.exceptions import ConnectionClosed

from domain.media.delivery import owner_of_key
from graphql_api.relay import from_global_id
from infra.settings import Settings
from tests.helpers import SIGN_UP, GraphQLClient, create_post, sign_up
from tests.server_logs import describe, errors_logged
from tests.ws_client import (
    LEGACY_WS,
    MESSAGE_EVENTS,
    NOTIFICATION_EVENTS,
    TRANSPORT_WS,
    open_socket,
    raw_socket,
)


async def test_digits_that_are_not_ascii_are_refused_not_crashed_on(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    """str.isdigit() admits "²", which int() refuses, and Arabic-Indic digits, which it
    reads as a number: neither is one of our ids or positions."""
    ana = await sign_up(gql, "ana")
    for cursor in ("²", "\u0661\u0662", "1_2", " 12"):
        result = await gql(
            "query($after: String) { notifications(after: $after) { nodes { kind } } }",
            {"after": cursor},
            token=ana.token,
        )
        assert result.codes == ["BAD_USER_INPUT"], (cursor, result.errors)
    _, own_id = from_global_id(ana.id)
    for spelling in ("\u0661\u0662", "1_2", f" {own_id}", f"+{own_id}"):
        odd_id = base64.b64encode(f"User:{spelling}".encode()).decode()
        result = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": odd_id})
        assert result.codes == ["BAD_USER_INPUT"], (spelling, result.errors)
    answer = await http.post(
        "/graphql",
        content=b'{"query": "{ viewer { id } }"}',
        headers={b"content-type": b"application/json", b"content-length": b"\xb2"},  # "²"
    )
    assert answer.status_code < 500, answer.text


async def test_media_links_with_junk_in_them_are_refused(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    owner = await sign_up(gql, "private.owner", private=True)
    _, owner_id = from_global_id(owner.id)
    key = f"/media/m/{owner_id}/{'a' * 32}/640.webp"
    for query in ("exp=%C2%B2&sig=abc", "exp=%D9%A1&sig=abc", "exp=99999999999&sig=%C3%A9"):
        answer = await http.get(f"{key}?{query}")
        assert answer.status_code == 403, (query, answer.text)
        assert answer.json()["errors"][0]["extensions"]["reason"] == "BAD_SIGNATURE"
    # "$" matches before a trailing newline: a key spelled with one is no media key.
    assert owner_of_key(key.removeprefix("/media/")) == owner_id
    assert owner_of_key(key.removeprefix("/media/") + "\n") is None


# --- GraphQL over HTTP, with Schemathesis ---------------------------------------------

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"
# Signed in, these would end the session the rest of the run relies on.
SESSION_ENDING = ("Mutation.logOut", "Mutation.deleteAccount")


def untyped(errors: object) -> list[str]:
    """The errors of a GraphQL ``errors`` list that carry no ``extensions.code``."""
    if not isinstance(errors, list):
        return [f"errors is not a list: {errors!r:.300}"]
    return [
        f"untyped error: {json.dumps(error)[:300]}"
        for error in errors
        if not (isinstance(error, dict) and isinstance(_code_of(error), str))
    ]


def _code_of(error: dict[str, Any]) -> object:
    extensions = error.get("extensions")
    return extensions.get("code") if isinstance(extensions, dict) else None


def problems_in(response: Any) -> list[str]:
    """What is wrong with one answer: a 5xx, a body that is not JSON, an untyped error."""
    if response.status_code >= 500:
        return [f"HTTP {response.status_code}: {response.text[:300]}"]
    try:
        body = response.json()
    except ValueError:
        return [f"HTTP {response.status_code}, not JSON: {response.text[:300]}"]
    if not isinstance(body, dict):
        return [f"HTTP {response.status_code}, not an object: {response.text[:300]}"]
    return untyped(body.get("errors", []))


def fuzz_graphql(url: str, *, token: str | None, examples: int, seed: int) -> list[str]:
    """Sends every root field ``examples`` valid documents and ``examples`` invalid ones
    (Schemathesis's negative mode) to ``url``; returns what went wrong, with the
    document."""
    schema: BaseSchema = schemathesis.graphql.from_path(SCHEMA_FILE)
    if token is not None:
        schema = schema.exclude(name=list(SESSION_ENDING))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    found: list[str] = []

    def check(case: Any) -> None:
        response = case.call(base_url=f"{url}/graphql", headers=headers, timeout=15)
        found.extend(
            f"{problem}\n  document: {case.body!s:.500}" for problem in problems_in(response)
        )

    budget = hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            hypothesis.seed(seed)(budget(hypothesis.given(case=strategy)(check)))()
    return found


@pytest.mark.slow
async def test_graphql_fuzzing_finds_no_server_errors(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana, bo = await sign_up(gql, "fuzz.ana"), await sign_up(gql, "fuzz.bo")
    await create_post(gql, bo, "a post to find #fuzz @fuzz.ana")
    with errors_logged() as errors:
        found = fuzz_graphql(live_server_url, token=None, examples=2, seed=25)
        found += fuzz_graphql(live_server_url, token=ana.token, examples=3, seed=26)
    assert found == [], "\n".join(found)
    assert errors == [], describe(errors)


# --- Both websocket protocols, with a seeded generator of bad frames -------------------

DOCUMENTS = [
    MESSAGE_EVENTS,
    NOTIFICATION_EVENTS,
    "query { viewer { username } }",
    "mutation { markNotificationsRead }",
    "subscription { messageEvents {",
    "subscription { nope }",
    "",
    "query A { viewer { id } } query B { viewer { id } }",
    "{ " + "viewer { id } " * 3000 + "}",
]
OWN_TYPES = {
    TRANSPORT_WS: ["connection_init", "ping", "pong", "subscribe", "subscribe", "complete"],
    LEGACY_WS: ["connection_init", "start", "start", "stop", "connection_terminate"],
}
FOREIGN_TYPES = ["start", "stop", "subscribe", "next", "data", "error", "ka", "", "PING"]
# What a server may close a socket with: the codes each protocol's spec gives a reason
# for, and (legacy) 1011 after connection_error refuses a token, as its reference server.
SOCKETS_PER_PROTOCOL = 250
CLOSE_CODES = {
    TRANSPORT_WS: {1000, 1009, 4400, 4401, 4403, 4408, 4409, 4429},
    LEGACY_WS: {1000, 1009, 1011, 4401, 4408},
}


def _junk(rng: random.Random) -> object:
    return rng.choice(
        [None, True, 0, -1, 2**70, 1.5, "", "x", "\u0000", "²", [], [[]], {}, {"a": {"b": []}}]
    )


def _well_formed(rng: random.Random, protocol: str, token: str) -> dict[str, object]:
    """A message of ``protocol`` (now and then another's) that parses as one: its order
    on the socket, its id and its document are what may be wrong."""
    own = rng.random() < 0.9
    kind = rng.choice(OWN_TYPES[protocol] if own else FOREIGN_TYPES)
    message: dict[str, object] = {"type": kind, "id": rng.choice(["1", "2", "3"])}
    if kind == "connection_init":
        authorization = rng.choice([f"Bearer {token}"] * 3 + ["Bearer ap_1_nope", "nope"])
        message["payload"] = {"Authorization": authorization}
    elif kind in ("subscribe", "start"):
        payload: dict[str, object] = {"query": rng.choice(DOCUMENTS)}
        if rng.random() < 0.3:
            payload["variables"] = rng.choice([{}, {"threadId": "\u0000"}, {"threadId": "x"}])
        if rng.random() < 0.2:
            payload["operationName"] = rng.choice(["A", "Missing"])
        message["payload"] = payload
    return message


def _broken(rng: random.Random, message: dict[str, object]) -> str | bytes:
    """No JSON, JSON of the wrong shape, or ``message`` with a field of the wrong type."""
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(["", "{", "nope", "\u0000", '{"type": "ping"', "[" * 80 + "]" * 80])
    if roll < 0.35:
        return rng.randbytes(rng.randint(0, 64))
    if roll < 0.5:
        return json.dumps(_junk(rng))
    field = rng.choice(["type", "id", "payload", "query", "variables", "operationName"])
    payload = message.get("payload")
    if field in ("query", "variables", "operationName") and isinstance(payload, dict):
        payload[field] = _junk(rng)
    else:
        message[field] = _junk(rng)
    return json.dumps(message)


def random_frame(rng: random.Random, protocol: str, token: str) -> str | bytes:
    message = _well_formed(rng, protocol, token)
    return _broken(rng, message) if rng.random() < 0.15 else json.dumps(message)


def sentinel(protocol: str) -> str:
    """A message every open socket answers: ping, or (legacy, which has none) an unknown
    type with an id, which gets an error for that id."""
    if protocol == TRANSPORT_WS:
        return json.dumps({"type": "ping"})
    return json.dumps({"type": "sentinel", "id": "sentinel"})


def answers_sentinel(protocol: str, message: dict[str, Any]) -> bool:
    if protocol == TRANSPORT_WS:
        return message.get("type") == "pong"
    return message.get("type") == "error" and message.get("id") == "sentinel"


def problems_in_message(protocol: str, message: object) -> list[str]:
    if not isinstance(message, dict):
        return [f"not an object: {message!r:.300}"]
    kind, payload = message.get("type"), message.get("payload")
    if kind in ("next", "data") and isinstance(payload, dict):
        return untyped(payload.get("errors", []))
    if kind == "error" and protocol == TRANSPORT_WS:
        return untyped(payload)
    if kind in ("error", "connection_error"):
        return untyped([payload])
    return []


async def fuzz_socket(
    url: str, protocol: str, frames: list[str | bytes], *, then_sentinel: bool = True
) -> list[str]:
    """Sends ``frames`` then the sentinel; what went wrong with the answers. (A frame
    sent after the server closed can reset the connection before its close frame is
    read: a frame expected to close the socket goes alone.)"""
    found: list[str] = []
    async with await raw_socket(url, protocol) as connection:
        try:
            for frame in [*frames, sentinel(protocol)] if then_sentinel else frames:
                await connection.send(frame)
            while True:
                raw = await asyncio.wait_for(connection.recv(), 5)
                message = json.loads(raw)
                found += problems_in_message(protocol, message)
                if answers_sentinel(protocol, message):
                    return found
        except ConnectionClosed as closed:
            received = closed.rcvd
            if received is None:
                found.append("dropped with no close frame")
            elif received.code not in CLOSE_CODES[protocol]:
                found.append(f"closed {received.code} {received.reason!r}")
        except TimeoutError:
            found.append("neither answered nor closed")
    return found


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websocket_fuzzing_gets_typed_answers_and_a_working_socket_after(
    gql: GraphQLClient, settings: Settings, live_server_url: str, protocol: str
) -> None:
    ana = await sign_up(gql, "fuzz.ana")
    rng = random.Random(f"issue-25-{protocol}")
    oversized = json.dumps({"type": "ping", "payload": {"pad": "x" * settings.max_body_bytes}})
    with errors_logged() as errors:
        found: list[str] = []
        for _ in range(SOCKETS_PER_PROTOCOL):
            frames = [random_frame(rng, protocol, ana.token) for _ in range(rng.randint(1, 6))]
            if rng.random() < 0.5:
                init = {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {ana.token}"},
                }
                frames.insert(0, json.dumps(init))
            found += [
                f"{problem}\n  after: {frames!r:.600}"
                for problem in await fuzz_socket(live_server_url, protocol, frames)
            ]
        found += await fuzz_socket(live_server_url, protocol, [oversized], then_sentinel=False)
        async with open_socket(live_server_url, protocol=protocol, token=ana.token) as socket:
            await socket.listen(MESSAGE_EVENTS)
    assert found == [], "\n".join(found)
    assert errors == [], describe(errors)


async def test_a_trailing_newline_is_no_part_of_a_valid_username_or_website(
    gql: GraphQLClient,
) -> None:
    """In a pattern, "$" also matches before a trailing newline."""
    result = await gql(
        SIGN_UP, {"username": "ana\n", "email": "ana@example.com", "password": "password123"}
    )
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    bo = await sign_up(gql, "bo")
    result = await gql(
        "mutation($w: String) { updateProfile(input: {website: $w}) { user { website } } }",
        {"w": "https://example.com\n"},
        token=bo.token,
    )
    assert result.codes == ["BAD_USER_INPUT"], result.errors
