"""Who stops the embedded servers: the last process using them, never one that merely
reused them, and never a process that only happens to have a recorded pid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from infra.embedded import STATE_FILE, EmbeddedServers
from tests.test_process_life import processes_using


def _answers(database_url: str, redis_url: str) -> bool:
    try:
        with psycopg.connect(database_url, connect_timeout=2) as connection:
            connection.execute("SELECT 1")
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        client.ping()
        client.close()
    except (psycopg.Error, redis.RedisError):
        return False
    return True


@pytest.mark.slow
def test_the_last_holder_stops_the_servers(tmp_path: Path) -> None:
    owner = EmbeddedServers(tmp_path, databases=1)
    guest = EmbeddedServers(tmp_path, databases=1)
    try:
        urls, redis_url = owner.start(want_postgres=True, want_redis=True)
        assert redis_url is not None
        assert guest.start(want_postgres=True, want_redis=True) == (urls, redis_url)
        state = json.loads((tmp_path / STATE_FILE).read_text())
        assert len(state["holders"]) == 2

        # The one that started them leaves first: the guest still has them.
        owner.stop()
        assert _answers(urls[0], redis_url)
        guest.stop()
        assert not _answers(urls[0], redis_url)
        assert processes_using(tmp_path) == {}
        assert not (tmp_path / STATE_FILE).exists()
    finally:
        owner.stop()
        guest.stop()


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    # What a killed holder left names pids that now belong to another process: this one.
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "postmaster.pid").write_text(f"{os.getpid()}\n")
    (tmp_path / STATE_FILE).write_text(
        json.dumps(
            {
                "holders": [{"pid": os.getpid(), "start": "0", "handle": "gone"}],
                "valkey": {"pid": os.getpid(), "port": 1},
            }
        )
    )
    servers = EmbeddedServers(tmp_path, databases=1)
    assert servers.postgres.running_pid() is None
    # No live holder (the recorded one started at another time), so this start stops
    # orphans: it would SIGTERM and SIGINT this test process if it trusted the pids.
    servers.start(want_postgres=False, want_redis=False)
    servers.stop()
    assert not (tmp_path / STATE_FILE).exists()


def _reset(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aperture.cli", "reset", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "external",
    [
        {"APERTURE_DATABASE_URLS": "postgresql://aperture@db.example:5432/aperture"},
        {"APERTURE_REDIS_URL": "redis://cache.example:6379/0"},
    ],
)
def test_reset_refuses_external_servers(
    project_env: dict[str, str], tmp_path: Path, external: dict[str, str]
) -> None:
    (tmp_path / "postgres").mkdir()
    result = _reset({**project_env, **external, "APERTURE_DATA_DIR": str(tmp_path)}, "--yes")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert next(iter(external)) in lines[0]
    assert (tmp_path / "postgres").exists()


def test_reset_with_nothing_to_delete(project_env: dict[str, str], tmp_path: Path) -> None:
    result = _reset({**project_env, "APERTURE_DATA_DIR": str(tmp_path / "absent")})
    assert result.returncode == 0, result.stderr
    assert "nothing to delete" in result.stdout
    assert not (tmp_path / "absent").exists()
