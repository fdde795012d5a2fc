"""Faults with writes in flight (docs/reliability.md): a real server or process is stopped
or killed while a loop of mutations runs over HTTP. Each test asserts what the clients
saw (typed errors, never a 500), that every acknowledged write is in PostgreSQL
afterwards, and that the same requests succeed again, with no human step, once the
component is back."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from websockets.exceptions import ConnectionClosed

from aperture.seed import DEMO_PASSWORD, Graph, load_graph
from db.events.models import OutboxEvent
from db.feed.activity import ACTIVE_USERS_KEY
from db.posts.models import Post
from db.runtime import Runtime, check_reachable, shard_map_for
from db.session import ShardSessions
from domain.media.processing import generate_demo_image
from domain.state import AppState
from graphql_api.relay import from_global_id, to_global_id
from infra.embedded import STATE_FILE, EmbeddedPostgres, EmbeddedServers
from infra.servers import Servers
from infra.settings import Settings
from migrations.runner import migrate
from tests.conftest import serve_in_thread, server_processes
from tests.helpers import Account, GraphQLClient, follow, sign_up
from tests.media_helpers import CREATE_UPLOAD, FINALIZE, MEDIA, send_bytes, upload_media
from tests.server_logs import describe, errors_logged
from tests.test_fanout_durability import _fanout_progress, _feeds_with, _start_worker
from tests.test_login_security import TunedGql
from tests.test_realtime import group, next_of, sent
from tests.test_realtime_processes import THREAD_EVENTS, _catch_up
from tests.test_redis_outage import _free_port, _start_valkey
from tests.ws_client import Socket, open_socket
from workers.runner import run_workers

CREATE_POST = "mutation($c: String!) { createPost(input: {caption: $c}) { post { id } } }"
# What a client may see while a dependency is away: never INTERNAL_SERVER_ERROR.
FAULT_CODES = {"SERVICE_UNAVAILABLE", "TIMEOUT", "OVERLOADED"}


@dataclass
class Outcome:
    """One createPost as its client saw it."""

    caption: str
    author: Account
    status: int | None = None
    post_id: int | None = None  # set when acknowledged
    codes: list[str] = field(default_factory=list)
    transport_error: str | None = None  # the connection broke: not known either way
    # Answered TIMEOUT with ``committed``: written, though the answer could not say how.
    committed: bool = False
    seconds: float = 0.0


@dataclass
class Writes:
    outcomes: list[Outcome] = field(default_factory=list)

    def acknowledged(self, *, of: Account | None = None) -> list[Outcome]:
        return [
            outcome
            for outcome in self.outcomes
            if outcome.post_id is not None and (of is None or outcome.author is of)
        ]

    def refused(self, *, of: Account | None = None) -> list[Outcome]:
        """Answered with an error (SERVICE_UNAVAILABLE, TIMEOUT): not written. createPost
        catches what fails after its commit, and an operation past its budget after a
        commit is given time to finish (graphql_api/http.py)."""
        return [
            outcome
            for outcome in self.outcomes
            if outcome.codes and not outcome.committed and (of is None or outcome.author is of)
        ]


async def post_once(http: httpx.AsyncClient, author: Account, caption: str) -> Outcome:
    """createPost over HTTP; fails the test on a 500, a body that is not JSON, or an
    error code outside FAULT_CODES."""
    outcome = Outcome(caption=caption, author=author)
    started = time.monotonic()
    try:
        response = await http.post(
            "/graphql",
            json={"query": CREATE_POST, "variables": {"c": caption}},
            headers={"Authorization": f"Bearer {author.token}"},
        )
    except httpx.TransportError as error:
        outcome.transport_error = type(error).__name__
        return outcome
    finally:
        outcome.seconds = time.monotonic() - started
    outcome.status = response.status_code
    assert response.status_code in (200, 503), (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/"), response.text
    body = response.json()
    outcome.codes = [error["extensions"]["code"] for error in body.get("errors") or []]
    outcome.committed = any(
        error["extensions"].get("committed") for error in body.get("errors") or []
    )
    assert set(outcome.codes) <= FAULT_CODES, body
    created = (body.get("data") or {}).get("createPost")
    if created is not None:
        assert not outcome.codes, body
        outcome.post_id = from_global_id(created["post"]["id"])[1]
    else:
        assert outcome.codes, body
    return outcome


async def keep_posting(
    http: httpx.AsyncClient,
    authors: list[Account],
    writes: Writes,
    stop: asyncio.Event,
    *,
    client: int = 0,
    pause: float = 0.01,
) -> None:
    """createPost by each author in turn until ``stop``, every outcome recorded."""
    number = 0
    while not stop.is_set():
        author = authors[number % len(authors)]
        caption = f"{author.username} {client}.{number}"
        writes.outcomes.append(await post_once(http, author, caption))
        number += 1
        await asyncio.sleep(pause)


@asynccontextmanager
async def posting(
    http: httpx.AsyncClient,
    authors: list[Account],
    writes: Writes,
    *,
    clients: int = 1,
    pause: float = 0.01,
) -> AsyncIterator[None]:
    """``clients`` loops of createPost, each one request at a time, ``pause`` seconds
    apart, for the block's time."""
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(keep_posting(http, authors, writes, stop, client=n, pause=pause))
        for n in range(clients)
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*loops)


