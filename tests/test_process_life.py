"""`aperture serve` stops cleanly on the signals that stop services: SIGTERM (systemd,
Docker, Kubernetes) and Ctrl-C (SIGINT to the whole foreground process group). No
traceback, no ERROR, and no embedded server outlives it, not even after a SIGKILL: the
next start stops what the killed one left. `aperture reset` wipes the embedded data."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.media.processing import generate_demo_image
from tests.helpers import SIGN_UP
from tests.media_helpers import CREATE_UPLOAD, FINALIZE, MEDIA

PROJECT_ROOT = Path(__file__).resolve().parent.parent
APERTURE = str(PROJECT_ROOT / ".venv" / "bin" / "aperture")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def processes_using(data_dir: Path) -> dict[int, str]:
    """Processes whose command line names the data dir: the PostgreSQL postmaster and
    Valkey (whose process title names its config file), by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_dir) in cmdline:
            found[int(entry.name)] = cmdline
    return found


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def embedded_servers(data_dir: Path) -> dict[int, str]:
    """The servers themselves: a backend the postmaster has just forked still carries its
    parent's command line for a moment, before it sets its own process title."""
    found = processes_using(data_dir)
    return {pid: cmdline for pid, cmdline in found.items() if _parent(pid) not in found}


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def _wait_until_none_use(data_dir: Path) -> dict[int, str]:
    deadline = time.monotonic() + 10
    while processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    return processes_using(data_dir)


@pytest.fixture
def life_env(project_env: dict[str, str]) -> dict[str, str]:
    # Two shards on one database: a fresh data dir migrates in a fraction of the time,
    # and nothing here depends on the shard count.
    return {**project_env, "APERTURE_LOGICAL_SHARDS": "2", "APERTURE_EMBEDDED_DATABASES": "1"}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short path: a Unix socket path must stay under 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="apt-life-"))
    yield path
    for pid in processes_using(path):  # only after a failed test
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


