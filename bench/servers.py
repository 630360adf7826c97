"""The servers under test: how to start each on 127.0.0.1, pinned to CPU 0, and stop it by pid."""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from procstat import Sampler

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = ROOT / ".venv" / "bin"
SERVER_CPU = "0"
CLIENT_CPU = "1"
NODE_PACKAGES = [
    "yjs",
    "y-websocket",
    "@y/websocket-server",
    "@hocuspocus/server",
    "@hocuspocus/provider",
    "ws",
]
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


@dataclass(frozen=True)
class ServerSpec:
    """One server: its command line, the client kind that talks to it, and its knobs."""

    name: str
    kind: str  # "y-websocket" or "hocuspocus": which provider the driver uses
    command: Callable[[int, Path], list[str]]
    ws_path: str = ""  # appended to ws://host:port for the provider's URL
    health: str = "/"
    auth: bool = False  # sign in and join through PairPilot's API
    env: dict[str, str] = field(default_factory=dict)
    storage: str = "memory"  # what a cold load reads from: "sqlite", "postgresql", "memory"


def _pairpilot(port: int, _data: Path) -> list[str]:
    return [str(VENV_BIN / "pairpilot"), "serve", "--host", "127.0.0.1", "--port", str(port)]


def _node(script: str) -> Callable[[int, Path], list[str]]:
    def command(port: int, _data: Path) -> list[str]:
        return ["node", str(BENCH / "peers" / script), str(port)]

    return command


def _pycrdt(port: int, data: Path) -> list[str]:
    return [
        str(VENV_BIN / "python"),
        str(BENCH / "peers" / "pycrdt_server.py"),
        str(port),
        str(data),
    ]


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in [
        ServerSpec(
            "pairpilot",
            "y-websocket",
            _pairpilot,
            ws_path="/collab",
            health="/healthz",
            auth=True,
            storage="sqlite",
        ),
        ServerSpec(
            "pairpilot-pg",
            "y-websocket",
            _pairpilot,
            ws_path="/collab",
            health="/healthz",
            auth=True,
            storage="postgresql",
        ),
        ServerSpec("y-websocket-server", "y-websocket", _node("ywebsocket_server.mjs")),
        ServerSpec("pycrdt-websocket", "y-websocket", _pycrdt, storage="sqlite"),
        ServerSpec("hocuspocus", "hocuspocus", _node("hocuspocus_server.mjs")),
    ]
}
# The matrix's default servers (pairpilot-pg joins for durability, and where asked for).
DEFAULT_SERVERS = ["pairpilot", "y-websocket-server", "pycrdt-websocket", "hocuspocus"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(host: str, port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status < 500
    except OSError:
        return False
    finally:
        conn.close()


def _psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", f"{PG_ADMIN_URL}/{db}", "-XAtqc", sql],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


class Server:
    """A running server: fresh data dir (and fresh database), pinned to CPU 0, stopped by pid."""

    def __init__(self, spec: ServerSpec, extra_env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name}-"))
        self.extra_env = extra_env or {}
        self.db: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.sampler: Sampler | None = None
        self.log = self.data / "server.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.spec.ws_path}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not started")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sampler_(self) -> Sampler:
        if self.sampler is None:
            raise RuntimeError("server not started")
        return self.sampler

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.spec.env)
        env.update(self.extra_env)
        env["PAIRPILOT_DATA_DIR"] = str(self.data)
        if self.db is not None:
            env["DATABASE_URL"] = f"{PG_ADMIN_URL}/{self.db}"
        else:
            env.pop("DATABASE_URL", None)
        return env

    def start(self, timeout: float = 60.0) -> None:
        if self.spec.storage == "postgresql" and self.db is None:
            self.db = f"bench_{os.getpid()}_{self.port}"
            _psql(f"CREATE DATABASE {self.db}")
            subprocess.run(
                [str(VENV_BIN / "pairpilot"), "migrate"],
                env=self.env(),
                check=True,
                capture_output=True,
                timeout=120,
            )
        cmd = ["taskset", "-c", SERVER_CPU, *self.spec.command(self.port, self.data)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=BENCH,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited at start: {self.tail()}")
            if _answers("127.0.0.1", self.port, self.spec.health):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.spec.name} not up in {timeout}s")
            time.sleep(0.1)
        self.sampler = Sampler(self.pid)
        self.sampler.start()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the server by its pid (SIGTERM, then SIGKILL after `timeout`)."""
        if self.sampler is not None:
            self.sampler.stop()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def wal_lsn(self) -> int | None:
        """PostgreSQL's WAL insert position in bytes (cluster-wide), when on PostgreSQL."""
        if self.db is None:
            return None
        return int(_psql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        if self.db is not None:
            _psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
            self.db = None
        shutil.rmtree(self.data, ignore_errors=True)


def versions() -> dict[str, str]:
    """Versions of every piece, for the report."""
    out: dict[str, str] = {}
    lock = json.loads((BENCH / "package-lock.json").read_text())
    for name in NODE_PACKAGES:
        out[name] = lock["packages"].get(f"node_modules/{name}", {}).get("version", "?")
    for name in ["pairpilot", "pycrdt", "pycrdt-websocket", "uvicorn"]:
        out[name] = importlib.metadata.version(name)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    out["node"] = node.stdout.strip()
    out["python"] = platform.python_version()
    try:
        out["postgresql"] = _psql("SHOW server_version")
    except (subprocess.SubprocessError, FileNotFoundError):
        out["postgresql"] = "unavailable"
    return out
