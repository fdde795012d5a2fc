"""/readyz names the object store: without it no photo or video is uploaded or served."""

from __future__ import annotations

import socket

import httpx

from db.runtime import Runtime
from db.shards import ShardMap
from graphql_api.app import create_app
from infra.embedded import S3Endpoint
from infra.servers import Servers
from infra.settings import Settings


async def test_readiness_reports_the_object_store(http: httpx.AsyncClient) -> None:
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["object_store"] == "ok"


async def test_an_unreachable_object_store_makes_the_app_unready(
    settings: Settings, servers: Servers, shard_map: ShardMap
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    broken = Servers(
        database_urls=servers.database_urls,
        redis_url=servers.redis_url,
        s3=S3Endpoint(f"http://127.0.0.1:{closed_port}", "key", "secret"),
    )
    runtime = Runtime.connect(settings, broken)
    try:
        app = create_app(runtime, close_runtime=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://aperture.test"
        ) as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["object_store"] in ("unreachable", "timeout")
        assert body["checks"]["database_0"] == "ok"
        # The reason goes to the log, never to the caller.
        assert str(closed_port) not in ready.text
    finally:
        await runtime.close()