async def until(condition: Callable[[], bool], *, seconds: float, what: str) -> float:
    """Waits up to ``seconds`` for ``condition`` (state the loop updates); how long it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def posts_in_postgres(sessions: ShardSessions, captions: list[str]) -> dict[str, int]:
    """Post id by caption, of the posts with ``captions`` PostgreSQL holds (every shard);
    a caption written twice fails the test."""

    async def on_shard(session: AsyncSession) -> list[tuple[str, int]]:
        rows = await session.execute(
            select(Post.caption, Post.id).where(Post.caption.in_(captions))
        )
        return [(row.caption, row.id) for row in rows]

    found: dict[str, int] = {}
    for rows in (await sessions.scatter_all(on_shard)).values():
        for caption, post_id in rows:
            assert caption not in found, f"{caption!r} was written twice"
            found[caption] = post_id
    return found


async def assert_acknowledged_kept(sessions: ShardSessions, writes: Writes) -> None:
    """Every acknowledged post is in PostgreSQL, under the id its client was given; no
    refused one was written after all."""
    acknowledged = writes.acknowledged()
    assert acknowledged, "some writes were acknowledged"
    stored = await posts_in_postgres(sessions, [o.caption for o in writes.outcomes])
    assert {o.caption: o.post_id for o in acknowledged}.items() <= stored.items()
    refused = {o.caption for o in writes.refused()}
    assert not refused & stored.keys(), "a refused write was applied"
    kept = {o.caption for o in writes.outcomes if o.committed}
    assert kept <= stored.keys(), "a write said to be kept was not"


# A full database pool ---------------------------------------------------------------


@pytest.mark.slow
async def test_a_full_pool_makes_writes_wait_then_refuses_them_typed_and_recovers(
    tuned_gql: TunedGql, sessions: ShardSessions
) -> None:
    gql, state = await tuned_gql(db_pool_size=1)
    authors = [await sign_up(gql, f"pool.{n}") for n in range(2)]
    writes = Writes()
    held: list[AsyncConnection] = []
    try:
        async with posting(gql.http, authors, writes, clients=4):
            await until(lambda: len(writes.acknowledged()) >= 4, seconds=10, what="writes")
            # Every connection each database's pool may open (1 + 1 overflow), held, as by
            # the slow statements of other requests.
            for engine in state.runtime.databases.engines:
                for _ in range(2):
                    held.append(await engine.connect())
            full_from = len(writes.outcomes)
            # A client whose write committed just as the pool filled waits up to twice
            # the budget (20 s) for its answer; the others are refused after 5 s.
            await until(
                lambda: len(Writes(writes.outcomes[full_from:]).refused()) >= 4,
                seconds=45,
                what="each client refused",
            )
            for connection in held:
                await connection.close()
            held.clear()
            drained_from = len(writes.outcomes)
            await until(
                lambda: len(Writes(writes.outcomes[drained_from:]).acknowledged()) >= 4,
                seconds=15,
                what="writes once the pool has room",
            )
    finally:
        for connection in held:
            await connection.close()
    # A refusal came after the pool's wait (5 s) or the operation's budget (10 s): not at
    # once, and not for ever; a write past its budget after its commit finishes in twice.
    refused = writes.refused()
    assert all(4 < o.seconds < 11 for o in refused), [o.seconds for o in refused]
    assert all(o.seconds < 21 for o in writes.outcomes), [o.seconds for o in writes.outcomes]
    assert all(o.transport_error is None for o in writes.outcomes)
    await assert_acknowledged_kept(sessions, writes)


# One physical PostgreSQL database stopped -------------------------------------------


@contextmanager
def second_database(servers: Servers) -> Iterator[tuple[Servers, Path]]:
    """A cluster whose database 0 is the session's and database 1 a PostgreSQL of this
    test's own (its data dir is yielded), so stopping it stops nothing the others use."""
    data_dir = Path(tempfile.mkdtemp(prefix="apt-f-"))  # short: a socket path lives in it
    local = EmbeddedPostgres(data_dir=data_dir / "pg", databases=1, cleanup_mode="delete")
    try:
        (url,) = local.start()
        yield (
            Servers(
                database_urls=[servers.database_urls[0], url],
                redis_url=servers.redis_url,
                s3=servers.s3,
            ),
            data_dir / "pg",
        )
    finally:
        local.stop(discard=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def stop_immediately(postgres: EmbeddedPostgres) -> None:
    """``pg_ctl stop -m immediate`` (which refuses to run as root here): SIGQUIT to the
    postmaster, which ends every backend at once, without a checkpoint, as a crash would."""
    pid = postgres.running_pid()
    assert pid is not None
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 10
    while postgres.running_pid() is not None:
        assert time.monotonic() < deadline, "PostgreSQL did not stop"
        time.sleep(0.02)


@pytest.mark.slow
async def test_one_database_stopped_fails_only_its_users_and_comes_back(
    settings: Settings, servers: Servers, runtime: Runtime
) -> None:
    with second_database(servers) as (split, pg_dir):
        shard_map = shard_map_for(settings, split)
        migrate(shard_map)
        verifier = Runtime.connect(settings, split)
        sessions = ShardSessions(verifier.databases)
        postgres = EmbeddedPostgres(data_dir=pg_dir, databases=1)
        try:
            with serve_in_thread(settings, split) as url:
                async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                    gql = GraphQLClient(http)
                    on: dict[int, list[Account]] = {0: [], 1: []}
                    n = 0
                    while len(on[0]) < 2 or len(on[1]) < 2:
                        name = f"split{n}"
                        n += 1
                        database = shard_map.database_of(shard_map.shard_for_username(name))
                        if len(on[database]) < 2:
                            on[database].append(await sign_up(gql, name))
                    writes = Writes()
                    async with posting(http, on[0] + on[1], writes, clients=2):
                        await until(
                            lambda: len(writes.acknowledged()) >= 8, seconds=15, what="writes"
                        )
                        stop_immediately(postgres)
                        down_from = len(writes.outcomes)
                        await until(
                            lambda: all(
                                Writes(writes.outcomes[down_from:]).refused(of=a) for a in on[1]
                            ),
                            seconds=20,
                            what="each user of the stopped database refused",
                        )
                        ready = await http.get("/readyz")
                        assert ready.status_code == 503
                        assert ready.json()["checks"]["database_1"] != "ok"
                        assert ready.json()["checks"]["database_0"] == "ok"
                        during = Writes(writes.outcomes[down_from:])
                        # The other database's users go on writing.
                        assert all(during.acknowledged(of=a) for a in on[0])
                        assert not [o for a in on[0] for o in during.refused(of=a)]
                        # It comes back on its own socket; nobody touches the app.
                        await asyncio.to_thread(postgres.start)
                        back_from = len(writes.outcomes)
                        await until(
                            lambda: all(
                                Writes(writes.outcomes[back_from:]).acknowledged(of=a)
                                for a in on[1]
                            ),
                            seconds=15,
                            what="the stopped database's users writing again",
                        )
                    assert (await http.get("/readyz")).json()["checks"]["database_1"] == "ok"
            assert all(o.transport_error is None for o in writes.outcomes)
            await assert_acknowledged_kept(sessions, writes)
        finally:
            await verifier.close()


# Valkey SIGKILLed and restarted ------------------------------------------------------

FEED = "{ homeFeed(first: 100) { edges { node { id } } } }"


async def owed_events(sessions: ShardSessions) -> int:
    """Outbox rows not yet delivered, on every shard."""
    per_shard = await sessions.scatter_all(
        lambda session: session.scalar(select(func.count()).select_from(OutboxEvent))
    )
    return sum(int(count or 0) for count in per_shard.values())


@asynccontextmanager
async def workers_of(state: AppState) -> AsyncIterator[None]:
    """Every queue's workers and periodic tasks (the outbox sweeper among them), as
    ``aperture worker`` runs them, in this process."""
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(state, stop, handle_signals=False))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


