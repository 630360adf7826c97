"""Redis over TLS (``rediss://``), as Upstash and other managed Redis serve it.

A private redis-server listens on TLS only, with a certificate from a CA of the test's own; two
PairPilot servers share a room through it and the Run limiter counts through it. The CA reaches
redis-py through the URL (``?ssl_ca_certs=``), which is what an operator whose provider uses a
private CA writes; Upstash's certificates chain to a public CA, so its ``rediss://`` URL needs
nothing added.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pycrdt import Text
from tests.support import certificates, new_user, unavailable

from pairpilot.testing import free_port, live_server, quick_settings, synced_client, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def tls_redis(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A redis-server on TLS only; its ``rediss://`` URL (with the CA) and the CA's file."""
    del redis_url  # CI's rule: Redis must be installed and running
    for tool in ("redis-server", "openssl"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} binary")
    ca, key, cert = certificates(tmp_path, "IP:127.0.0.1")
    port = free_port()
    # fmt: off
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    # fmt: on
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        for _ in range(200):
            try:
                if client.ping():
                    break
            except redis.RedisError:
                subprocess.run(["sleep", "0.05"], check=True)
        else:
            raise TimeoutError("redis-server with TLS did not start")
        client.close()
        yield url, ca
    finally:
        process.terminate()
        process.wait(10)


async def test_two_processes_share_a_room_and_runs_are_counted_over_tls(
    tls_redis: tuple[str, Path], tmp_path: Path
):
    url, _ = tls_redis
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    room = f"tls-{os.urandom(4).hex()}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    settings = {"redis_url": url, "database_url": database}
    async with (
        live_server(quick_settings(tmp_path / "a", **settings)) as a,
        live_server(quick_settings(tmp_path / "b", **settings)) as b,
    ):
        async with (
            synced_client(await a.member_url(room, "Ada")) as on_a,
            synced_client(await b.member_url(room, "Bo")) as on_b,
        ):
            on_a.get("code", type=Text).insert(0, "over TLS")
            await wait_until(lambda: str(on_b.get("code", type=Text)) == "over TLS")
            on_b.get("code", type=Text).insert(8, ", both ways")
            await wait_until(lambda: str(on_a.get("code", type=Text)) == "over TLS, both ways")
        runner = await new_user(a.http_url, "Runner")
        assert (await runner.join(room)).status_code == 200
        answers = [
            await runner.call("POST", "/api/ratelimit/run", json={"roomId": room}) for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].json()["degraded"] is False  # counted in Redis, not failing open
    plain = url.replace("rediss://", "redis://").split("?")[0]
    with pytest.raises(redis.ConnectionError):  # TLS only: a plain client is not served
        redis.Redis.from_url(plain, socket_connect_timeout=1, socket_timeout=1).ping()


async def test_a_certificate_from_an_unknown_ca_is_refused(tls_redis: tuple[str, Path]):
    """Without the CA the TLS handshake fails: the server does not trust what it cannot check
    (the limiter fails open and the bus reports an outage, as with Redis down)."""
    url, _ = tls_redis
    untrusted = url.split("?")[0]
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(untrusted, socket_connect_timeout=2, socket_timeout=2).ping()