class Serve:
    """`aperture serve` in a process group of its own, as a shell runs a foreground job."""

    def __init__(self, env: dict[str, str], data_dir: Path, *, port_flag: bool = False) -> None:
        self.port = _free_port()
        # The port as a setting, or (port_flag) as `--port` over the setting's default.
        where = ["--port", str(self.port)] if port_flag else []
        port_setting = {} if port_flag else {"APERTURE_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [APERTURE, "serve", *where],
            cwd=PROJECT_ROOT,
            env={**env, "APERTURE_DATA_DIR": str(data_dir), **port_setting},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "Aperture is ready" in line:
                return
        _, stderr = self.process.communicate(timeout=10)
        raise AssertionError(f"serve did not start:\n{stderr}")

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Any:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=10,
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def readiness(self) -> str:
        response = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=10)
        status: str = response.json()["status"]
        return status

    def stop(self, how: str = "sigterm") -> str:
        """Stops it as a service manager or a terminal would; returns its stderr."""
        if how == "sigterm":
            self.process.send_signal(signal.SIGTERM)
        else:
            os.killpg(self.process.pid, signal.SIGINT)
        _, stderr = self.process.communicate(timeout=30)
        return stderr

    def kill(self) -> None:
        """SIGKILL to the serving process alone: nothing of it runs a finally."""
        self.process.kill()
        self.process.communicate(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.communicate(timeout=10)


@pytest.fixture
def serve(life_env: dict[str, str], data_dir: Path) -> Iterator[Callable[..., Serve]]:
    """Starts `aperture serve` on ``data_dir`` and waits until it is ready."""
    started: list[Serve] = []

    def start(*, port_flag: bool = False) -> Serve:
        server = Serve(life_env, data_dir, port_flag=port_flag)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.close()


def _assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "ERROR" not in stderr, stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_serve_stops_cleanly(how: str, serve: Callable[[], Serve], data_dir: Path) -> None:
    server = serve()
    embedded = embedded_servers(data_dir)
    assert len(embedded) == 3, embedded  # the postmaster, Valkey and SeaweedFS
    # A session of their own: the terminal's Ctrl-C reaches only the app, which stops
    # them after its own shutdown (closing the job queue needs Valkey).
    for pid in embedded:
        assert os.getsid(pid) != server.process.pid
    _assert_clean(server.stop(how))
    assert _wait_until_none_use(data_dir) == {}


@pytest.mark.slow
def test_serve_after_a_sigkill_stops_the_orphans(
    serve: Callable[[], Serve], data_dir: Path
) -> None:
    first = serve()
    first.kill()
    orphans = embedded_servers(data_dir)
    assert len(orphans) == 3, orphans
    assert not any(_gone(pid) for pid in orphans)

    second = serve()
    assert second.readiness() == "ready"
    assert all(_gone(pid) for pid in orphans), processes_using(data_dir)
    assert len(embedded_servers(data_dir)) == 3
    _assert_clean(second.stop())
    assert _wait_until_none_use(data_dir) == {}


def _reset(
    env: dict[str, str], data_dir: Path, *args: str, answer: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [APERTURE, "reset", *args],
        cwd=PROJECT_ROOT,
        env={**env, "APERTURE_DATA_DIR": str(data_dir)},
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_commands_beside_serve_reuse_its_servers_and_reset_refuses(
    serve: Callable[[], Serve], data_dir: Path, life_env: dict[str, str]
) -> None:
    server = serve()
    ours = embedded_servers(data_dir)
    beside = subprocess.run(
        [APERTURE, "migrate"],
        cwd=PROJECT_ROOT,
        env={**life_env, "APERTURE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert beside.returncode == 0, beside.stderr
    # It used them and left them running for serve.
    assert embedded_servers(data_dir) == ours
    assert server.readiness() == "ready"

    refused = _reset(life_env, data_dir, "--yes")
    assert refused.returncode == 1
    assert f"pid {server.process.pid}" in refused.stderr
    assert "stop it first" in refused.stderr
    assert server.readiness() == "ready"
    _assert_clean(server.stop())

    # Nobody uses them now: reset asks first, and "n" keeps everything.
    declined = _reset(life_env, data_dir, answer="n\n")
    assert declined.returncode == 1
    assert f"This deletes all data in {data_dir}" in declined.stdout
    assert "[y/N]" in declined.stdout
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert processes_using(data_dir) == {}


@pytest.mark.slow
def test_reset_stops_orphans_and_serve_starts_empty(
    serve: Callable[[], Serve], data_dir: Path, life_env: dict[str, str]
) -> None:
    first = serve()
    first.graphql(
        'mutation { signUp(input: {username: "ada", email: "ada@example.com", '
        'password: "correct horse"}) { token } }'
    )
    assert first.graphql('{ user(username: "ada") { username } }')["user"]
    first.kill()
    assert processes_using(data_dir)

    wiped = _reset(life_env, data_dir, "--yes")
    assert wiped.returncode == 0, wiped.stderr
    assert "deleted" in wiped.stdout
    assert processes_using(data_dir) == {}
    assert not (data_dir / "postgres").exists()
    assert not (data_dir / "valkey").exists()

    again = serve()
    assert again.graphql('{ user(username: "ada") { username } }') == {"user": None}
    _assert_clean(again.stop())
    assert _wait_until_none_use(data_dir) == {}


@pytest.mark.slow
def test_media_urls_name_the_port_given_on_the_command_line(
    serve: Callable[..., Serve],
) -> None:
    # `--port` overrides APERTURE_PORT; the default CDN base URL (the app's own /media
    # route) must follow it, or a browser is sent to a port nothing listens on.
    server = serve(port_flag=True)
    owner = server.graphql(
        SIGN_UP, {"username": "port.ana", "email": "pa@example.com", "password": "password123"}
    )["signUp"]
    photo = generate_demo_image(seed=4, width=640, height=480)
    upload = server.graphql(
        CREATE_UPLOAD,
        {"kind": "IMAGE", "type": "image/jpeg", "size": len(photo)},
        token=owner["token"],
    )["createUpload"]["upload"]
    fields = {field["name"]: field["value"] for field in upload["fields"]}
    sent = httpx.post(upload["url"], data=fields, files={"file": ("p.jpg", photo, "image/jpeg")})
    assert sent.status_code in (200, 201, 204), sent.text
    media_id = upload["media"]["id"]
    server.graphql(FINALIZE, {"id": media_id}, token=owner["token"])
    deadline = time.monotonic() + 60
    media = server.graphql(MEDIA, {"id": media_id}, token=owner["token"])["media"]
    while media["status"] != "READY" and time.monotonic() < deadline:
        time.sleep(0.2)
        media = server.graphql(MEDIA, {"id": media_id}, token=owner["token"])["media"]
    assert media["url"].startswith(f"http://127.0.0.1:{server.port}/media/"), media
    fetched = httpx.get(media["url"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/webp"
