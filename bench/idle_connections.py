"""Idle keep-alive connections (issue 9): what an open, idle client connection costs one
``aperture serve`` process, in CPU and in memory.

Starts embedded PostgreSQL and Valkey in a fresh temporary directory, migrates, starts one
``aperture serve`` from a copy of the code, then, for each ``--connections`` count (0
first, as the baseline): opens that many HTTP/1.1 connections, sends one anonymous
``{ __typename }`` on each (so every connection has been served and is held open by
keep-alive, 30 s in ``aperture serve``), and measures the serve process over ``--idle``
seconds of silence: its user+system CPU (/proc) and its resident memory (VmRSS). Then the
connections are closed. Memory per connection is the RSS growth over the baseline divided
by the count.

    python -m bench.idle_connections [--connections 1000,2000] [--idle 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.harness import (
    cpu_seconds,
    describe_machine,
    embedded_platform,
    log,
    rss_kib,
    start_api_server,
)

REQUEST = (
    b"POST /graphql HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b'Content-Length: 26\r\n\r\n{"query":"{ __typename }"}'
)


async def open_connections(
    port: int, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections, each served once and left open."""
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    gate = asyncio.Semaphore(100)

    async def one() -> None:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {head[:100]!r}")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            opened.append((reader, writer))

    await asyncio.gather(*(one() for _ in range(count)))
    return opened


async def measure(pid: int, port: int, count: int, idle: float) -> tuple[float, int]:
    connections = await open_connections(port, count)
    await asyncio.sleep(1.0)  # let the last responses' work finish
    cpu = cpu_seconds(pid)
    started = time.monotonic()
    await asyncio.sleep(idle)
    elapsed = time.monotonic() - started
    used = cpu_seconds(pid) - cpu
    rss = rss_kib(pid)
    for _, writer in connections:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in connections))
    await asyncio.sleep(1.0)
    return used / elapsed * 1000, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", default="1000,2000")
    parser.add_argument("--idle", type=float, default=10.0)
    options = parser.parse_args()
    counts = [int(value) for value in options.connections.split(",")]
    with embedded_platform("idle") as env:
        server = start_api_server(
            env.settings,
            env.servers,
            env.code,
            {"APERTURE_SERVE_RUNS_WORKERS": "false", "APERTURE_RATE_LIMITS": "false"},
            env.work_dir / "serve.log",
        )
        try:
            pid = server.process.pid
            port = int(server.url.rsplit(":", 1)[1])
            rows: list[tuple[int, float, int]] = []
            for count in [0, *counts]:
                cpu_ms, rss = asyncio.run(measure(pid, port, count, options.idle))
                rows.append((count, cpu_ms, rss))
                log(f"{count} idle connections: {cpu_ms:.1f} ms CPU/s, RSS {rss / 1024:.1f} MiB")
        finally:
            server.stop()
    base_rss = rows[0][2]
    print("\n".join(describe_machine()))
    print(
        f"- Command: `python -m bench.idle_connections --connections {options.connections} "
        f"--idle {options.idle:g}`\n"
    )
    print("| Idle connections | Server CPU, ms per s | RSS, MiB | RSS per connection, KiB |")
    print("|--:|--:|--:|--:|")
    for count, cpu_ms, rss in rows:
        per = f"{(rss - base_rss) / count:.1f}" if count else "-"
        print(f"| {count:,} | {cpu_ms:.1f} | {rss / 1024:.1f} | {per} |")


if __name__ == "__main__":
    main()
