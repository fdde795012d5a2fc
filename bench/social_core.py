"""Social core benchmark (issue 3): the profile grid and post detail, cold and warm cache.

Starts embedded PostgreSQL and Valkey in a fresh temporary directory, seeds a heavy-tailed
graph, adds comments, replies and likes through the GraphQL API, then sends requests
in-process (httpx over ASGI, one at a time) as a logged-in viewer:

* cold: ``FLUSHDB`` before the request, so every cache (the viewer's session included)
  is read from PostgreSQL and refilled; this is the baseline of the same run;
* warm: the same request again, right after the cold one primed the caches.

Each request's latency, SQL statements and Redis round trips are recorded; every response
must be free of GraphQL errors and the warm answer must equal the cold one. The report
(Markdown) is printed and written to ``bench/results/social_core.md``.

    python -m bench.social_core [--users 2000] [--requests 300] [--runs 5] [--edges PATH]
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from aperture.seed import DEMO_PASSWORD, Graph, generate_graph, load_graph, read_edge_list
from bench.harness import (
    RESULTS_DIR,
    argument_parser,
    connected,
    describe_machine,
    embedded_platform,
    git,
    log,
    percentile,
    write_report,
)
from db.instrumentation import count_work
from db.runtime import Runtime
from db.session import ShardSessions
from graphql_api.app import create_app
from infra.servers import Servers
from infra.settings import Settings

RESULTS_PATH = RESULTS_DIR / "social_core.md"
GRAPH_SEED = 42
POSTS_PER_USER = 3
USERNAME_PREFIX = "user"

PROFILE_GRID = """
query($u: String!) { user(username: $u) { username followerCount
  posts(first: 12) { edges { node { id caption likeCount commentCount viewerHasLiked } }
  pageInfo { hasNextPage endCursor } } } }
"""

POST_DETAIL = """
query($id: ID!) { node(id: $id) { ... on Post { caption author { username } likeCount
  commentCount viewerHasLiked comments(first: 10) { edges { node { body author { username }
  likeCount replies(first: 2) { edges { node { body } } } } } } } } }
"""

# The same two queries with the page size as a variable, for the page-size check.
PROFILE_GRID_SIZED = PROFILE_GRID.replace("$u: String!", "$u: String!, $first: Int!").replace(
    "posts(first: 12)", "posts(first: $first)"
)
POST_DETAIL_SIZED = POST_DETAIL.replace("$id: ID!", "$id: ID!, $first: Int!").replace(
    "comments(first: 10)", "comments(first: $first)"
)

LOG_IN = "mutation($u: String!, $p: String!) { logIn(username: $u, password: $p) { token } }"
FIRST_POST = "query($u: String!) { user(username: $u) { posts(first: 1) { nodes { id } } } }"
ADD_COMMENT = """
mutation($post: ID!, $body: String!, $replyTo: ID) {
  addComment(postId: $post, body: $body, replyTo: $replyTo) { comment { id } }
}
"""
LIKE_POST = "mutation($post: ID!) { likePost(postId: $post) { post { id } } }"
LIKE_COMMENT = "mutation($c: ID!) { likeComment(commentId: $c) { comment { id } } }"


class BenchmarkError(RuntimeError):
    """A response the benchmark cannot count: GraphQL errors, or a warm/cold mismatch."""


@dataclass(frozen=True)
class Options:
    users: int
    requests: int
    runs: int
    edges: Path | None
    commented_posts: int = 20
    comments_per_post: int = 10
    replied_comments: int = 5  # of each commented post's comments, each with 2 replies
    accounts: int = 12  # logged in to write comments and likes
    readers: int = 4  # of those, the viewers that send the measured requests
    warmup_requests: int = 20  # per scenario, unmeasured, before the first run


@dataclass(frozen=True)
class Sample:
    latency_ms: float
    sql_statements: int
    redis_round_trips: int
    full_gc: bool  # a full (generation 2) garbage collection ran during the request


class FullCollections:
    """Counts the cyclic garbage collector's full passes, which stall the event loop."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self.count += 1

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self)


@dataclass(frozen=True)
class Reply:
    data: Any
    sample: Sample


