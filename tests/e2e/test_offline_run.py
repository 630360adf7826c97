"""Run offline (issue #26): Run works in a room opened with no network, JavaScript always and
Python once this device loaded Pyodide; such a run is shown on the page only, never shared."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    by_test_id,
    create_file,
    expect_connected,
    open_file,
    open_room,
    run_and_wait,
    set_code,
)
from tests.e2e.test_offline import (
    RECONNECT_TIMEOUT_MS,
    build_id,
    expect_controlled,
    expect_saved,
    go_offline,
    open_controlled,
    serving_a_build_copy,
    wait_for_caches,
)
from tests.e2e.test_run import PYODIDE_TIMEOUT_MS

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio

LOCAL_RUN = "Offline run: shown on this page only, not shared with the room"
# What a Python start requests from /pyodide/ (the classic pyodide.js is never asked for).
PYODIDE_LOADED = [
    "/pyodide/pyodide-lock.json",
    "/pyodide/pyodide.asm.mjs",
    "/pyodide/pyodide.asm.wasm",
    "/pyodide/pyodide.mjs",
    "/pyodide/python_stdlib.zip",
]

# Whether the service worker's Pyodide caches hold exactly `wanted` (paths, sorted).
_PYODIDE_KEPT_JS = """async (wanted) => {
  const kept = [];
  for (const name of await caches.keys()) {
    if (!name.startsWith('pairpilot-pyodide-')) continue;
    const cache = await caches.open(name);
    kept.push(...(await cache.keys()).map((request) => new URL(request.url).pathname));
  }
  return JSON.stringify(kept.sort()) === JSON.stringify(wanted);
}"""


async def test_python_and_javascript_run_in_a_room_reopened_offline_once_python_was_loaded(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await expect_controlled(ada)  # the service worker sees Pyodide's files as they load
    await create_file(ada, "hello.js")
    await set_code(ada, 'console.log("js offline", 6 * 7);\n')
    await open_file(ada, "main.py")
    await set_code(ada, 'print("py offline", 6 * 7)\n')
    shared_run = await run_and_wait(ada, "done", timeout=PYODIDE_TIMEOUT_MS)
    await expect_saved(ada)
    # Kept once, one entry per file, in one cache.
    await ada.wait_for_function(_PYODIDE_KEPT_JS, arg=PYODIDE_LOADED, timeout=UI_TIMEOUT_MS)

    # No network: the page, the room and Python all come from this device.
    await go_offline(ada)
    await ada.reload()
    await expect(by_test_id(ada, "connection-status")).to_have_attribute(
        "data-state", "offline", timeout=UI_TIMEOUT_MS
    )
    output = by_test_id(ada, "output")
    for file, printed in (("main.py", "py offline 42\n"), ("hello.js", "js offline 42\n")):
        await open_file(ada, file)
        await run_and_wait(ada, "done", timeout=PYODIDE_TIMEOUT_MS)
        await expect(output.locator("[data-stream=stdout]")).to_have_text(printed)
        await expect(by_test_id(ada, "run-local")).to_have_text(LOCAL_RUN)
        await expect(by_test_id(ada, "run-status")).to_have_attribute("data-shared", "false")

    # Back online, the room still has the run made online: the offline ones stayed on the page.
    await ada.context.set_offline(offline=False)
    await expect_connected(ada, timeout=RECONNECT_TIMEOUT_MS)
    await expect_saved(ada)
    bob = await person("Bob")
    await open_room(bob, server.http_url, room, file="hello.js")
    await expect(by_test_id(bob, "run-status")).to_have_attribute(
        "data-run-id", shared_run, timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(bob, "run-local")).to_have_count(0)


async def test_a_python_run_offline_on_a_device_that_never_loaded_python_says_so(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await expect_controlled(ada)
    await go_offline(ada)

    await by_test_id(ada, "run").click()
    stderr = by_test_id(ada, "output").locator("[data-stream=stderr]")
    await expect(stderr).to_contain_text(
        "Python is not on this device yet, and it cannot be downloaded now", timeout=UI_TIMEOUT_MS
    )
    await expect(stderr).to_contain_text("Run a Python file once while online")
    await expect(by_test_id(ada, "run-status")).to_have_attribute(
        "data-status", "error", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(ada, "pyodide-loading")).to_be_hidden(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "run-local")).to_have_text(LOCAL_RUN)


async def test_a_new_client_build_keeps_the_pyodide_copy_and_another_pyodide_drops_it(
    tmp_path: Path, chromium: Path, person: NewPerson
):
    async with serving_a_build_copy(tmp_path) as (client, server):
        page = await person("Ada")
        await open_controlled(page, f"{server.http_url}/")
        worker = (client / "sw.js").read_text()
        build = build_id(worker)
        pyodide = worker.split('{"key":"')[1].split('"', maxsplit=1)[0]
        await page.evaluate("fetch('/pyodide/pyodide.mjs').then((response) => response.text())")
        kept = f"pairpilot-pyodide-{pyodide}"
        await wait_for_caches(page, sorted([f"pairpilot-client-{build}", kept]))

        # A new build with the same Pyodide: the copy stays.
        (client / "sw.js").write_text(worker.replace(build, "two"))
        await page.reload()
        await wait_for_caches(page, sorted(["pairpilot-client-two", kept]))

        # A build with another Pyodide: the old one's copy is dropped.
        (client / "sw.js").write_text(worker.replace(build, "three").replace(pyodide, "other"))
        await page.reload()
        await wait_for_caches(page, ["pairpilot-client-three"])