@pytest.mark.slow
async def test_valkey_killed_mid_writes_loses_no_post_and_recovers(
    settings: Settings,
    servers: Servers,
    runtime: Runtime,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    valkey_dir = tmp_path / "valkey"
    port = _free_port()
    valkey = _start_valkey(valkey_dir, port)
    own = Servers(
        database_urls=servers.database_urls,
        redis_url=f"redis://127.0.0.1:{port}/0",
        s3=servers.s3,
    )
    # A sweeper that re-queues an owed event after 1 s instead of 60 s, so the test
    # need not wait a minute for what a queue lost in the kill.
    quick = settings.model_copy(
        update={"event_sweep_grace_seconds": 1, "event_sweep_interval_seconds": 0.5}
    )
    worker_runtime = Runtime.connect(quick, own)
    try:
        with serve_in_thread(settings, own) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                gql = GraphQLClient(http)
                author = await sign_up(gql, "vk.author")
                reader = await sign_up(gql, "vk.reader")
                assert await follow(gql, reader, author) == "FOLLOWING"
                writes = Writes()
                caplog.set_level(logging.INFO)
                async with posting(http, [author], writes, clients=2):
                    await until(lambda: len(writes.acknowledged()) >= 4, seconds=10, what="writes")
                    valkey.terminate()  # SIGKILL: no shutdown, the last second of AOF lost
                    down_from = len(writes.outcomes)
                    await until(
                        lambda: len(writes.outcomes) - down_from >= 6,
                        seconds=15,
                        what="writes while Valkey is down",
                    )
                    assert (await http.get("/readyz")).json()["checks"]["redis"] != "ok"
                    valkey = _start_valkey(valkey_dir, port)
                    back = time.monotonic()
                    while (await http.get("/readyz")).json()["status"] != "ready":
                        assert time.monotonic() - back < 10, "Valkey not noticed coming back"
                        await asyncio.sleep(0.1)
                    back_from = len(writes.outcomes)
                    await until(
                        lambda: len(writes.outcomes) - back_from >= 4,
                        seconds=10,
                        what="writes after",
                    )
                # Valkey is a cache and a queue: nobody saw an error at any point.
                assert all(o.post_id is not None for o in writes.outcomes), [
                    (o.codes, o.transport_error) for o in writes.outcomes
                ]
                assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
                sessions = ShardSessions(worker_runtime.databases)
                await assert_acknowledged_kept(sessions, writes)

                # Every post's fan-out is delivered by the workers once they run, the
                # jobs a dead Valkey lost included (the sweeper queues them again).
                posted = {o.post_id for o in writes.outcomes}
                worker_state = AppState(worker_runtime)
                async with workers_of(worker_state):
                    deadline = time.monotonic() + 30
                    while await owed_events(sessions):
                        assert time.monotonic() < deadline, "owed events not delivered"
                        await asyncio.sleep(0.2)
                feed = (await gql(FEED, token=reader.token)).ok()["homeFeed"]["edges"]
                assert {from_global_id(edge["node"]["id"])[1] for edge in feed} == posted
    finally:
        await worker_runtime.close()
        if valkey.is_running():
            valkey.stop()


# An operation past its budget after its commit ---------------------------------------


async def test_a_write_past_its_budget_after_its_commit_is_answered_not_refused(
    tuned_gql: TunedGql, sessions: ShardSessions
) -> None:
    """createPost commits, then waits for a connection to the database of its hashtag's
    shard (its index is written after the commit), whose pool others hold, past the
    operation's budget: its client gets the post, not an error it would retry into a
    second post."""
    gql, state = await tuned_gql(operation_timeout_seconds=1.0, db_pool_size=1)
    author = await sign_up(gql, "budget.author")
    shard_map = state.runtime.databases.shard_map
    author_database = shard_map.database_of(shard_map.shard_for_id(from_global_id(author.id)[1]))
    tag = next(
        f"slow{n}"
        for n in range(1000)
        if shard_map.database_of(shard_map.shard_for_hashtag(f"slow{n}")) != author_database
    )
    other = state.runtime.databases.engines[1 - author_database]
    held = [await other.connect() for _ in range(2)]  # its pool: 1 + 1 overflow
    try:
        answer = asyncio.ensure_future(gql(CREATE_POST, {"c": f"late #{tag}"}, token=author.token))
        await asyncio.sleep(1.5)  # past the budget, with the post committed
        assert not answer.done(), "the write waits for a connection"
    finally:
        for connection in held:
            await connection.close()
    created = (await answer).ok()["createPost"]["post"]
    post_id = from_global_id(created["id"])[1]
    async with sessions.for_id(post_id) as session:
        stored = await session.scalar(select(func.count()).where(Post.id == post_id))
    assert stored == 1


# SeaweedFS SIGKILLed and restarted ---------------------------------------------------

PHOTO = generate_demo_image(seed=25, width=320, height=240)
PUBLISHED_PHOTO = """mutation($m: [ID!]!) {
  createPost(input: {caption: "shown", mediaIds: $m}) { post { media { url(width: 320) } } }
}"""


@contextmanager
def own_object_store(servers: Servers) -> Iterator[tuple[Servers, EmbeddedServers]]:
    """The session's PostgreSQL and Valkey with a SeaweedFS of this test's own, so that
    killing it kills nothing the other tests use."""
    data_dir = Path(tempfile.mkdtemp(prefix="apt-s3-"))
    embedded = EmbeddedServers(data_dir, databases=1)
    try:
        embedded.start(want_postgres=False, want_redis=False, want_s3=True)
        assert embedded.s3 is not None
        yield (
            Servers(
                database_urls=servers.database_urls, redis_url=servers.redis_url, s3=embedded.s3
            ),
            embedded,
        )
    finally:
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def kill_seaweed(embedded: EmbeddedServers) -> None:
    """SIGKILL to ``weed mini``: no shutdown, no flush, as the OOM killer would."""
    pid = json.loads((embedded.data_dir / STATE_FILE).read_text())["seaweed"]["pid"]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # our child: reaped, so that nothing mistakes it for alive


@dataclass
class Upload:
    """One upload as its client saw it: each step's refusals, until it was finalized."""

    media_id: str | None = None
    ticket: dict[str, object] | None = None
    create_codes: list[str] = field(default_factory=list)
    failed_sends: int = 0
    sent: bool = False
    finalize_codes: list[str] = field(default_factory=list)
    finalized: bool = False


async def answered(
    gql: GraphQLClient, query: str, variables: dict[str, object], token: str
) -> tuple[dict[str, object] | None, list[str]]:
    """A GraphQL answer's data and error codes: data or a fault code, never a 500 nor
    another error."""
    response = await gql.http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (200, 503), (response.status_code, response.text)
    body = response.json()
    codes = [error["extensions"]["code"] for error in body.get("errors") or []]
    assert set(codes) <= FAULT_CODES, body
    return body.get("data"), codes


async def finalize(gql: GraphQLClient, author: Account, upload: Upload) -> None:
    _, codes = await answered(gql, FINALIZE, {"id": upload.media_id}, author.token)
    upload.finalize_codes += codes
    upload.finalized = not codes


async def advance(gql: GraphQLClient, author: Account, upload: Upload) -> None:
    """The upload's next step, as a client takes it: createUpload, the POST of the bytes
    to the store (the same ticket again after a failed send), finalizeUpload."""
    if upload.ticket is None:
        variables: dict[str, object] = {"kind": "IMAGE", "type": "image/jpeg", "size": len(PHOTO)}
        data, codes = await answered(gql, CREATE_UPLOAD, variables, author.token)
        upload.create_codes += codes
        if data is not None and data["createUpload"] is not None:
            upload.ticket = data["createUpload"]["upload"]  # type: ignore[index]
            upload.media_id = upload.ticket["media"]["id"]  # type: ignore[index]
    elif not upload.sent:
        try:
            response = await send_bytes(upload.ticket, PHOTO, content_type="image/jpeg")
        except httpx.TransportError:
            upload.failed_sends += 1  # the store is away: the client's own send fails
            return
        assert response.status_code in (200, 201, 204), response.text
        upload.sent = True
    else:
        await finalize(gql, author, upload)


async def keep_uploading(
    gql: GraphQLClient, author: Account, uploads: list[Upload], stop: asyncio.Event
) -> None:
    """Photo after photo, each step retried until it goes through."""
    while not stop.is_set():
        upload = Upload()
        uploads.append(upload)
        while not stop.is_set() and not upload.finalized:
            await advance(gql, author, upload)
            await asyncio.sleep(0.05)


async def media_status(gql: GraphQLClient, author: Account, media_id: str) -> str:
    media = (await gql(MEDIA, {"id": media_id}, token=author.token)).ok()["media"]
    status: str = media["status"]
    return status


@pytest.mark.slow
async def test_seaweedfs_killed_mid_uploads_refuses_typed_loses_no_upload_and_recovers(
    settings: Settings, servers: Servers, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with own_object_store(servers) as (own, embedded):
        check_reachable(own, settings)  # makes the bucket, as a start does
        worker_runtime = Runtime.connect(settings, own)
        worker_state = AppState(worker_runtime)
        try:
            with serve_in_thread(settings, own) as url:
                async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                    gql = GraphQLClient(http)
                    author = await sign_up(gql, "s3.author")
                    # Before: a published photo, served over /media.
                    shown = await upload_media(gql, worker_state, author, PHOTO)
                    assert shown["status"] == "READY", shown
                    published = (
                        await gql(PUBLISHED_PHOTO, {"m": [shown["id"]]}, token=author.token)
                    ).ok()
                    media_url = published["createPost"]["post"]["media"][0]["url"]
                    before = await http.get(media_url)
                    assert before.status_code == 200
                    # Bytes in the store, not yet finalized; and one finalized (acknowledged)
                    # whose processing has not run: both must survive the kill.
                    sent_only, acknowledged = Upload(), Upload()
                    while not sent_only.sent:
                        await advance(gql, author, sent_only)
                    while not acknowledged.finalized:
                        await advance(gql, author, acknowledged)

                    caplog.set_level(logging.INFO)
                    writes = Writes()
                    uploads: list[Upload] = []
                    stop_uploading = asyncio.Event()
                    uploading = asyncio.create_task(
                        keep_uploading(gql, author, uploads, stop_uploading)
                    )
                    try:
                        async with posting(http, [author], writes):
                            await until(lambda: len(uploads) >= 2, seconds=10, what="uploads")
                            await asyncio.to_thread(kill_seaweed, embedded)
                            down_from = len(writes.outcomes)
                            async with workers_of(worker_state):
                                # The acknowledged upload's processing fails while the
                                # store is away, and is run again later (RetryPolicy).
                                await until(
                                    lambda: any(
                                        "media.process" in r.getMessage()
                                        and r.levelno == logging.WARNING
                                        for r in caplog.records
                                    ),
                                    seconds=15,
                                    what="a failed media job",
                                )
                                await until(
                                    lambda: sum(u.failed_sends for u in uploads) >= 2,
                                    seconds=15,
                                    what="an upload sent while the store is away",
                                )
                                ready = await http.get("/readyz")
                                assert ready.status_code == 503
                                assert ready.json()["checks"]["object_store"] != "ok"
                                assert ready.json()["checks"]["database_0"] == "ok"
                                away = await http.get(media_url)
                                assert away.status_code == 503
                                assert away.json()["errors"][0]["extensions"]["code"] == (
                                    "SERVICE_UNAVAILABLE"
                                )
                                await finalize(gql, author, sent_only)
                                assert sent_only.finalize_codes == ["SERVICE_UNAVAILABLE"]
                                assert len(writes.outcomes) > down_from

                                # The same SeaweedFS, data dir and ports; nobody touches the app.
                                await asyncio.to_thread(
                                    embedded.start,
                                    want_postgres=False,
                                    want_redis=False,
                                    want_s3=True,
                                )
                                assert embedded.s3 == own.s3
                                back = time.monotonic()
                                while (await http.get("/readyz")).status_code != 200:
                                    assert time.monotonic() - back < 10, "the store not noticed"
                                    await asyncio.sleep(0.1)
                                # The upload in flight goes through, and a whole one after it.
                                back_from = len(uploads)
                                await until(
                                    lambda: uploading.done() or len(uploads) >= back_from + 2,
                                    seconds=15,
                                    what="uploads once the store is back",
                                )
                                stop_uploading.set()
                                await uploading
                                # What was refused is accepted now, with the bytes sent
                                # before the kill: nothing the store had acknowledged is lost.
                                for upload in [sent_only, *uploads]:
                                    if upload.sent and not upload.finalized:
                                        await finalize(gql, author, upload)
                                        assert upload.finalized, upload
                                finalized = [
                                    u.media_id
                                    for u in [sent_only, acknowledged, *uploads]
                                    if u.finalized
                                ]
                                for media_id in finalized:
                                    assert media_id is not None
                                    deadline = time.monotonic() + 30
                                    while (
                                        status := await media_status(gql, author, media_id)
                                    ) != "READY":
                                        assert status == "PROCESSING", (media_id, status)
                                        assert time.monotonic() < deadline, media_id
                                        await asyncio.sleep(0.1)
                    finally:
                        stop_uploading.set()
                        await uploading
                    after = await http.get(media_url)
                    assert after.status_code == 200
                    assert after.content == before.content
        finally:
            await worker_runtime.close()
    # Every client saw data or a typed refusal; text posts never needed the store.
    assert all(o.post_id is not None for o in writes.outcomes), [
        (o.codes, o.transport_error) for o in writes.outcomes
    ]
    # createUpload needs PostgreSQL alone (the ticket is signed here); the client's POST
    # to the store fails, finalizeUpload is refused typed.
    assert {code for u in uploads for code in u.create_codes + u.finalize_codes} <= {
        "SERVICE_UNAVAILABLE"
    }
    assert any(u.failed_sends for u in uploads), "an upload was in flight at the kill"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
    await assert_acknowledged_kept(ShardSessions(runtime.databases), writes)


# A web process SIGKILLed with its websockets open ------------------------------------


def pid_serving(url: str) -> int:
    """The pid of the server process ``server_processes`` started on ``url``'s port."""
    port = url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"aperture.web:app_from_environment" in command and port.encode() in command:
            return int(entry.name)
    raise AssertionError(f"no server process on port {port}")


@dataclass
class Reader:
    """A thread as one member's client shows it: messages by seq, from its socket or from
    catching up; what reached it twice is dropped (and counted)."""

    seen: dict[int, str] = field(default_factory=dict)
    duplicates: int = 0
    caught_up: int = 0
    drops: list[str] = field(default_factory=list)

    @property
    def last_seq(self) -> int | None:
        return max(self.seen) if self.seen else None

    def take(self, seq: int, text: str) -> None:
        if seq in self.seen:
            assert self.seen[seq] == text
            self.duplicates += 1
            return
        self.seen[seq] = text


async def test_a_web_process_killed_with_open_sockets_loses_its_clients_nothing(
    settings: Settings, servers: Servers, runtime: Runtime, project_env: dict[str, str]
) -> None:
    generous = str(10**9)
    total = 60
    with (
        errors_logged() as errors,
        serve_in_thread(settings, servers) as survivor,
        server_processes(
            servers,
            project_env,
            count=1,
            rate_limit_ip_capacity=generous,
            rate_limit_viewer_capacity=generous,
            signup_ip_capacity=generous,
        ) as (victim,),
    ):
        async with httpx.AsyncClient(base_url=survivor, timeout=30) as http:
            gql = GraphQLClient(http)
            ana, ben, cy = [await sign_up(gql, f"ws.{name}") for name in ("ana", "ben", "cy")]
            thread_id = await group(gql, ana, ben, cy)
            sent_texts: list[str] = []
            ben_reader, cy_reader = Reader(), Reader()

            async def keep_sending() -> None:
                for number in range(total):
                    await sent(gql, ana, f"message {number}", thread_id=thread_id)
                    sent_texts.append(f"message {number}")
                    await asyncio.sleep(0.02)

            async def on_survivor(socket: Socket) -> None:
                """cy never reconnects: every message once, in order, from the socket."""
                while len(cy_reader.seen) < total:
                    event = await next_of(socket, "MESSAGE", timeout=10)
                    seq, text = event["message"]["seq"], event["message"]["text"]
                    assert seq == len(cy_reader.seen) + 1, (seq, sorted(cy_reader.seen)[-3:])
                    cy_reader.take(seq, text)

            async def catch_up() -> None:
                for seq, text in await _catch_up(gql, ben, thread_id, ben_reader.last_seq):
                    ben_reader.caught_up += seq not in ben_reader.seen
                    ben_reader.take(seq, text)

            async def read_until_done(socket: Socket) -> None:
                while len(ben_reader.seen) < total:
                    event = await next_of(socket, "MESSAGE", timeout=10)
                    ben_reader.take(event["message"]["seq"], event["message"]["text"])

            async def on_victim_then_survivor(socket: Socket) -> None:
                """ben's client: on the victim until its socket drops, then on the survivor:
                subscribed (the GAP), then caught up from its last message."""
                try:
                    await read_until_done(socket)
                    return
                except ConnectionClosed as closed:
                    ben_reader.drops.append(type(closed).__name__)
                async with open_socket(survivor, token=ben.token) as again:
                    await again.listen(THREAD_EVENTS, {"threadId": thread_id})
                    await catch_up()
                    await read_until_done(again)

            async with (
                open_socket(victim, token=ben.token) as bens,
                open_socket(survivor, token=cy.token) as cys,
            ):
                await bens.listen(THREAD_EVENTS, {"threadId": thread_id})
                await cys.listen(THREAD_EVENTS, {"threadId": thread_id})
                readers = asyncio.gather(on_victim_then_survivor(bens), on_survivor(cys))
                sending = asyncio.create_task(keep_sending())
                try:
                    await until(lambda: len(sent_texts) >= 10, seconds=10, what="messages")
                    os.kill(pid_serving(victim), signal.SIGKILL)
                    await asyncio.wait_for(readers, 30)
                    await sending
                finally:
                    sending.cancel()
                    readers.cancel()
    expected = {seq: text for seq, text in enumerate(sent_texts, start=1)}
    assert ben_reader.drops == ["ConnectionClosedError"]
    assert ben_reader.seen == expected
    assert ben_reader.caught_up > 0, "messages were sent while ben's socket was down"
    assert cy_reader.seen == expected
    assert cy_reader.duplicates == 0
    assert describe(errors) == []


# A worker SIGKILLed mid-fan-out while clients write ----------------------------------

LOG_IN = "mutation($u: String!, $p: String!) { logIn(username: $u, password: $p) { token } }"
HOME_FEED = "{ homeFeed(first: 100) { edges { node { id } } } }"


def logged(log: Path, *, since: int = 0) -> str:
    """What the worker wrote to ``log`` after its first ``since`` bytes."""
    return log.read_bytes()[since:].decode(errors="replace")


async def wait_for_worker(worker: subprocess.Popen[bytes], log: Path, *, since: int) -> None:
    """Until the worker says it is ready (in the log after byte ``since``)."""
    deadline = time.monotonic() + 30
    while "worker ready" not in logged(log, since=since):
        assert worker.poll() is None, logged(log)
        assert time.monotonic() < deadline, logged(log)
        await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_fan_out_under_writes_delivers_every_post_once(
    settings: Settings,
    servers: Servers,
    runtime: Runtime,
    project_env: dict[str, str],
    tmp_path: Path,
) -> None:
    sessions = ShardSessions(runtime.databases)
    followers = 100
    star = Graph(users=followers + 1, edges=[(n, 0) for n in range(1, followers + 1)])
    user_ids = await load_graph(sessions, star, prefix="wk", posts_per_user=0)
    follower_ids = user_ids[1:]
    await runtime.redis.zadd(ACTIVE_USERS_KEY, {str(u): time.time() for u in user_ids})
    state = AppState(runtime)
    log = tmp_path / "worker.log"
    worker = _start_worker(servers, project_env, log)
    try:
        with serve_in_thread(settings, servers) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                gql = GraphQLClient(http)

                async def log_in(node: int) -> Account:
                    variables = {"u": f"wk{node}", "p": DEMO_PASSWORD}
                    token = (await gql(LOG_IN, variables)).ok()["logIn"]["token"]
                    return Account(
                        id=to_global_id("User", user_ids[node]), username=f"wk{node}", token=token
                    )

                author, reader = await log_in(0), await log_in(1)
                await wait_for_worker(worker, log, since=0)
                writes = Writes()
                async with posting(http, [author], writes, pause=0.3):

                    async def mid_fan_out() -> bool:
                        for outcome in writes.acknowledged():
                            assert outcome.post_id is not None
                            pending, cursor = await _fanout_progress(sessions, outcome.post_id)
                            if pending == "pending" and cursor > 0:
                                return True
                        return False

                    deadline = time.monotonic() + 20
                    while not await mid_fan_out():
                        assert time.monotonic() < deadline, logged(log)
                        await asyncio.sleep(0.01)
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(timeout=10)
                    # Writes go on while no worker runs; then a new one, nobody else.
                    killed_at = len(writes.outcomes)
                    await until(
                        lambda: len(writes.outcomes) >= killed_at + 3, seconds=10, what="writes"
                    )
                    since = len(logged(log).encode())
                    worker = _start_worker(servers, project_env, log)
                    await wait_for_worker(worker, log, since=since)
                    restarted_at = len(writes.outcomes)
                    await until(
                        lambda: len(writes.outcomes) >= restarted_at + 3, seconds=10, what="writes"
                    )
                # No client saw an error: a worker is nothing a write waits for.
                assert all(o.post_id is not None for o in writes.outcomes), [
                    (o.codes, o.transport_error) for o in writes.outcomes
                ]
                await assert_acknowledged_kept(sessions, writes)
                posted = [o.post_id for o in writes.outcomes if o.post_id is not None]
                deadline = time.monotonic() + 60
                for post_id in posted:
                    while (await _fanout_progress(sessions, post_id))[0] != "done":
                        assert worker.poll() is None, logged(log)
                        assert time.monotonic() < deadline, (post_id, logged(log)[-3000:])
                        await asyncio.sleep(0.1)
                for post_id in posted:
                    assert await _feeds_with(state, follower_ids, post_id) == followers
                assert len(posted) < 100, "one page of the feed holds them all"
                # What a follower's client reads: every post once, newest first.
                feed = (await gql(HOME_FEED, token=reader.token)).ok()["homeFeed"]["edges"]
                read = [from_global_id(edge["node"]["id"])[1] for edge in feed]
                assert read == sorted(posted, reverse=True)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=20)
    assert "Traceback" not in logged(log)


# A hung object store --------------------------------------------------------------------


def freeze_seaweed(embedded: EmbeddedServers, *, frozen: bool) -> None:
    """SIGSTOP / SIGCONT to ``weed mini``: a store that accepts connections and answers
    nothing, as one stuck on its disk would."""
    pid = json.loads((embedded.data_dir / STATE_FILE).read_text())["seaweed"]["pid"]
    os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)


