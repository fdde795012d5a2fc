"""One side of ``bench.layering`` (and of ``bench.read_path``'s baseline): run by path,
``python -P bench/layering_side.py hold-side|inprocess-side ...``, with ``cwd`` and
``PYTHONPATH`` = the side's checkout, so that everything but this file comes from that
checkout: its migrations, its seeding (``bench.edge.seed``), its application.

It runs in old revisions too, so it imports nothing of ``bench`` but ``bench.edge`` (which
every measured revision has), and finds the modules that later revisions moved under
either name.

* ``hold-side``: starts embedded PostgreSQL and Valkey in ``APERTURE_DATA_DIR``, migrates,
  seeds an edge list with ``bench.edge.seed``, writes what the benchmark needs to
  ``--out``, then keeps the servers up until stdin closes (or SIGTERM).
* ``inprocess-side``: starts the servers, migrates, seeds a generated graph, builds the app
  and signs in, then answers a JSON line on stdout: the setup; then one more per line read
  on stdin: a round (warm-up, then the timed requests); until stdin closes (or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TextIO

import httpx

from aperture.seed import DEMO_PASSWORD, generate_graph, load_graph
from db.session import ShardSessions
from graphql_api.app import create_app
from migrations.runner import migrate

HOLD_COMMAND = "hold-side"
INPROCESS_COMMAND = "inprocess-side"
# The in-process part's data: the same generated graph on both sides.
INPROCESS_USERS = 200
INPROCESS_GRAPH_SEED = 1
INPROCESS_MEAN_FOLLOWING = 25
INPROCESS_POSTS_PER_USER = 3
# Packages of the application (and of the bench helpers the holder seeds with): in a
# side, every module of these must come from its own checkout.
CHECKOUT_PACKAGES = frozenset(
    {"aperture", "graphql_api", "db", "domain", "migrations", "workers", "recommender", "bench"}
)
FEED_QUERY_20 = (
    "query { homeFeed(first: 20) { edges { node { id caption author { username } "
    "likeCount commentCount viewerHasLiked } } } }"
)


def first_module(*names: str) -> ModuleType:
    """The first of ``names`` that this checkout has (modules moved between revisions)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is None or not name.startswith(error.name):
                raise
    raise ModuleNotFoundError(f"none of {', '.join(names)}")


settings_module = first_module("infra.settings", "aperture.settings")
runtime_module = first_module("db.runtime", "aperture.runtime")


def note(message: str) -> None:
    """A line in the side's log (its stderr)."""
    print(f"[{Path.cwd()}] {message}", file=sys.stderr, flush=True)


