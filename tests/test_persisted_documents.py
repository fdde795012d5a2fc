"""Persisted documents: Apollo's automatic persisted queries, and a registered-only mode."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.state import AppState
from graphql_api.persisted import load_manifest
from infra.settings import ConfigurationError, Settings
from tests.helpers import GraphQLClient, sign_up

VIEWER = "query Viewer { viewer { username } }"
FEED = "query Feed { homeFeed(first: 5) { edges { node { id } } } }"

TunedGql = Callable[..., Awaitable[tuple[GraphQLClient, AppState]]]


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(document)}}


async def post(
    http: httpx.AsyncClient, body: dict[str, Any], token: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json=body, headers=headers)


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def test_automatic_persisted_query_round_trip(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    ana = await sign_up(gql, "apq.ana")
    by_hash = {"extensions": persisted(VIEWER)}
    missing = await post(http, by_hash, ana.token)
    assert missing.status_code == 200
    assert missing.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert code_of(missing) == "PERSISTED_QUERY_NOT_FOUND"
    registered = await post(http, {"query": VIEWER, **by_hash}, ana.token)
    assert registered.json()["data"] == {"viewer": {"username": "apq.ana"}}
    again = await post(http, by_hash, ana.token)
    assert again.json()["data"] == {"viewer": {"username": "apq.ana"}}
    # A query named by hash can go over GET, where caches can keep it.
    got = await http.get(
        "/graphql",
        params={"extensions": json.dumps(by_hash["extensions"])},
        headers={"Authorization": f"Bearer {ana.token}"},
    )
    assert got.status_code == 200
    assert got.json()["data"] == {"viewer": {"username": "apq.ana"}}
    # Rules still hold: the document runs as any other, for whoever sends it.
    anonymous = await post(http, by_hash)
    assert anonymous.json()["data"] == {"viewer": None}


async def test_a_document_registered_in_one_process_is_found_by_another(
    gql: GraphQLClient, http: httpx.AsyncClient, tuned_gql: TunedGql
) -> None:
    """The other app has its own memory: only Redis can tell it the document."""
    ana = await sign_up(gql, "apq.shared")
    await post(http, {"query": FEED, "extensions": persisted(FEED)}, ana.token)
    other, _ = await tuned_gql()
    found = await post(other.http, {"extensions": persisted(FEED)}, ana.token)
    assert found.json()["data"] == {"homeFeed": {"edges": []}}


@pytest.mark.parametrize(
    ("extensions", "query"),
    [
        ({"persistedQuery": {"version": 1, "sha256Hash": sha("{ viewer { id } }")}}, VIEWER),
        ({"persistedQuery": {"version": 2, "sha256Hash": sha(VIEWER)}}, None),
        ({"persistedQuery": {"version": 1, "sha256Hash": "zz"}}, None),
        ({"persistedQuery": "yes"}, None),
        ({}, None),
    ],
)
async def test_malformed_persisted_requests_are_refused(
    http: httpx.AsyncClient, extensions: dict[str, Any], query: str | None
) -> None:
    body: dict[str, Any] = {"extensions": extensions}
    if query is not None:
        body["query"] = query
    response = await post(http, body)
    assert response.status_code == 400
    assert code_of(response) == "BAD_REQUEST"
    assert "data" not in response.json()


async def test_registered_only_runs_the_manifest_and_nothing_else(
    tuned_gql: TunedGql, tmp_path: Path
) -> None:
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({sha(VIEWER): VIEWER}))
    gql, _ = await tuned_gql(
        persisted_documents="registered_only", persisted_documents_file=manifest
    )
    # Sign-up is not in the list either: nothing but the manifest runs.
    refused = await post(gql.http, {"query": "mutation { logOut { ok } }"})
    assert refused.status_code == 400
    assert code_of(refused) == "PERSISTED_QUERY_NOT_IN_LIST"
    assert (await post(gql.http, {"extensions": persisted(VIEWER)})).json()["data"] == {
        "viewer": None
    }
    assert (await post(gql.http, {"query": VIEWER})).json()["data"] == {"viewer": None}
    unknown = await post(gql.http, {"query": FEED, "extensions": persisted(FEED)})
    assert code_of(unknown) == "PERSISTED_QUERY_NOT_IN_LIST"
    by_hash = await post(gql.http, {"extensions": persisted(FEED)})
    assert code_of(by_hash) == "PERSISTED_QUERY_NOT_IN_LIST"


async def test_off_refuses_hashes(tuned_gql: TunedGql) -> None:
    gql, _ = await tuned_gql(persisted_documents="off")
    response = await post(gql.http, {"extensions": persisted(VIEWER)})
    assert code_of(response) == "PERSISTED_QUERY_NOT_SUPPORTED"
    assert (await post(gql.http, {"query": VIEWER})).json()["data"] == {"viewer": None}


def test_manifests_are_checked(tmp_path: Path) -> None:
    apollo = tmp_path / "apollo.json"
    apollo.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": sha(VIEWER), "name": "Viewer", "type": "query", "body": VIEWER}
                ],
            }
        )
    )
    assert load_manifest(apollo) == {sha(VIEWER): VIEWER}
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({sha(VIEWER): FEED}))
    with pytest.raises(ConfigurationError, match="not the sha256 of its document"):
        load_manifest(forged)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_manifest(tmp_path / "absent.json")
    with pytest.raises(ValueError, match="registered_only needs this file"):
        Settings(persisted_documents="registered_only")