class Api:
    """GraphQL over the in-process ASGI transport; each call is timed and its work counted."""

    def __init__(self, http: httpx.AsyncClient, collections: FullCollections) -> None:
        self.http = http
        self.collections = collections

    async def call(
        self, query: str, variables: dict[str, Any], *, token: str | None = None
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        payload = {"query": query, "variables": variables}
        collections_before = self.collections.count
        with count_work() as work:
            started = time.perf_counter()
            response = await self.http.post("/graphql", json=payload, headers=headers)
            elapsed_ms = (time.perf_counter() - started) * 1000
        body = response.json()
        errors = body.get("errors")
        if errors or response.status_code != 200 or body.get("data") is None:
            raise BenchmarkError(
                f"HTTP {response.status_code}, GraphQL errors {errors!r} "
                f"for {query.split()[0]} with {variables!r}"
            )
        return Reply(
            data=body["data"],
            sample=Sample(
                latency_ms=elapsed_ms,
                sql_statements=work.sql_statements,
                redis_round_trips=work.redis_round_trips,
                full_gc=self.collections.count != collections_before,
            ),
        )


@dataclass(frozen=True)
class Dataset:
    users: int
    follows: int
    usernames: list[str]
    readers: list[str]  # bearer tokens
    commented_posts: list[str]  # global ids
    comments: int
    replies: int
    post_likes: int
    comment_likes: int
    seed_seconds: float
    api_writes_seconds: float


def build_graph(options: Options) -> Graph:
    if options.edges is not None:
        return read_edge_list(options.edges)
    return generate_graph(options.users, seed=GRAPH_SEED)


async def seed_dataset(runtime: Runtime, api: Api, options: Options, rng: random.Random) -> Dataset:
    """Bulk-load the graph, then write comments, replies and likes through the API.

    The graph is dropped on return: its edges would otherwise sit in the heap and
    lengthen every full garbage collection during the measurements.
    """
    started = time.perf_counter()
    graph = build_graph(options)
    await load_graph(
        ShardSessions(runtime.databases),
        graph,
        prefix=USERNAME_PREFIX,
        posts_per_user=POSTS_PER_USER,
    )
    seeded = time.perf_counter()
    log(f"seeded {graph.users} users, {len(graph.edges)} follows in {seeded - started:.1f}s")
    usernames = [f"{USERNAME_PREFIX}{node}" for node in range(graph.users)]

    # Seeded passwords use Argon2 at its production cost: a dozen logins, not thousands.
    tokens: list[str] = []
    for username in rng.sample(usernames, min(options.accounts, len(usernames))):
        reply = await api.call(LOG_IN, {"u": username, "p": DEMO_PASSWORD})
        tokens.append(reply.data["logIn"]["token"])

    post_ids: list[str] = []
    for author in rng.sample(usernames, min(options.commented_posts, len(usernames))):
        reply = await api.call(FIRST_POST, {"u": author}, token=tokens[0])
        post_ids.append(reply.data["user"]["posts"]["nodes"][0]["id"])

    comments = replies = post_likes = comment_likes = 0
    for post_index, post_id in enumerate(post_ids):
        comment_ids: list[str] = []
        for position in range(options.comments_per_post):
            # Rotate the authors so a page of comments has many distinct authors.
            author_token = tokens[(post_index + position) % len(tokens)]
            body = f"comment {position} on post {post_index}: {rng.choice(['nice', 'wow', 'ok'])}"
            reply = await api.call(
                ADD_COMMENT, {"post": post_id, "body": body, "replyTo": None}, token=author_token
            )
            comment_ids.append(reply.data["addComment"]["comment"]["id"])
            comments += 1
        for position, comment_id in enumerate(comment_ids[: options.replied_comments]):
            for offset in (1, 2):
                author_token = tokens[(post_index + position + offset * 3) % len(tokens)]
                await api.call(
                    ADD_COMMENT,
                    {"post": post_id, "body": f"reply {offset}", "replyTo": comment_id},
                    token=author_token,
                )
                replies += 1
        for liker in rng.sample(tokens, rng.randint(2, len(tokens))):
            await api.call(LIKE_POST, {"post": post_id}, token=liker)
            post_likes += 1
        for comment_id in comment_ids:
            for liker in rng.sample(tokens, rng.randint(0, 3)):
                await api.call(LIKE_COMMENT, {"c": comment_id}, token=liker)
                comment_likes += 1
    finished = time.perf_counter()
    log(
        f"wrote {comments} comments, {replies} replies, {post_likes} post likes and "
        f"{comment_likes} comment likes through GraphQL in {finished - seeded:.1f}s"
    )
    await runtime.redis.flushdb()
    return Dataset(
        users=graph.users,
        follows=len(graph.edges),
        usernames=usernames,
        readers=tokens[: options.readers],
        commented_posts=post_ids,
        comments=comments,
        replies=replies,
        post_likes=post_likes,
        comment_likes=comment_likes,
        seed_seconds=seeded - started,
        api_writes_seconds=finished - seeded,
    )


@dataclass(frozen=True)
class Scenario:
    name: str
    query: str
    sized_query: str
    page_sizes: tuple[int, ...]
    pick: Callable[[random.Random], dict[str, Any]]
    page_items: Callable[[Any], int]


def scenarios(dataset: Dataset) -> list[Scenario]:
    return [
        Scenario(
            name="Profile grid (12 posts)",
            query=PROFILE_GRID,
            sized_query=PROFILE_GRID_SIZED,
            page_sizes=(1, 3, 12),
            pick=lambda rng: {"u": rng.choice(dataset.usernames)},
            page_items=lambda data: len(data["user"]["posts"]["edges"]),
        ),
        Scenario(
            name="Post detail (10 comments)",
            query=POST_DETAIL,
            sized_query=POST_DETAIL_SIZED,
            page_sizes=(1, 5, 10),
            pick=lambda rng: {"id": rng.choice(dataset.commented_posts)},
            page_items=lambda data: len(data["node"]["comments"]["edges"]),
        ),
    ]


@dataclass
class Measured:
    cold: list[Sample]
    warm: list[Sample]


async def cold_then_warm(
    runtime: Runtime, api: Api, query: str, variables: dict[str, Any], token: str
) -> tuple[Reply, Reply]:
    """One request on an empty Redis, then the same request again on the caches it filled."""
    await runtime.redis.flushdb()
    cold = await api.call(query, variables, token=token)
    warm = await api.call(query, variables, token=token)
    if warm.data != cold.data:
        raise BenchmarkError(
            f"warm answer differs from cold for {variables!r}: {cold.data!r} != {warm.data!r}"
        )
    return cold, warm


async def measure(
    runtime: Runtime,
    api: Api,
    scenario: Scenario,
    readers: Sequence[str],
    requests: int,
    rng: random.Random,
) -> Measured:
    measured = Measured(cold=[], warm=[])
    for _ in range(requests):
        cold, warm = await cold_then_warm(
            runtime, api, scenario.query, scenario.pick(rng), rng.choice(readers)
        )
        measured.cold.append(cold.sample)
        measured.warm.append(warm.sample)
    return measured


@dataclass(frozen=True)
class PageSizeRow:
    scenario: str
    first: int
    items: float
    cold_sql: float
    cold_redis: float
    warm_sql: float
    warm_redis: float


async def page_size_check(
    runtime: Runtime, api: Api, scenario: Scenario, readers: Sequence[str], rng: random.Random
) -> list[PageSizeRow]:
    """Work per request as the page grows, on the same targets for every page size."""
    targets = [(scenario.pick(rng), rng.choice(readers)) for _ in range(20)]
    rows: list[PageSizeRow] = []
    for first in scenario.page_sizes:
        items: list[int] = []
        cold_samples: list[Sample] = []
        warm_samples: list[Sample] = []
        for variables, token in targets:
            cold, warm = await cold_then_warm(
                runtime, api, scenario.sized_query, {**variables, "first": first}, token
            )
            items.append(scenario.page_items(cold.data))
            cold_samples.append(cold.sample)
            warm_samples.append(warm.sample)
        rows.append(
            PageSizeRow(
                scenario=scenario.name,
                first=first,
                items=statistics.fmean(items),
                cold_sql=mean_of(cold_samples, "sql_statements"),
                cold_redis=mean_of(cold_samples, "redis_round_trips"),
                warm_sql=mean_of(warm_samples, "sql_statements"),
                warm_redis=mean_of(warm_samples, "redis_round_trips"),
            )
        )
    return rows


def mean_of(samples: Sequence[Sample], attribute: str) -> float:
    return statistics.fmean(float(getattr(sample, attribute)) for sample in samples)


@dataclass(frozen=True)
class SummaryRow:
    scenario: str
    cache: str
    p50_ms: float  # median over runs of each run's p50
    p50_min_ms: float
    p50_max_ms: float
    p99_ms: float  # median over runs of each run's p99
    sql_per_request: float
    sql_range: tuple[int, int]
    redis_per_request: float
    full_gc_share: float  # of requests during which a full garbage collection ran
    requests: int


def summarise(scenario: str, cache: str, runs: Sequence[Sequence[Sample]]) -> SummaryRow:
    p50s = [percentile([s.latency_ms for s in run], 50) for run in runs]
    p99s = [percentile([s.latency_ms for s in run], 99) for run in runs]
    every = [sample for run in runs for sample in run]
    return SummaryRow(
        scenario=scenario,
        cache=cache,
        p50_ms=statistics.median(p50s),
        p50_min_ms=min(p50s),
        p50_max_ms=max(p50s),
        p99_ms=statistics.median(p99s),
        sql_per_request=mean_of(every, "sql_statements"),
        sql_range=(
            min(s.sql_statements for s in every),
            max(s.sql_statements for s in every),
        ),
        redis_per_request=mean_of(every, "redis_round_trips"),
        full_gc_share=sum(sample.full_gc for sample in every) / len(every),
        requests=len(every),
    )


def describe_code() -> str:
    """The commit measured, and whether the working tree differed from it."""
    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "- Code: unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"- Code: commit {commit}" + (" with uncommitted changes" if dirty else "")


def command_line(options: Options) -> str:
    parts = [
        "python -m bench.social_core",
        f"--users {options.users}",
        f"--requests {options.requests}",
        f"--runs {options.runs}",
    ]
    if options.edges is not None:
        parts[1] = f"--edges {options.edges}"
    return " ".join(parts)


def render_report(
    options: Options,
    dataset: Dataset,
    summary: Sequence[SummaryRow],
    page_sizes: Sequence[PageSizeRow],
    *,
    total_seconds: float,
    measure_seconds: float,
    load_averages: tuple[float, float],
) -> str:
    lines = [
        "# Social core benchmark (issue 3)",
        "",
        f"- Command: `{command_line(options)}`",
        *describe_machine(),
        describe_code(),
        f"- Data: {dataset.users} users, {dataset.follows} follows ("
        + (f"from {options.edges}" if options.edges else f"heavy-tailed, seed {GRAPH_SEED}")
        + f"), {dataset.users * POSTS_PER_USER} posts; {len(dataset.commented_posts)} posts with "
        f"{dataset.comments} comments, {dataset.replies} replies, {dataset.post_likes} post "
        f"likes and {dataset.comment_likes} comment likes written through GraphQL",
        f"- Requests: {options.runs} runs x {options.requests} requests per scenario and cache "
        f"state, sequential, in-process (httpx ASGI transport), bearer token of one of "
        f"{len(dataset.readers)} viewers; {options.warmup_requests} unmeasured cold/warm "
        "pairs per scenario first",
        "- Cold: `FLUSHDB` before the request (the baseline of the same run); warm: the same "
        "request right after the cold one",
        f"- Wall time: {total_seconds:.0f} s to the report "
        f"({dataset.seed_seconds:.0f} s bulk seed, {dataset.api_writes_seconds:.0f} s GraphQL "
        f"writes, {measure_seconds:.0f} s measuring); 1-minute load average "
        f"{load_averages[0]:.2f} before measuring, {load_averages[1]:.2f} after (this "
        "process alone keeps it near 1)",
        "",
        "| Scenario | Cache | p50 ms | p50 spread (min-max of runs) | p99 ms "
        "| SQL statements / request | Redis round trips / request | Requests with a full GC |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in summary:
        low, high = row.sql_range
        sql_range = f" ({low}-{high})" if low != high else ""
        lines.append(
            f"| {row.scenario} | {row.cache} | {row.p50_ms:.1f} | "
            f"{row.p50_min_ms:.1f}-{row.p50_max_ms:.1f} | {row.p99_ms:.1f} | "
            f"{row.sql_per_request:.2f}{sql_range} | {row.redis_per_request:.2f} | "
            f"{row.full_gc_share:.1%} |"
        )
    lines += [
        "",
        "p50 and p99 are the medians over runs of each run's percentile; the SQL column shows "
        "the mean and, where requests differed, the range. A full GC is a generation-2 pass "
        "of Python's cyclic garbage collector during the request.",
        "",
        "Work per request by page size (same 20 targets for every size, mean per request):",
        "",
        "| Scenario | first | Items returned | Cold SQL | Cold Redis | Warm SQL | Warm Redis |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for page in page_sizes:
        lines.append(
            f"| {page.scenario} | {page.first} | {page.items:.1f} | {page.cold_sql:.2f} | "
            f"{page.cold_redis:.2f} | {page.warm_sql:.2f} | {page.warm_redis:.2f} |"
        )
    return "\n".join(lines) + "\n"


async def run_benchmark(
    settings: Settings, servers: Servers, options: Options, started: float
) -> str:
    rng = random.Random(GRAPH_SEED)
    async with connected(settings, servers) as runtime:
        app = create_app(runtime, close_runtime=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as http:
            with FullCollections() as collections:
                return await _measure_all(runtime, Api(http, collections), options, rng, started)


async def _measure_all(
    runtime: Runtime, api: Api, options: Options, rng: random.Random, started: float
) -> str:
    dataset = await seed_dataset(runtime, api, options, rng)
    plan = scenarios(dataset)
    for scenario in plan:  # connection pools, imports, PostgreSQL's buffer cache
        await measure(runtime, api, scenario, dataset.readers, options.warmup_requests, rng)
    gc.collect()  # every run starts from the same heap, without the seeding's garbage
    load_before = os.getloadavg()[0]
    measuring = time.perf_counter()
    per_run: dict[str, list[Measured]] = {scenario.name: [] for scenario in plan}
    for run_index in range(options.runs):
        run_rng = random.Random(1000 + run_index)
        for scenario in plan:
            result = await measure(
                runtime, api, scenario, dataset.readers, options.requests, run_rng
            )
            per_run[scenario.name].append(result)
            log(
                f"run {run_index + 1}/{options.runs} {scenario.name}: "
                f"cold p50 {percentile([s.latency_ms for s in result.cold], 50):.1f} ms, "
                f"warm p50 {percentile([s.latency_ms for s in result.warm], 50):.1f} ms"
            )
    measure_seconds = time.perf_counter() - measuring
    load_after = os.getloadavg()[0]
    page_rows = [
        row
        for scenario in plan
        for row in await page_size_check(runtime, api, scenario, dataset.readers, rng)
    ]
    summary = [
        summarise(name, cache, [getattr(result, cache.lower()) for result in results])
        for name, results in per_run.items()
        for cache in ("Cold", "Warm")
    ]
    return render_report(
        options,
        dataset,
        summary,
        page_rows,
        total_seconds=time.perf_counter() - started,
        measure_seconds=measure_seconds,
        load_averages=(load_before, load_after),
    )


def run(options: Options) -> str:
    started = time.perf_counter()
    # Always embedded servers, whatever APERTURE_* says: the benchmark flushes Redis.
    with embedded_platform("bench", snapshot=False) as env:
        return asyncio.run(run_benchmark(env.settings, env.servers, options, started))


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argument_parser("bench.social_core", __doc__)
    parser.add_argument("--users", type=int, default=2000, help="users of the generated graph")
    parser.add_argument(
        "--requests", type=int, default=300, help="requests per scenario, cache state and run"
    )
    parser.add_argument("--runs", type=int, default=5, help="measured runs")
    parser.add_argument(
        "--edges", type=Path, default=None, help="undirected 'u v' edge list instead of --users"
    )
    args = parser.parse_args(argv)
    if args.users < 20 or args.requests < 2 or args.runs < 1:
        parser.error("need --users >= 20, --requests >= 2 and --runs >= 1")
    if args.edges is not None and not args.edges.is_file():
        parser.error(f"{args.edges} is not a file")
    return Options(users=args.users, requests=args.requests, runs=args.runs, edges=args.edges)


def main(argv: Sequence[str] | None = None) -> None:
    write_report(RESULTS_PATH, [run(parse_options(argv))])


if __name__ == "__main__":
    main()
