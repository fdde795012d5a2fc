"""The endpoint itself: typename, health, readiness, node errors and schema drift."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from db.ids import compose_id
from graphql_api.schema import schema
from tests.helpers import GraphQLClient, sign_up

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


async def test_typename(gql: GraphQLClient) -> None:
    assert (await gql("{ __typename }")).ok() == {"__typename": "Query"}


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    health = await http.get("/healthz")
    assert health.status_code == 200
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["redis"] == "ok"
    assert [name for name in checks if name.startswith("database_")] == ["database_0", "database_1"]
    assert all(value == "ok" for value in checks.values())


async def test_id_naming_a_missing_shard_is_not_found(gql: GraphQLClient) -> None:
    missing_shard = compose_id(milliseconds_since_epoch=1000, shard=4000, sequence=1)
    global_id = base64.b64encode(f"User:{missing_shard}".encode()).decode()
    result = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": global_id})
    assert result.codes == ["NOT_FOUND"]
    assert result.data is None or result.data.get("node") is None


async def test_malformed_id_is_bad_user_input(gql: GraphQLClient) -> None:
    result = await gql('{ node(id: "not-an-id") { id } }')
    assert result.codes == ["BAD_USER_INPUT"]


async def test_invalid_document_has_a_code(gql: GraphQLClient) -> None:
    result = await gql("{ noSuchField }")
    assert result.codes == ["GRAPHQL_VALIDATION_FAILED"]


async def test_node_round_trip(gql: GraphQLClient) -> None:
    account = await sign_up(gql, "noder")
    result = await gql(
        "query($id: ID!) { node(id: $id) { __typename id ... on User { username } } }",
        {"id": account.id},
    )
    assert result.ok()["node"] == {"__typename": "User", "id": account.id, "username": "noder"}
    many = await gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [account.id, base64.b64encode(b"User:12345").decode()]},
    )
    assert many.ok()["nodes"] == [{"id": account.id}, None]


def test_schema_file_matches_code() -> None:
    assert SCHEMA_FILE.read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `aperture export-schema`"
    )


async def test_query_limits_are_enforced(gql: GraphQLClient) -> None:
    nested = "{ id }"
    for _ in range(8):
        nested = "{ edges { node { followers " + nested + " } } }"
    deep = await gql("{ viewer { followers " + nested + " } }")
    assert deep.data is None
    assert set(deep.codes) == {"QUERY_TOO_COMPLEX"}
    assert any("exceeds maximum operation depth" in e["message"] for e in deep.errors)
    assert deep.errors[0]["extensions"]["limit"] == "depth"
    aliases = " ".join(f"a{n}: __typename" for n in range(31))
    many = await gql("{ " + aliases + " }")
    assert many.data is None
    assert set(many.codes) == {"QUERY_TOO_COMPLEX"}
    assert many.errors[0]["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "aliases",
        "value": 31,
        "maximum": 30,
    }
    # The same document again is served from the parse and validation caches, same answer.
    again = await gql("{ " + aliases + " }")
    assert again.errors == many.errors
