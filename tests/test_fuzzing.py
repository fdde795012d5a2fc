"""Fuzzing the public edge: GraphQL over HTTP with Schemathesis, both websocket
protocols with a seeded generator of bad frames, and the inputs fuzzing has found.

Pass, for every request: no 5xx, every error typed (``extensions.code``), and no ERROR
log line, since nothing a client sends is our failure. Budgets are fixed and the
generators seeded, so a run is the same every time and stays within seconds.
"""

from __future__ import annotations

import base64

import httpx

from domain.media.delivery import owner_of_key
from graphql_api.relay import from_global_id
from tests.helpers import GraphQLClient, sign_up


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
