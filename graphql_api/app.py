"""The FastAPI application: /graphql (with offline GraphiQL), /healthz and /readyz."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.responses import HTMLResponse
from strawberry.fastapi import GraphQLRouter

from aperture.runtime import Runtime
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


def create_app(runtime: Runtime, *, close_runtime: bool = True) -> FastAPI:
    instrument_sqlalchemy()
    state = AppState(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
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

    async def bounded(probe: asyncio.Future[str] | object) -> str:
        try:
            return await asyncio.wait_for(probe, READINESS_TIMEOUT_SECONDS)  # type: ignore[arg-type]
        except Exception as error:
            return f"error: {type(error).__name__}: {error}"[:200]

    results = await asyncio.gather(*(bounded(probe) for probe in probes))
    return dict(zip(names, results, strict=True))
