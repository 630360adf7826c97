"""Fixtures shared by every test: settings, a live server, real PostgreSQL when asked for."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import redis
import redis.asyncio
from tests.support import unavailable

from pairpilot.settings import Settings
from pairpilot.storage.migrate import migrate
from pairpilot.storage.sql import create_engine
from pairpilot.testing import LiveServer, free_port, live_server, quick_settings

# The whole suite signs in and creates rooms from 127.0.0.1, against servers that may share one
# Redis (and so one window): the per-address and per-user rates are raised for it. The tests
# of the guardrails (tests/integration/test_guardrails*.py, test_abuse.py) set their own.
for _name, _rate in (
    ("PAIRPILOT_SIGNIN_RATE", "100000/hour"),
    ("PAIRPILOT_REFRESH_RATE", "100000/hour"),
    ("PAIRPILOT_ROOM_CREATE_RATE", "100000/hour"),
    ("PAIRPILOT_WRITE_RATE", "100000/minute"),
    ("PAIRPILOT_ROOMS_PER_ANONYMOUS_USER", "100000"),
):
    os.environ.setdefault(_name, _rate)

POSTGRES_ADMIN_URL = os.environ.get(
    "PAIRPILOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return quick_settings(tmp_path)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session; its URL."""
    name = f"pairpilot_test_{uuid.uuid4().hex[:10]}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def admin(sql: str) -> None:
        # Its own thread and loop: this fixture may be first asked for inside a running loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, execute(sql)).result()

    try:
        admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL is not reachable ({exc}); start it with ../shared/services.sh")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_postgres(postgres_database: str) -> str:
    """The session's PostgreSQL database, migrated (as `pairpilot migrate` would)."""

    async def run() -> None:
        engine = create_engine(postgres_database.replace("postgresql://", "postgresql+asyncpg://"))
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()
    return postgres_database


def backend_settings(
    request: pytest.FixtureRequest, tmp_path: Path, **overrides: object
) -> Settings:
    """Quick settings on the backend named by ``request.param`` (sqlite or postgresql)."""
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("migrated_postgres")
    return quick_settings(tmp_path, **overrides)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    """Each storage backend in turn; hand it to backend_settings."""
    return request


@pytest.fixture(params=["sqlite", "postgresql"])
async def api_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A live server on each storage backend in turn."""
    async with live_server(backend_settings(request, tmp_path)) as running:
        assert running.services.store.engine.dialect.name == request.param
        yield running


@pytest.fixture
def room() -> str:
    """A room id no other test uses (the PostgreSQL database is shared by the session)."""
    return f"room-{uuid.uuid4().hex[:12]}"


INTEROP = Path(__file__).parent / "interop"


@pytest.fixture(scope="session")
def node() -> str:
    """Node.js with the interop peer's npm packages (yjs, y-websocket, ws) installed."""
    executable = shutil.which("node")
    if executable is None or not (INTEROP / "node_modules" / "y-websocket").is_dir():
        unavailable("node and tests/interop/node_modules (run scripts/setup.sh)")
    return str(executable)


REDIS_URL = os.environ.get("PAIRPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis (required in CI)."""

    async def ping() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, ping()).result()
    except (OSError, redis.RedisError) as exc:
        unavailable(f"Redis is not reachable at {REDIS_URL} ({exc}); start ../shared/services.sh")
    return REDIS_URL


@pytest.fixture
def private_redis(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, RedisProcess]]:
    del redis_url  # CI's rule: Redis must be installed and running
    if shutil.which("redis-server") is None:
        unavailable("redis-server binary")
    process = RedisProcess(free_port(), tmp_path)
    process.start()
    yield f"redis://127.0.0.1:{process.port}/0", process
    process.stop()


class RedisProcess:
    """A Redis server of the test's own, to stop and start."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            if (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
                ).stdout.strip()
                == b"PONG"
            ):
                return
            subprocess.run(["sleep", "0.05"], check=True)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
