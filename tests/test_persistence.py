"""Embedded servers keep their data on disk: a second start finds the first one's rows."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from infra.embedded import EmbeddedServers


def _aof_rewritten(persistence: dict[str, Any]) -> bool:
    return bool(
        persistence["aof_rewrite_in_progress"] == 0
        and persistence["aof_rewrite_scheduled"] == 0
        and persistence["aof_last_bgrewrite_status"] == "ok"
        and persistence["aof_buffer_length"] == 0
        and persistence["aof_pending_bio_fsync"] == 0
    )


@pytest.mark.slow
def test_restart_keeps_postgres_rows_and_redis_keys() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="apt-restart-"))
    try:
        first = EmbeddedServers(data_dir, databases=2)
        urls, redis_url = first.start(want_postgres=True, want_redis=True)
        assert len(urls) == 2
        with psycopg.connect(urls[1], autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (value text)")
            connection.execute("INSERT INTO kept VALUES ('still here')")
        assert redis_url is not None
        client = redis.Redis.from_url(redis_url)
        client.set("kept", "still here")
        client.close()
        first.stop()

        second = EmbeddedServers(data_dir, databases=2)
        urls, redis_url = second.start(want_postgres=True, want_redis=True)
        with psycopg.connect(urls[1]) as connection:
            assert connection.execute("SELECT value FROM kept").fetchall() == [("still here",)]
        assert redis_url is not None
        client = redis.Redis.from_url(redis_url)
        assert client.get("kept") == b"still here"
        client.close()

        # Even a crash of the Redis server keeps what it acknowledged (append-only file).
        client = redis.Redis.from_url(redis_url)
        client.set("survives-crash", "yes")
        client.bgrewriteaof()
        # Killed once the rewrite is done: its new base file, written and fsynced before
        # it replaces the old one, holds the key (appendfsync everysec would take a second).
        deadline = time.monotonic() + 10
        while not _aof_rewritten(persistence := client.info("persistence")):
            assert time.monotonic() < deadline, persistence
            time.sleep(0.02)
        client.close()
        second.valkey.kill()
        _, redis_url = second.start(want_postgres=False, want_redis=True)
        assert redis_url is not None
        client = redis.Redis.from_url(redis_url)
        assert client.get("survives-crash") == b"yes"
        client.close()
        second.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.slow
async def test_restart_keeps_objects_in_the_embedded_store() -> None:
    from db.media.storage import ObjectStore
    from db.runtime import object_store_for
    from infra.servers import Servers
    from infra.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="apt-restart-s3-"))
    settings = Settings(data_dir=data_dir)

    def start() -> tuple[EmbeddedServers, ObjectStore]:
        embedded = EmbeddedServers(data_dir, databases=1)
        embedded.start(want_postgres=False, want_redis=False, want_s3=True)
        servers = Servers(database_urls=[], redis_url="", s3=embedded.s3, embedded=embedded)
        return embedded, object_store_for(settings, servers)

    try:
        first, store = start()
        try:
            store.ensure_bucket_now()
            await store.put(key="kept.jpg", body=b"\xff\xd8 bytes", content_type="image/jpeg")
        finally:
            store.close()
            first.stop()

        # The credentials were generated once and kept, and so was the object.
        second, store = start()
        try:
            assert await store.get("kept.jpg") == b"\xff\xd8 bytes"
            head = await store.head("kept.jpg")
            assert head is not None
            assert head.content_type == "image/jpeg"
        finally:
            store.close()
            second.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
