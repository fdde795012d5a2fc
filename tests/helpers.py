"""Helpers for tests: GraphQL calls that also count SQL statements and Redis round trips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from db.instrumentation import WorkCounter, count_work


@dataclass
class GraphQLResult:
    data: Any
    errors: list[dict[str, Any]]
    work: WorkCounter

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code", "") for error in self.errors]

    def ok(self) -> Any:
        assert not self.errors, self.errors
        return self.data


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> GraphQLResult:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with count_work() as work:
            response = await self.http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
        body = response.json()
        return GraphQLResult(data=body.get("data"), errors=body.get("errors") or [], work=work)


SIGN_UP = """
mutation($username: String!, $email: String!, $password: String!) {
  signUp(input: {username: $username, email: $email, password: $password}) {
    token user { id username }
  }
}
"""


@dataclass
class Account:
    id: str
    username: str
    token: str


async def sign_up(gql: GraphQLClient, username: str, *, private: bool = False) -> Account:
    result = await gql(
        SIGN_UP,
        {"username": username, "email": f"{username}@example.com", "password": "password123"},
    )
    payload = result.ok()["signUp"]
    account = Account(id=payload["user"]["id"], username=username, token=payload["token"])
    if private:
        (
            await gql(
                "mutation { updateProfile(input: {isPrivate: true}) { user { isPrivate } } }",
                token=account.token,
            )
        ).ok()
    return account


async def follow(gql: GraphQLClient, follower: Account, followee: Account) -> str:
    result = await gql(
        "mutation($id: ID!) { follow(userId: $id) { status } }",
        {"id": followee.id},
        token=follower.token,
    )
    status: str = result.ok()["follow"]["status"]
    return status


async def create_post(gql: GraphQLClient, author: Account, caption: str) -> str:
    result = await gql(
        "mutation($c: String!) { createPost(input: {caption: $c}) { post { id } } }",
        {"c": caption},
        token=author.token,
    )
    post_id: str = result.ok()["createPost"]["post"]["id"]
    return post_id
