"""The servers under test: how to start each on 127.0.0.1, pinned to CPU 0, and stop it by pid."""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procstat import Mark, Sampler, cpu_seconds, io_counters, machine_busy_s, rss_kb

from pairpilot.testing import child_pids

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
# Several processes (issue #14): the bench's own Redis database on the machine's Redis.
REDIS_ADMIN_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
SCALE_OUT_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "5"))
# Workers of one deployment must share the token secret (README "Several processes").
# The shared-room set-ups: room affinity off (README "Several processes").
SHARED_ROOMS = {"PAIRPILOT_WORKER_AFFINITY": "0"}
SCALE_OUT_JWT_SECRET = "bench-scale-out-secret-not-for-production-0123456789"  # noqa: S105


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
    # Several processes (issue #14): `workers` server processes under one supervisor; a Redis
    # database of the bench's own (flushed before each case) when `redis_db` is set; with
    # `spread`, worker i is moved to CPU i (else every worker stays on SERVER_CPU).
    workers: int = 1
    redis_db: int | None = None
    spread: bool = False


# The load driver is one address signing in thousands of users, each its own room's owner: the
# abuse limits (README, "Quotas and abuse limits") would refuse it. The bench measures the
# server's capacity, so they are raised here; tests/integration/test_abuse.py tests them.
BENCH_GUARDRAILS = {
    "PAIRPILOT_SIGNIN_RATE": "1000000/hour",
    "PAIRPILOT_REFRESH_RATE": "1000000/hour",
    "PAIRPILOT_ROOM_CREATE_RATE": "1000000/hour",
    "PAIRPILOT_WRITE_RATE": "1000000/minute",
}


def _pairpilot(port: int, _data: Path) -> list[str]:
    return [str(VENV_BIN / "pairpilot"), "serve", "--host", "127.0.0.1", "--port", str(port)]