@pytest.mark.slow
async def test_a_hung_object_store_costs_media_requests_a_typed_503_within_the_budget(
    settings: Settings, servers: Servers, runtime: Runtime
) -> None:
    quick = settings.model_copy(update={"operation_timeout_seconds": 2.0})
    with own_object_store(servers) as (own, embedded):
        check_reachable(own, quick)
        worker_state = AppState(Runtime.connect(quick, own))
        try:
            with serve_in_thread(quick, own) as url, errors_logged() as errors:
                async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                    gql = GraphQLClient(http)
                    author = await sign_up(gql, "hung.author")
                    shown = await upload_media(gql, worker_state, author, PHOTO)
                    post = (
                        await gql(PUBLISHED_PHOTO, {"m": [shown["id"]]}, token=author.token)
                    ).ok()
                    media_url = post["createPost"]["post"]["media"][0]["url"]
                    assert (await http.get(media_url)).status_code == 200
                    await asyncio.to_thread(freeze_seaweed, embedded, frozen=True)
                    try:
                        started = time.monotonic()
                        hung = await http.get(media_url)
                        took = time.monotonic() - started
                        assert hung.status_code == 503, hung.text
                        assert hung.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
                        assert took < 4, f"answered after {took:.1f} s, not within the budget"
                        # What needs no object store is not held up.
                        text = await post_once(http, author, "while the store hangs")
                        assert text.post_id is not None, text
                    finally:
                        await asyncio.to_thread(freeze_seaweed, embedded, frozen=False)
                    deadline = time.monotonic() + 60
                    while (await http.get(media_url)).status_code != 200:
                        assert time.monotonic() < deadline, "media did not come back"
                        await asyncio.sleep(0.5)
            assert errors == [], describe(errors)
        finally:
            await worker_state.runtime.close()
