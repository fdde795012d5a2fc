"""The edge across real processes and sockets: a rate limit shared by two server
processes, and a thousand idle keep-alive clients that cost a socket, not a slot."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.shards import ShardMap
from graphql_api.edge import BoundedHttpToolsProtocol
from infra.servers import Servers
from infra.settings import Settings
from tests.conftest import serve_in_thread, server_processes

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def two_servers(servers: Servers, project_env: dict[str, str]) -> Iterator[list[str]]:
    """Two server processes with a small IP budget: 10 points, refilled at 0.5 a second."""
    with server_processes(
        servers,
        project_env,
        count=2,
        rate_limit_ip_capacity="10",
        rate_limit_ip_per_second="0.5",
    ) as urls:
        yield urls


async def test_rate_limit_holds_across_two_server_processes(
    two_servers: list[str], runtime: object
) -> None:
    # Each { __typename } costs 1 point; 10 points of burst are shared, not per process.
    statuses: list[int] = []
    retry_after: list[str] = []
    async with httpx.AsyncClient(timeout=5) as client:
        for attempt in range(16):
            url = two_servers[attempt % 2]
            response = await client.post(f"{url}/graphql", json={"query": "{ __typename }"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after.append(response.headers["retry-after"])
                (error,) = response.json()["errors"]
                assert error["extensions"]["code"] == "RATE_LIMITED"
                assert error["extensions"]["retryAfter"] >= 1
    served = statuses.count(200)
    # Refill during the run may add one point; two separate buckets would serve all 16.
    assert 10 <= served <= 11, statuses
    assert statuses.count(429) == 16 - served
    assert all(int(value) >= 1 for value in retry_after)


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> int:
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return status


@pytest.mark.slow
async def test_a_thousand_idle_keep_alive_clients_are_served(live_server_url: str) -> None:
    import resource

    # Both ends of every connection live in this process: 2,000 descriptors and more.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    host, port = live_server_url.removeprefix("http://").split(":")
    body = b'{"query": "{ __typename }"}'
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(20):
            opened = await asyncio.gather(
                *(asyncio.open_connection(host, int(port)) for _ in range(50))
            )
            statuses = await asyncio.gather(*(_request(r, w, body) for r, w in opened))
            assert set(statuses) == {200}
            connections.extend(opened)
        assert len(connections) == 1000
        # All thousand sit idle on keep-alive. New clients are still served at once...
        async with httpx.AsyncClient(base_url=live_server_url, timeout=5) as client:
            started = time.perf_counter()
            responses = await asyncio.gather(
                *(client.post("/graphql", json={"query": "{ __typename }"}) for _ in range(50))
            )
            assert {response.status_code for response in responses} == {200}
            assert time.perf_counter() - started < 5
        # ...and the idle ones can come back on the same connection.
        again = await asyncio.gather(*(_request(r, w, body) for r, w in connections[::10]))
        assert set(again) == {200}
    finally:
        for _, writer in connections:
            writer.close()


class QuickHeaderTimeout(BoundedHttpToolsProtocol):
    header_timeout_seconds = 0.5


@pytest.fixture
def strict_server_url(settings: Settings, servers: Servers, shard_map: ShardMap) -> Iterator[str]:
    """The app behind the bounded protocol, with a half-second header timeout."""
    with serve_in_thread(settings, servers, http=QuickHeaderTimeout) as url:
        yield url


async def _raw(url: str, data: bytes, *, wait: float = 5) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


async def test_oversized_and_slow_headers_are_refused(strict_server_url: str) -> None:
    big = b"POST /graphql HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64_000 + b"\r\n\r\n"
    status, headers, body = await _raw(strict_server_url, big)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["errors"][0]["extensions"]["code"] == (
        "REQUEST_HEADER_FIELDS_TOO_LARGE"
    )
    # Headers that never finish: answered and closed after the header timeout.
    started = time.perf_counter()
    status, headers, body = await _raw(
        strict_server_url, b"POST /graphql HTTP/1.1\r\nHost: x\r\nX-Slow: "
    )
    assert 0.4 < time.perf_counter() - started < 3
    assert status == 408
    assert headers["x-content-type-options"] == "nosniff"
    # Garbage gets the same JSON shape, not uvicorn's plain text.
    status, headers, body = await _raw(strict_server_url, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    # Normal requests on the same server are unaffected, large bodies included: only the
    # headers count against the header limit.
    async with httpx.AsyncClient(base_url=strict_server_url) as client:
        response = await client.post("/graphql", json={"query": "{ __typename }"})
        assert response.json()["data"] == {"__typename": "Query"}
        padded = {"query": "{ __typename }", "extensions": {"pad": "x" * 900_000}}
        response = await client.post("/graphql", json=padded)
        assert response.status_code == 200
    raw = json.dumps({"query": "{ __typename }", "pad": "y" * 300_000}).encode()
    request = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n".encode()
        + raw
    )
    status, _, _ = await _raw(strict_server_url, request)
    assert status == 200