def _pairpilot_workers(workers: int) -> Callable[[int, Path], list[str]]:
    def command(port: int, data: Path) -> list[str]:
        return [*_pairpilot(port, data), "--workers", str(workers)]

    return command


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
        # Issue #14's variants (bench/scale_out.py; not in the matrix's defaults). One process
        # with REDIS_URL: every frame goes through the Redis stream, but every client is local.
        ServerSpec(
            "pairpilot-redis",
            "y-websocket",
            _pairpilot,
            ws_path="/collab",
            health="/healthz",
            auth=True,
            storage="sqlite",
            redis_db=SCALE_OUT_REDIS_DB,
        ),
        # `serve --workers 2`: both workers on CPU 0 (the single server's CPU budget), room
        # affinity off: the kernel's spread stands, so nearly every room is open on both
        # workers (rooms shared by processes, as before affinity), ...
        ServerSpec(
            "pairpilot-2p",
            "y-websocket",
            _pairpilot_workers(2),
            ws_path="/collab",
            health="/healthz",
            auth=True,
            storage="sqlite",
            env=SHARED_ROOMS,
            workers=2,
            redis_db=SCALE_OUT_REDIS_DB,
        ),
        # ... the same with room affinity, the default: every socket of a room on its home
        # worker (see bench/redis_bill.py) ...
        ServerSpec(
            "pairpilot-2p-routed",
            "y-websocket",
            _pairpilot_workers(2),
            ws_path="/collab",
            health="/healthz",
            auth=True,
            storage="sqlite",
            workers=2,
            redis_db=SCALE_OUT_REDIS_DB,
        ),
        # Issue #23: the same with the publisher's batch interval at 1 ms (default 16 ms): the
        # latency it buys for the Redis commands it costs (bench/redis_bill.py).
        ServerSpec(
            "pairpilot-2p-batch1",
            "y-websocket",
            _pairpilot_workers(2),
            ws_path="/collab",
            health="/healthz",
            auth=True,
            storage="sqlite",
            env={**SHARED_ROOMS, "PAIRPILOT_BUS_BATCH_MS": "1"},
            workers=2,
            redis_db=SCALE_OUT_REDIS_DB,
        ),
        # ... and one worker per core: the second shares CPU 1 with the load driver.
        ServerSpec(
            "pairpilot-2p-2cores",
            "y-websocket",
            _pairpilot_workers(2),
            ws_path="/collab",
            health="/healthz",
            auth=True,
            storage="sqlite",
            env=SHARED_ROOMS,
            workers=2,
            redis_db=SCALE_OUT_REDIS_DB,
            spread=True,
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

    def __init__(
        self, spec: ServerSpec, extra_env: dict[str, str] | None = None, *, observe: bool = False
    ) -> None:
        self.spec = spec
        # observe: sample every process of the server (a supervisor's workers summed), Redis's
        # own CPU, and the sockets per worker (bench/scale_out.py); always for several workers.
        self.observe = observe or spec.workers > 1 or spec.redis_db is not None
        self.worker_pids: list[int] = []
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
        env.update(BENCH_GUARDRAILS)
        env.update(self.spec.env)
        env.update(self.extra_env)
        env["PAIRPILOT_DATA_DIR"] = str(self.data)
        if self.db is not None:
            env["DATABASE_URL"] = f"{PG_ADMIN_URL}/{self.db}"
        else:
            env.pop("DATABASE_URL", None)
        if self.spec.redis_db is not None:
            env["REDIS_URL"] = f"{REDIS_ADMIN_URL}/{self.spec.redis_db}"
            env.setdefault("PAIRPILOT_JWT_SECRET", SCALE_OUT_JWT_SECRET)
        else:
            env.pop("REDIS_URL", None)  # a server without Redis: never the caller's
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
        if self.spec.redis_db is not None:
            _redis(self.spec.redis_db).flushdb()  # this case's streams, leases and keys only
        if self.spec.workers > 1:
            timeout = max(timeout, 120.0)  # N interpreters import at once on one core
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
        self._processes(deadline)
        self.sampler_().start()

    def _processes(self, deadline: float) -> None:
        """The workers of a supervisor (pinned as the spec says), and the sampler of them all."""
        if self.spec.workers > 1:
            self.worker_pids = self._wait_for_workers(deadline)
            if self.spec.spread:
                # Worker i on CPU i, every thread of it (taskset pinned them all to CPU 0).
                for cpu, pid in enumerate(self.worker_pids):
                    for task in Path(f"/proc/{pid}/task").iterdir():
                        os.sched_setaffinity(int(task.name), {cpu % (os.cpu_count() or 1)})
        if self.observe:
            self.sampler = GroupSampler(
                self.pid, pids=[self.pid, *self.worker_pids], port=self.port
            )
        else:
            self.sampler = Sampler(self.pid)

    def _wait_for_workers(self, deadline: float) -> list[int]:
        """The pids of the supervisor's workers, once each listens on the port."""
        while True:
            listening = sockets_by_pid(self.port, "listening")
            children = set(child_pids(self.pid))
            if len(children & set(listening)) >= self.spec.workers:
                return sorted(children & set(listening))
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited at start: {self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.spec.name}: workers not listening: {listening}")
            time.sleep(0.1)

    def room_loads(self) -> dict[str, int]:
        """How many times each room was loaded, from the log (once per worker that opened it)."""
        loads: dict[str, int] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            if '"room loaded"' in line:
                try:
                    room = json.loads(line).get("room_id", "?")
                except ValueError:
                    continue
                loads[room] = loads.get(room, 0) + 1
        return loads

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
        for pid in self.worker_pids:  # a supervisor that was killed leaves its workers
            if _is_worker(pid):
                os.kill(pid, signal.SIGKILL)

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


def _is_worker(pid: int) -> bool:
    """The worker `pid` is still running a PairPilot (and not some later process's pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"pairpilot" in cmdline and b"--reuse-port" in cmdline


def sockets_by_pid(port: int, state: str = "established") -> dict[int, int]:
    """TCP sockets on local port `port` in `state`, counted per owning pid (`ss -p`)."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", state, f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    counts: dict[int, int] = {}
    for line in out.splitlines():
        for pid in set(re.findall(r"pid=(\d+)", line)):
            counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def _redis(db: int = 0) -> Any:
    import redis  # noqa: PLC0415 - the project's dependency; only the scale-out cases need it

    return redis.Redis.from_url(f"{REDIS_ADMIN_URL}/{db}", socket_timeout=5)


REDIS_STATS = ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes")
REDIS_COMMANDS = ("xadd", "xread", "xrange", "xtrim", "set", "eval", "evalsha")


@dataclass
class GroupMark(Mark):
    """A Mark of a server made of several processes, with Redis's own counters."""

    per_pid_cpu_s: dict[int, float] = field(default_factory=dict)
    redis_cpu_s: float | None = None
    redis: dict[str, int] = field(default_factory=dict)
    sockets: dict[int, int] | None = None


@dataclass
class GroupSampler(Sampler):
    """Sampler over every process of a server (CPU, RSS and I/O summed), plus Redis's CPU.

    `pid` is the process started (the supervisor of `serve --workers N`), `pids` every process
    counted. Redis is the machine's redis-server (its pid from INFO): its CPU, its command
    counts, and at the "send_end" mark the server's established sockets per worker pid.
    """

    pids: list[int] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.pids = self.pids or [self.pid]
        self._client = None
        self.redis_pid: int | None = None
        try:
            self._client = _redis()
            self.redis_pid = int(self._client.info("server")["process_id"])
        except Exception:  # noqa: BLE001 - no Redis: the marks say so (None)
            self._client = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), sum(rss_kb(p) for p in self.pids)))
            except (FileNotFoundError, ProcessLookupError):
                return
            self._stop.wait(self.interval)

    def _redis_counters(self) -> dict[str, int]:
        if self._client is None:
            return {}
        try:
            stats = self._client.info("stats")
            commands = self._client.info("commandstats")
        except Exception:  # noqa: BLE001
            return {}
        out = {k: int(stats.get(k, 0)) for k in REDIS_STATS}
        for name in REDIS_COMMANDS:
            out[f"calls_{name}"] = int(commands.get(f"cmdstat_{name}", {}).get("calls", 0))
        return out

    def mark(self, name: str) -> GroupMark:
        t = time.monotonic()
        per_pid = {p: cpu_seconds(p) for p in self.pids}
        machine = machine_busy_s()
        redis_cpu = cpu_seconds(self.redis_pid) if self.redis_pid else None
        io: dict[str, int] = {}
        for p in self.pids:
            for k, v in io_counters(p).items():
                io[k] = io.get(k, 0) + v
        return GroupMark(
            name,
            t,
            sum(per_pid.values()),
            sum(rss_kb(p) for p in self.pids),
            io,
            machine,
            per_pid_cpu_s=per_pid,
            redis_cpu_s=redis_cpu,
            redis=self._redis_counters(),
            # After the window's CPU is read; by then the sign-ins' keep-alive HTTP
            # connections have been closed (uvicorn: 5 s), so these are the WebSockets.
            sockets=sockets_by_pid(self.port) if name == "send_end" else None,
        )


