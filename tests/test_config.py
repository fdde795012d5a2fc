"""Bad configuration: one clear line naming the variable, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.settings import ConfigurationError, Settings, describe_validation_error


def _run_cli(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aperture.cli", *args],
        env={**env, "APERTURE_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("APERTURE_DATABASE_URLS", "mysql://root@localhost/db", "APERTURE_DATABASE_URLS"),
        ("APERTURE_DATABASE_URLS", "postgresql://u@localhost:notaport/db", "not a number"),
        ("APERTURE_DATABASE_URLS", "postgresql://u@localhost:5432", "names no database"),
        ("APERTURE_REDIS_URL", "http://localhost:6379", "APERTURE_REDIS_URL"),
        ("APERTURE_LOGICAL_SHARDS", "many", "APERTURE_LOGICAL_SHARDS"),
        ("APERTURE_LOGICAL_SHARDS", "9000", "APERTURE_LOGICAL_SHARDS"),
    ],
)
def test_malformed_values_fail_with_one_line(
    project_env: dict[str, str], tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    result = _run_cli({**project_env, variable: value}, tmp_path, "migrate")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_database_fails_with_one_line(
    project_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **project_env,
        # Port 1 on loopback: nothing listens there, so the connection is refused at once.
        "APERTURE_DATABASE_URLS": "postgresql://aperture:secret@127.0.0.1:1/aperture",
        "APERTURE_REDIS_URL": "redis://127.0.0.1:1/0",
        # Checked last; set so that no embedded object store starts for nothing.
        "APERTURE_S3_ENDPOINT_URL": "http://127.0.0.1:1",
    }
    result = _run_cli(env, tmp_path, "migrate")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aperture: APERTURE_DATABASE_URLS: cannot connect to")
    assert "secret" not in lines[0], "passwords are never printed"


def test_unreachable_redis_names_its_variable(
    project_env: dict[str, str], tmp_path: Path, servers: object
) -> None:
    from infra.servers import Servers

    assert isinstance(servers, Servers)
    env = {
        **project_env,
        "APERTURE_DATABASE_URLS": ",".join(servers.database_urls),
        "APERTURE_REDIS_URL": "redis://127.0.0.1:1/0",
        # Checked last; set so that no embedded object store starts for nothing.
        "APERTURE_S3_ENDPOINT_URL": "http://127.0.0.1:1",
    }
    result = _run_cli(env, tmp_path, "migrate")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if "APERTURE_REDIS_URL" in line
    ]
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_object_store_names_its_variable(
    project_env: dict[str, str], tmp_path: Path, servers: object
) -> None:
    from infra.servers import Servers

    assert isinstance(servers, Servers)
    env = {
        **project_env,
        "APERTURE_DATABASE_URLS": ",".join(servers.database_urls),
        "APERTURE_REDIS_URL": servers.redis_url,
        "APERTURE_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "APERTURE_S3_ACCESS_KEY_ID": "key",
        "APERTURE_S3_SECRET_ACCESS_KEY": "a-secret-never-printed",
    }
    result = _run_cli(env, tmp_path, "serve")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aperture: APERTURE_S3_ENDPOINT_URL: cannot use bucket")
    assert "http://127.0.0.1:1" in lines[0]
    assert "a-secret-never-printed" not in result.stderr
    assert not (tmp_path / "data" / "seaweedfs").exists(), "no embedded store was started"


def test_database_urls_are_comma_separated() -> None:
    settings = Settings(
        database_urls="postgresql://a@h1/db1, postgresql://a@h2:5433/db2",
        redis_url="redis://h3:6379/0",
    )
    assert settings.database_urls == ["postgresql://a@h1/db1", "postgresql://a@h2:5433/db2"]
    assert not settings.embedded


def test_validation_error_is_described_by_variable() -> None:
    try:
        Settings(port=-5)
    except Exception as error:
        described = describe_validation_error(error)
    assert isinstance(described, ConfigurationError)
    assert described.variable == "APERTURE_PORT"
