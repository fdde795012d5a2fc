"""`aperture serve` stops cleanly on the signals that stop services: SIGTERM (systemd,
Docker, Kubernetes) and Ctrl-C (SIGINT to the whole foreground process group). No
traceback, and no embedded server outlives it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _processes_using(data_dir: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_dir) in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_serve_stops_cleanly(how: str, project_env: dict[str, str]) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="apt-life-"))
    env = {**project_env, "APERTURE_DATA_DIR": str(data_dir), "APERTURE_PORT": str(_free_port())}
    process = subprocess.Popen(
        [str(PROJECT_ROOT / ".venv" / "bin" / "aperture"), "serve"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            if "Aperture is ready" in line:
                break
            assert time.monotonic() < deadline, "serve did not start"
        assert _processes_using(data_dir), "no embedded servers were started"
        if how == "sigterm":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert "Traceback" not in stderr, stderr
        deadline = time.monotonic() + 10
        while _processes_using(data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_using(data_dir) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)