def _leave(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def modules_outside(checkout: Path) -> list[str]:
    """Modules of the checkout's packages that were imported from anywhere else (the
    virtual environment's editable install points at the main checkout)."""
    outside: list[str] = []
    for name, module in sorted(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if (
            name.split(".")[0] in CHECKOUT_PACKAGES
            and origin
            and not Path(origin).resolve().is_relative_to(checkout)
        ):
            outside.append(f"{name} ({origin})")
    return outside


@contextmanager
def checkout_servers(settings: Any) -> Iterator[Any]:
    """Embedded PostgreSQL and Valkey in the settings' data dir, migrated with this
    checkout's migrations; stopped, their data deleted, on the way out."""
    servers = runtime_module.start_servers(settings, postgres_cleanup="delete")
    try:
        migrate(runtime_module.shard_map_for(settings, servers))
        yield servers
    finally:
        servers.stop()


def hold_side(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"layering_side.py {HOLD_COMMAND}")
    parser.add_argument("--edges", type=Path, required=True)
    parser.add_argument("--viewers", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _leave)
    from bench import edge  # this checkout's

    checkout = Path.cwd().resolve()
    settings = settings_module.Settings()
    with checkout_servers(settings) as servers:
        seed_options = edge.parse_options(
            ["--edges", str(args.edges), "--viewers", str(args.viewers)]
        )
        seeded = asyncio.run(edge.seed(settings, servers, seed_options))
        partial = args.out.with_suffix(".partial")
        partial.write_text(
            json.dumps(
                {
                    "database_urls": list(servers.database_urls),
                    "redis_url": servers.redis_url,
                    "users": seeded.users,
                    "follows": seeded.follows,
                    "seed_seconds": seeded.seconds,
                    "tokens": seeded.tokens,
                    "modules_outside": modules_outside(checkout),
                }
            )
        )
        partial.rename(args.out)
        note(f"seeded {seeded.users} users in {seeded.seconds:.1f}s; holding")
        sys.stdin.read()  # until the benchmark closes our stdin


def inprocess_side(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"layering_side.py {INPROCESS_COMMAND}")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _leave)
    # The replies keep the original stdout; anything else written there (by this process
    # or the servers it starts) goes to stderr, the log.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    settings = settings_module.Settings()
    with checkout_servers(settings) as servers:
        asyncio.run(serve_rounds(settings, servers, args.requests, args.warmup, replies))


async def read_feed(
    client: httpx.AsyncClient, headers: dict[str, str], times: int
) -> tuple[int, int]:
    """``times`` homeFeed(first: 20) requests, one after the other: how many failed (not
    200, or GraphQL errors) and the edges of the last page (-1: no page)."""
    body = json.dumps({"query": FEED_QUERY_20}).encode()
    failed = 0
    response: httpx.Response | None = None
    for _ in range(times):
        response = await client.post("/graphql", content=body, headers=headers)
        if response.status_code != 200 or b'"errors"' in response.content:
            failed += 1
    if response is None or response.status_code != 200:
        return failed, -1
    page = (response.json().get("data") or {}).get("homeFeed") or {}
    edges = page.get("edges")
    return failed, len(edges) if isinstance(edges, list) else -1


async def serve_rounds(
    settings: Any, servers: Any, requests: int, warmup: int, replies: TextIO
) -> None:
    def reply(**fields: object) -> None:
        replies.write(json.dumps(fields) + "\n")

    checkout = Path.cwd().resolve()
    started = time.perf_counter()
    runtime = runtime_module.Runtime.connect(settings, servers)
    try:
        graph = generate_graph(
            INPROCESS_USERS, seed=INPROCESS_GRAPH_SEED, mean_following=INPROCESS_MEAN_FOLLOWING
        )
        await load_graph(
            ShardSessions(runtime.databases), graph, posts_per_user=INPROCESS_POSTS_PER_USER
        )
        await runtime.redis.flushdb()  # the first read builds the feed, as after a restart
        seed_seconds = time.perf_counter() - started
        viewer, following = Counter(follower for follower, _ in graph.edges).most_common(1)[0]
        app = create_app(runtime, close_runtime=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://inprocess") as client:
            login = await client.post(
                "/graphql",
                json={
                    "query": "mutation ($u: String!, $p: String!) "
                    "{ logIn(username: $u, password: $p) { token } }",
                    "variables": {"u": f"user{viewer}", "p": DEMO_PASSWORD},
                },
            )
            token = ((login.json().get("data") or {}).get("logIn") or {}).get("token")
            if not token:
                raise RuntimeError(f"signing in as user{viewer} failed: {login.text[:2000]}")
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            failed, edges = await read_feed(client, headers, warmup)
            if failed:
                raise RuntimeError(f"{failed} of {warmup} warm-up feed requests failed")
            note(f"seeded and signed in as user{viewer}; ready")
            reply(
                users=graph.users,
                follows=len(graph.edges),
                viewer=f"user{viewer}",
                following=following,
                seed_seconds=seed_seconds,
                setup_seconds=time.perf_counter() - started,
                edges=edges,
                modules_outside=modules_outside(checkout),
            )
            gc.collect()
            gc.freeze()  # the setup's objects: as in a long-running server
            while sys.stdin.readline():  # a round per line, until stdin closes
                warm_failed, _ = await read_feed(client, headers, warmup)
                gc.collect()
                cpu = time.process_time()
                wall = time.perf_counter()
                failed, edges = await read_feed(client, headers, requests)
                cpu = time.process_time() - cpu
                wall = time.perf_counter() - wall
                reply(
                    cpu_ms=cpu / requests * 1000,
                    wall_ms=wall / requests * 1000,
                    requests=requests,
                    failed=failed,
                    warmup_failed=warm_failed,
                    edges=edges,
                )
    finally:
        await runtime.close()


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    commands = {HOLD_COMMAND: hold_side, INPROCESS_COMMAND: inprocess_side}
    if not arguments or arguments[0] not in commands:
        raise SystemExit(f"usage: layering_side.py {'|'.join(commands)} ...")
    commands[arguments[0]](arguments[1:])


if __name__ == "__main__":
    main()