def observation(server: Server, marks: dict[str, Mark], deliveries: int | None) -> dict[str, Any]:
    """What a GroupSampler saw over the measured window (measure_start → send_end)."""
    start, end = marks.get("measure_start"), marks.get("send_end")
    if not isinstance(start, GroupMark) or not isinstance(end, GroupMark):
        return {}
    wall = end.t - start.t
    cpu = end.cpu_s - start.cpu_s
    out: dict[str, Any] = {
        "pids": {
            str(p): round(end.per_pid_cpu_s.get(p, 0.0) - start.per_pid_cpu_s.get(p, 0.0), 3)
            for p in start.per_pid_cpu_s
        },
        "worker_pids": server.worker_pids,
        "deliveries": deliveries,
        "cpu_us_per_delivery": round(1e6 * cpu / deliveries, 2) if deliveries else None,
    }
    if start.redis_cpu_s is not None and end.redis_cpu_s is not None and wall > 0:
        rcpu = end.redis_cpu_s - start.redis_cpu_s
        out["redis_cpu_s"] = round(rcpu, 3)
        out["redis_cpu_pct"] = round(100 * rcpu / wall, 1)
        out["redis_us_per_delivery"] = round(1e6 * rcpu / deliveries, 2) if deliveries else None
        out["redis_counters"] = {k: end.redis.get(k, 0) - start.redis.get(k, 0) for k in end.redis}
    if end.sockets is not None:
        out["sockets_by_pid"] = {str(p): n for p, n in sorted(end.sockets.items())}
    if server.spec.workers > 1:
        loads = server.room_loads()
        out["rooms_loaded"] = len(loads)
        out["rooms_on_both_workers"] = sum(1 for n in loads.values() if n >= 2)
    return out


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
