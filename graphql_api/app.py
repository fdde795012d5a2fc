"""The FastAPI application: /graphql (with offline GraphiQL), /healthz and /readyz."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.responses import HTMLResponse
from strawberry.fastapi import GraphQLRouter

from aperture.runtime import Runtime, Servers
from aperture.settings import ConfigurationError, get_settings
from db.instrumentation import instrument_sqlalchemy
from graphql_api.context import Context, get_context
from graphql_api.graphiql import STATIC_DIR, STATIC_URL_PREFIX, render_graphiql_page
from graphql_api.schema import schema
from graphql_api.state import AppState

READINESS_TIMEOUT_SECONDS = 2.0


class ApertureGraphQLRouter(GraphQLRouter[Context, None]):
    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # Strawberry's page loads React and GraphiQL from unpkg and is blank offline.
        return HTMLResponse(render_graphiql_page())


def create_app(
    runtime: Runtime, *, close_runtime: bool = True, run_workers: bool = False
) -> FastAPI:
    """The app over ``runtime``; with ``run_workers`` it also runs the fan-out workers
    for its lifetime (embedded mode, where one command must give a working feed)."""
    instrument_sqlalchemy()
    state = AppState(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from workers.feed import run_workers as run_fan_out_workers

        stop = asyncio.Event()
        workers = (
            asyncio.create_task(run_fan_out_workers(state, stop, handle_signals=False))
            if run_workers
            else None
        )
        # What exists now lives as long as the process. Freezing it keeps full collections
        # from rescanning ~200k objects (a 150-200 ms pause that set the p99 latency).
        gc.collect()
        gc.freeze()
        yield
        stop.set()
        if workers is not None:
            await workers
        if close_runtime:
            await runtime.close()

    app = FastAPI(title="Aperture", lifespan=lifespan)
    app.state.aperture = state
    app.mount(STATIC_URL_PREFIX, StaticFiles(directory=STATIC_DIR), name="graphiql-static")
    app.include_router(ApertureGraphQLRouter(schema, context_getter=get_context), prefix="/graphql")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await check_dependencies(runtime)
        ready = all(result == "ok" for result in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    return app


def app_from_environment() -> FastAPI:
    """Factory for multi-process ``serve``: servers and flags come from APERTURE_*."""
    settings = get_settings()
    if settings.redis_url is None or not settings.database_urls:
        raise ConfigurationError(
            "APERTURE_DATABASE_URLS", "a multi-process serve needs the servers in the environment"
        )
    servers = Servers(database_urls=list(settings.database_urls), redis_url=settings.redis_url)
    return create_app(
        Runtime.connect(settings, servers), run_workers=bool(settings.serve_runs_workers)
    )


async def check_dependencies(runtime: Runtime) -> dict[str, str]:
    async def database(index: int) -> str:
        engine = runtime.databases.engines[index]
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return "ok"

    async def redis() -> str:
        await runtime.redis.ping()
        return "ok"

    names = [f"database_{index}" for index in range(len(runtime.databases.engines))] + ["redis"]
    probes = [database(index) for index in range(len(runtime.databases.engines))] + [redis()]

    async def bounded(probe: Coroutine[Any, Any, str]) -> str:
        try:
            return await asyncio.wait_for(probe, READINESS_TIMEOUT_SECONDS)
        except Exception as error:
            return f"error: {type(error).__name__}: {error}"[:200]

    results = await asyncio.gather(*(bounded(probe) for probe in probes))
    return dict(zip(names, results, strict=True))
