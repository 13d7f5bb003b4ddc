"""Fixtures for the end-to-end tests: a real PostgreSQL and a real `kgw serve`.

PostgreSQL is started from the machine's `initdb`/`postgres` binaries in a
temp dir on a free 127.0.0.1 port (as the `postgres` user when running as
root), with password authentication so that the gateway's secret is really
used. Set KGW_TEST_POSTGRES_DSN (postgres://user:password@127.0.0.1:port/db)
to use an existing server instead.

The gateway is built from this tree with `go build ./cmd/kgw`, or taken from
KGW_BINARY when set, and started on free ports with a temp data dir.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[4]
_STARTUP_LIMIT = 120.0  # seconds to wait for a process to become ready before failing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Process:
    """A child process whose combined output is collected line by line."""

    def __init__(self, argv: Sequence[str], *, user: str | None = None, cwd: str | None = None) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            user=user,
            cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read, name=f"read {argv[0]}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, text: str) -> None:
        """Waits until a line containing ``text`` appears; fails if the process exits first."""
        deadline = time.monotonic() + _STARTUP_LIMIT
        with self._cond:
            while not any(text in line for line in self.lines):
                if self.proc.poll() is not None and not self._reader.is_alive():
                    pytest.fail(f"{self.argv[0]} exited with {self.proc.returncode} before {text!r}:\n{self.output()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"{self.argv[0]} did not log {text!r} within {_STARTUP_LIMIT} s:\n{self.output()}")
                self._cond.wait(min(remaining, 0.5))

    def output(self) -> str:
        return "\n".join(self.lines[-80:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)


@dataclass(frozen=True)
class Postgres:
    """Where the test database listens and how to log in."""

    host: str
    port: int
    database: str
    user: str
    password: str


def _run(argv: Sequence[str], *, user: str | None = None) -> None:
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, user=user, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    dsn = os.environ.get("KGW_TEST_POSTGRES_DSN")
    if dsn:
        url = urlsplit(dsn)
        yield Postgres(
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            database=url.path.lstrip("/") or "postgres",
            user=unquote(url.username or "postgres"),
            password=unquote(url.password or ""),
        )
        return
    for binary in ("initdb", "postgres"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} not found in PATH: install PostgreSQL (apt-get install -y postgresql) and put its bin dir in PATH")
    run_as: str | None = None
    base = Path(tempfile.mkdtemp(prefix="kgw-py-e2e-pg-"))
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("PostgreSQL refuses to run as root and there is no 'postgres' user: useradd --system --user-group postgres")
        run_as = "postgres"
        shutil.chown(base, user="postgres", group=None)
    password = secrets.token_urlsafe(16)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(pwfile, user=run_as)
    data = base / "data"
    _run(
        ["initdb", "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
        user=run_as,
    )
    server: _Process | None = None
    port = 0
    for attempt in range(3):
        port = free_port()
        server = _Process(
            [
                "postgres",
                "-D", str(data),
                "-p", str(port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={base}",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            user=run_as,
        )
        try:
            server.wait_for("database system is ready to accept connections")
            break
        except pytest.fail.Exception:
            server.stop(signal.SIGINT)
            if attempt == 2 or "could not bind" not in server.output():
                raise
    assert server is not None
    try:
        yield Postgres(host="127.0.0.1", port=port, database="postgres", user="postgres", password=password)
    finally:
        server.stop(signal.SIGINT)  # fast shutdown
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def kgw_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("KGW_BINARY")
    if given:
        return Path(given)
    if shutil.which("go") is None:
        pytest.fail("go not found in PATH: it is needed to build kgw (or set KGW_BINARY)")
    out = tmp_path_factory.mktemp("bin") / "kgw"
    _run(["go", "-C", str(REPO_ROOT), "build", "-o", str(out), "./cmd/kgw"])
    return out


@pytest.fixture(scope="session")
def gateway(kgw_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Starts `kgw serve` and yields its gRPC address."""
    data_dir = tmp_path_factory.mktemp("kgw-data")
    server: _Process | None = None
    target = ""
    for attempt in range(3):
        target = f"127.0.0.1:{free_port()}"
        server = _Process(
            [
                str(kgw_binary),
                "serve",
                "--grpc-addr", target,
                "--admin-addr", f"127.0.0.1:{free_port()}",
                "--data-dir", str(data_dir),
            ]
        )
        try:
            server.wait_for("kgw ready")
            break
        except pytest.fail.Exception:
            server.stop()
            if attempt == 2 or "address already in use" not in server.output():
                raise
    assert server is not None
    try:
        yield target
    finally:
        server.stop()


@dataclass(frozen=True)
class SecureGateway:
    """A gateway with --auth required and mTLS, and what a client needs to reach it."""

    target: str
    admin_key: str
    ca: Path
    client_cert: Path
    client_key: Path
    spiffe_id: str


@pytest.fixture(scope="session")
def secure_gateway(kgw_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureGateway]:
    """Starts `kgw serve --auth required` with TLS and required client
    certificates (a CA, server and client certificates made for the test),
    after creating an admin API key offline with `kgw auth create-key`."""
    from ..pki import CA

    base = tmp_path_factory.mktemp("kgw-secure")
    data_dir = base / "data"
    ca = CA(base, "mesh-root")
    server_pair = ca.server()
    spiffe_id = "spiffe://mesh.example/ns/payments/sa/api"
    client = ca.issue("client", "payments-api", client=True, sans=f"URI:{spiffe_id}")
    created = subprocess.run(
        [str(kgw_binary), "auth", "create-key", "--data-dir", str(data_dir), "--role", "admin", "--name", "e2e"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    admin_key = created.stdout.strip()
    assert admin_key.startswith("kgw_"), created.stdout

    server: _Process | None = None
    target = ""
    for attempt in range(3):
        target = f"127.0.0.1:{free_port()}"
        server = _Process(
            [
                str(kgw_binary), "serve",
                "--grpc-addr", target,
                "--admin-addr", f"127.0.0.1:{free_port()}",
                "--data-dir", str(data_dir),
                "--auth", "required",
                "--tls-cert-file", str(server_pair.cert),
                "--tls-key-file", str(server_pair.key),
                "--tls-client-ca-file", str(ca.cert),
            ]
        )  # fmt: skip
        try:
            server.wait_for("kgw ready")
            break
        except pytest.fail.Exception:
            server.stop()
            if attempt == 2 or "address already in use" not in server.output():
                raise
    assert server is not None
    try:
        yield SecureGateway(target, admin_key, ca.cert, client.cert, client.key, spiffe_id)
    finally:
        server.stop()
        assert admin_key not in server.output(), "the gateway logged the admin key"
