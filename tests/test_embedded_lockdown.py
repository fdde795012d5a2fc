"""The embedded servers are reachable from this machine alone, and only with the
credentials Aperture keeps: nothing but the S3 gateway answers a stranger (issue 25)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from db.runtime import Runtime
from infra.embedded import STATE_FILE
from infra.servers import Servers
from infra.settings import Settings

LISTEN = "0A"
LOOPBACK = {"127.0.0.1", "::1"}


def _listening_sockets() -> dict[int, tuple[str, int]]:
    """Socket inode to (address, port), for every listening TCP socket of the machine."""
    found: dict[int, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            address, port = fields[1].split(":")
            # Each 32-bit word of the address is written in host (little-endian) order.
            raw = b"".join(
                bytes.fromhex(address[start : start + 8])[::-1]
                for start in range(0, len(address), 8)
            )
            found[int(fields[9])] = (str(ipaddress.ip_address(raw)), int(port, 16))
    return found


def _with_children(pids: set[int]) -> set[int]:
    family = set(pids)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) in pids:
            family.add(int(entry.name))
    return family


def _ports_of(pids: set[int]) -> list[tuple[str, int]]:
    listening = _listening_sockets()
    ports = []
    for pid in _with_children(pids):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in listening:
                ports.append(listening[int(target[8:-1])])
    return ports


def _embedded_pids(data_dir: Path) -> dict[str, int]:
    state = json.loads((data_dir / STATE_FILE).read_text())
    pids = {}
    if state.get("valkey"):
        pids["valkey"] = state["valkey"]["pid"]
    if state.get("seaweed"):
        pids["seaweed"] = state["seaweed"]["pid"]
    postmaster = data_dir / "postgres" / "postmaster.pid"
    if postmaster.exists():
        pids["postgres"] = int(postmaster.read_text().split("\n", 1)[0])
    return pids


@pytest.fixture
def embedded_pids(settings: Settings, servers: Servers) -> dict[str, int]:
    if servers.embedded is None:
        pytest.skip("the suite runs on external servers")
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux's /proc")
    return _embedded_pids(settings.data_dir.resolve())


def test_every_embedded_server_listens_on_loopback_alone(
    embedded_pids: dict[str, int],
) -> None:
    for server, pid in embedded_pids.items():
        ports = _ports_of({pid})
        exposed = [(address, port) for address, port in ports if address not in LOOPBACK]
        assert exposed == [], f"{server} listens beyond loopback: {exposed}"
    # PostgreSQL takes no TCP connections at all: a Unix socket in its data dir.
    if "postgres" in embedded_pids and os.name == "posix":
        assert _ports_of({embedded_pids["postgres"]}) == []


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    credentials, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{credentials.split(':', 1)[0]}@{host}"))


def test_postgres_and_valkey_refuse_a_client_without_the_password(
    embedded_pids: dict[str, int], servers: Servers
) -> None:
    if "postgres" in embedded_pids:
        stranger = _without_password(servers.database_urls[0])
        assert stranger != servers.database_urls[0]
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(stranger, connect_timeout=5).close()
    if "valkey" in embedded_pids:
        (port,) = {port for _, port in _ports_of({embedded_pids["valkey"]})}
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(64).startswith(b"-NOAUTH")


def _speaks_http(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return conn.recv(8).startswith(b"HTTP/")
    except OSError:
        return False


def _tls_refusal(port: int) -> str:
    """How a TLS client without a certificate fares on ``port``: the reason it was
    turned away, or "answered"."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw) as conn,
        ):
            # HTTP/2's preface and an empty SETTINGS frame: what a gRPC client sends.
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
            conn.recv(64)
    except ssl.SSLError as error:
        return error.reason or str(error)
    except OSError as error:
        return str(error)
    return "answered"


CERTIFICATE_REFUSALS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
}


async def test_nothing_but_the_s3_gateway_answers_without_credentials(
    embedded_pids: dict[str, int], runtime: Runtime, settings: Settings, servers: Servers
) -> None:
    """The filer's HTTP API once listed and served every object (private accounts'
    photos included) to anyone who asked, bypassing signed URLs; the master handed out
    write tokens. Every port of SeaweedFS but the S3 gateway's now turns a stranger away:
    HTTP ports without the JWTs, gRPC ports without a client certificate."""
    if "seaweed" not in embedded_pids or servers.s3 is None:
        pytest.skip("the object store is external")
    secret = uuid.uuid4().hex.encode()
    key = f"lockdown/{uuid.uuid4().hex}.jpg"
    await runtime.object_store.put(key=key, body=secret, content_type="image/jpeg")
    bucket = settings.s3_bucket
    s3_port = urlsplit(servers.s3.url).port
    ports = {port for _, port in _ports_of({embedded_pids["seaweed"]})} - {s3_port}
    assert ports, "SeaweedFS listens on no port but the S3 gateway's?"

    answered: list[str] = []
    async with httpx.AsyncClient(timeout=5) as client:
        for port in sorted(ports):
            if not _speaks_http(port):
                refusal = _tls_refusal(port)
                if refusal not in CERTIFICATE_REFUSALS:
                    answered.append(f"{port}: TLS without a client certificate: {refusal}")
                continue
            base = f"http://127.0.0.1:{port}"
            attempts = [
                # The filer: a listing, a read, a write.
                ("GET", f"/buckets/{bucket}/?limit=1000", {"Accept": "application/json"}),
                ("GET", f"/buckets/{bucket}/{key}", {}),
                ("POST", f"/buckets/{bucket}/lockdown/intruder.txt", {}),
                # The master: a write token for a volume server.
                ("GET", "/dir/assign", {}),
                # A volume server: a read and a write of a file id.
                ("GET", "/1,0123456789", {}),
                ("POST", "/1,0123456789", {}),
            ]
            for method, path, headers in attempts:
                response = await client.request(
                    method,
                    base + path,
                    headers=headers,
                    files={"file": ("intruder.txt", b"intruder")} if method == "POST" else None,
                )
                leaked = secret in response.content or key.encode() in response.content
                if response.status_code < 400 or leaked:
                    answered.append(f"{method} {base}{path}: {response.status_code}")
    assert answered == []
    assert await runtime.object_store.head("lockdown/intruder.txt") is None
    # ... while the S3 gateway, with the credentials, still serves.
    assert await runtime.object_store.get(key) == secret
