"""The FastAPI application: /graphql (with offline GraphiQL, and subscriptions over
websockets), /media, /healthz and /readyz.

FastAPI's own /docs, /redoc and /openapi.json are off: they describe nothing here (the
API is GraphQL) and the docs pages load Swagger from a public CDN.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from db.instrumentation import instrument_sqlalchemy
from db.redis import probe_redis
from db.runtime import Runtime
from domain.state import AppState
from graphql_api.edge import SecurityHeaders
from graphql_api.features import api_features
from graphql_api.graphiql import STATIC_DIR, STATIC_URL_PREFIX
from graphql_api.http import GraphQLEndpoint
from graphql_api.relay import configure_cursors
from graphql_api.websocket import SubscriptionEndpoint

log = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0


# Work the app runs beside the API for its lifetime until the event is set (the job
# workers, in embedded mode: one command must give a working feed).
Background = Callable[[AppState, asyncio.Event], Coroutine[Any, Any, None]]


HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def http_error(request: Request, error: Exception) -> Response:
    """Unknown paths and methods answer in the same error shape as everything else."""
    assert isinstance(error, StarletteHTTPException)
    code = HTTP_ERROR_CODES.get(error.status_code, "BAD_REQUEST")
    return JSONResponse(
        {"errors": [{"message": str(error.detail), "extensions": {"code": code}}]},
        status_code=error.status_code,
        headers=error.headers,
    )


def create_app(
    runtime: Runtime, *, close_runtime: bool = True, background: Background | None = None
) -> FastAPI:
    """The app over ``runtime``, running ``background`` for its lifetime."""
    instrument_sqlalchemy()
    configure_cursors(runtime.secret_key)
    state = AppState(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        workers = asyncio.create_task(background(state, stop)) if background else None
        # What exists now lives as long as the process. Freezing it keeps full collections
        # from rescanning ~200k objects (a 150-200 ms pause that set the p99 latency).
        gc.collect()
        gc.freeze()
        yield
        stop.set()
        if workers is not None:
            await workers
        await state.realtime.close()
        state.shutdown()
        if close_runtime:
            await runtime.close()

    app = FastAPI(
        title="Aperture", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.aperture = state
    app.add_exception_handler(StarletteHTTPException, http_error)
    if runtime.settings.graphiql_enabled:
        app.mount(STATIC_URL_PREFIX, StaticFiles(directory=STATIC_DIR), name="graphiql-static")
    app.router.routes.append(Route("/graphql", GraphQLEndpoint(state)))
    app.router.routes.append(WebSocketRoute("/graphql", SubscriptionEndpoint(state)))
    for feature in api_features():
        if feature.routes is not None:
            app.router.routes.extend(feature.routes(state))
    # Outermost last: security headers go on every answer, CORS preflights included.
    settings = runtime.settings
    if settings.cors_allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, hsts=settings.environment == "production")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await check_dependencies(runtime)
        # Redis is a cache: without it the API still serves, slower, from PostgreSQL.
        # The databases and the object store (every photo and video) it cannot do without.
        required_ok = all(result == "ok" for name, result in checks.items() if name != "redis")
        if required_ok and checks["redis"] == "ok":
            status = "ready"
        elif required_ok:
            status = "degraded"
        else:
            status = "unavailable"
        return JSONResponse(
            {"status": status, "checks": checks},
            status_code=503 if status == "unavailable" else 200,
        )

    return app


async def check_dependencies(runtime: Runtime) -> dict[str, str]:
    async def database(index: int) -> str:
        await runtime.databases.ping(index)
        return "ok"

    async def redis() -> str:
        # Through the breaker: "degraded" while Redis is down, without a WARNING per call.
        return await probe_redis(runtime.redis)

    async def object_store() -> str:
        await runtime.object_store.ping()
        return "ok"

    engines = range(len(runtime.databases.engines))
    names = [f"database_{index}" for index in engines] + ["redis", "object_store"]
    probes = [database(index) for index in engines] + [redis(), object_store()]

    async def bounded(probe: Coroutine[Any, Any, str]) -> str:
        # The reason goes to the log, never to the caller: it can name hosts and users.
        try:
            return await asyncio.wait_for(probe, READINESS_TIMEOUT_SECONDS)
        except TimeoutError:
            return "timeout"
        except Exception as error:
            log.warning("readiness probe failed: %s: %s", type(error).__name__, error)
            return "unreachable"

    results = await asyncio.gather(*(bounded(probe) for probe in probes))
    return dict(zip(names, results, strict=True))
