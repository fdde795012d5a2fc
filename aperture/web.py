"""The web process: the API app, with the job workers beside it when asked."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from db.runtime import Runtime
from domain.state import AppState
from graphql_api.app import create_app
from infra.embedded import S3Endpoint
from infra.servers import Servers
from infra.settings import ConfigurationError, get_settings
from workers.runner import run_workers


async def _workers_in_process(state: AppState, stop: asyncio.Event) -> None:
    # uvicorn owns SIGINT and SIGTERM here; saq must not take them over.
    await run_workers(state, stop, handle_signals=False)


def web_app(runtime: Runtime, *, run_workers_here: bool) -> FastAPI:
    return create_app(runtime, background=_workers_in_process if run_workers_here else None)


def app_from_environment() -> FastAPI:
    """Factory for multi-process ``serve``: servers and flags come from APERTURE_*."""
    settings = get_settings()
    if settings.redis_url is None or not settings.database_urls or not settings.s3_endpoint_url:
        raise ConfigurationError(
            "APERTURE_DATABASE_URLS", "a multi-process serve needs the servers in the environment"
        )
    servers = Servers(
        database_urls=list(settings.database_urls),
        redis_url=settings.redis_url,
        s3=S3Endpoint(
            url=settings.s3_endpoint_url,
            access_key_id=settings.s3_access_key_id or "",
            secret_access_key=settings.s3_secret_access_key or "",
        ),
    )
    return web_app(
        Runtime.connect(settings, servers), run_workers_here=bool(settings.serve_runs_workers)
    )
