"""Run / Stop: JavaScript and Python in a worker, output shared, Stop, the Run limit."""

import re
import time
from pathlib import Path

import pytest
from playwright.async_api import expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    by_test_id,
    create_file,
    editor_content,
    expect_connected,
    expect_editor_text,
    open_file,
    open_room,
    run_and_wait,
    set_code,
    type_at_end,
)

from pairpilot.testing import LiveServer, live_server, quick_settings

pytestmark = pytest.mark.anyio

# The first Python run downloads and starts Pyodide from /pyodide/: slow on a loaded machine.
PYODIDE_TIMEOUT_MS = 120_000


async def test_a_javascript_run_prints_its_output_in_both_pages(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await create_file(ada, "hello.js")
    code = 'console.log("js says", 6 * 7);\nconsole.error("to stderr");\n'
    await set_code(ada, code)
    await open_file(bob, "hello.js")
    await expect_editor_text(bob, code)

    await run_and_wait(ada, "done")

    for page in (ada, bob):
        output = by_test_id(page, "output")
        await expect(output.locator("[data-stream=stdout]")).to_have_text(
            "js says 42\n", timeout=UI_TIMEOUT_MS
        )
        await expect(output.locator("[data-stream=stderr]")).to_have_text(
            "to stderr\n", timeout=UI_TIMEOUT_MS
        )
        await expect(by_test_id(page, "run-status")).to_have_attribute(
            "data-status", "done", timeout=UI_TIMEOUT_MS
        )


async def test_a_python_run_loads_pyodide_and_prints_in_both_pages(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await set_code(ada, 'import sys\nprint("py says", 6 * 7, sys.version_info.major)\n')
    await expect_editor_text(bob, 'import sys\nprint("py says", 6 * 7, sys.version_info.major)\n')

    await by_test_id(ada, "run").click()
    await expect(by_test_id(ada, "pyodide-loading")).to_be_visible(timeout=UI_TIMEOUT_MS)
    for page in (ada, bob):
        await expect(by_test_id(page, "output").locator("[data-stream=stdout]")).to_have_text(
            "py says 42 3\n", timeout=PYODIDE_TIMEOUT_MS
        )
        await expect(by_test_id(page, "run-status")).to_have_attribute(
            "data-status", "done", timeout=UI_TIMEOUT_MS
        )
    await expect(by_test_id(ada, "pyodide-loading")).to_be_hidden(timeout=UI_TIMEOUT_MS)

    # Pyodide stays loaded: an error is shown from the user's own frame, in both pages.
    await set_code(ada, "def f():\n    return 1 / 0\n\nf()\n")
    await run_and_wait(ada, "error")
    for page in (ada, bob):
        stderr = by_test_id(page, "output").locator("[data-stream=stderr]")
        await expect(stderr).to_contain_text("ZeroDivisionError", timeout=UI_TIMEOUT_MS)
        await expect(stderr).to_contain_text('File "main.py", line 4', timeout=UI_TIMEOUT_MS)
        await expect(stderr).not_to_contain_text("_pyodide")


async def test_a_python_infinite_loop_is_stopped_and_python_runs_again(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await set_code(ada, 'print("spinning", flush=True)\nwhile True:\n    pass\n')
    await by_test_id(ada, "run").click()
    await expect(by_test_id(ada, "output")).to_contain_text("spinning", timeout=PYODIDE_TIMEOUT_MS)
    await by_test_id(ada, "stop").click()
    await expect(by_test_id(ada, "run-status")).to_have_attribute(
        "data-status", "stopped", timeout=UI_TIMEOUT_MS
    )

    # The stopped worker is gone; the next run loads Python again and works.
    await set_code(ada, 'print("back")\n')
    await run_and_wait(ada, "done", timeout=PYODIDE_TIMEOUT_MS)
    await expect(by_test_id(ada, "output").locator("[data-stream=stdout]")).to_have_text(
        "back\n", timeout=UI_TIMEOUT_MS
    )


async def test_an_endless_run_is_ended_by_the_time_limit(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await create_file(ada, "forever.js")
    await set_code(ada, "for (;;) {}\n")
    await by_test_id(ada, "run").click()
    for page in (ada, bob):
        # The limit is 10 s of user code; allow for a loaded machine.
        await expect(by_test_id(page, "run-status")).to_have_attribute(
            "data-status", "timeout", timeout=60_000
        )
        await expect(by_test_id(page, "output")).to_contain_text(
            "Time limit of 10 s reached", timeout=UI_TIMEOUT_MS
        )
    await type_at_end(ada, "// still responsive")
    await expect(editor_content(ada)).to_contain_text("// still responsive")


async def test_stop_ends_an_infinite_loop_and_the_page_stays_responsive(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await create_file(ada, "loop.js")
    await set_code(ada, 'console.log("looping");\nwhile (true) {}\n')

    await by_test_id(ada, "run").click()
    await expect(by_test_id(bob, "run-status")).to_have_attribute(
        "data-status", "running", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(ada, "stop")).to_be_enabled(timeout=UI_TIMEOUT_MS)
    await by_test_id(ada, "stop").click()

    for page in (ada, bob):
        await expect(by_test_id(page, "run-status")).to_have_attribute(
            "data-status", "stopped", timeout=UI_TIMEOUT_MS
        )
        await expect(by_test_id(page, "output")).to_contain_text(
            "Stopped by Ada", timeout=UI_TIMEOUT_MS
        )
    # The page still reacts: typing works and reaches the other person.
    await open_file(bob, "loop.js")
    await type_at_end(ada, "// after the stop")
    await expect(editor_content(bob)).to_contain_text("// after the stop", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "run")).to_be_enabled(timeout=UI_TIMEOUT_MS)


async def test_another_person_can_stop_a_run(server: LiveServer, room: str, person: NewPerson):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await create_file(ada, "loop.js")
    await set_code(ada, "while (true) {}\n")

    await by_test_id(ada, "run").click()
    await expect(by_test_id(bob, "stop")).to_be_enabled(timeout=UI_TIMEOUT_MS)
    await by_test_id(bob, "stop").click()

    for page in (ada, bob):
        await expect(by_test_id(page, "run-status")).to_have_attribute(
            "data-status", "stopped", timeout=UI_TIMEOUT_MS
        )
        await expect(by_test_id(page, "output")).to_contain_text(
            "Stopped by Bob", timeout=UI_TIMEOUT_MS
        )


async def test_the_fourth_run_within_a_minute_shows_the_limit_message(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await create_file(ada, "count.js")
    await set_code(ada, 'console.log("ran");\n')
    for _ in range(3):
        await run_and_wait(ada, "done")
        await expect(by_test_id(ada, "rate-limit-message")).to_be_hidden()

    await expect(by_test_id(ada, "run")).to_be_enabled(timeout=UI_TIMEOUT_MS)
    await by_test_id(ada, "run").click()
    message = by_test_id(ada, "rate-limit-message")
    await expect(message).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(message).to_have_text(
        re.compile(r"^Run limit reached — try again in [1-9]\d* s$"), timeout=UI_TIMEOUT_MS
    )
    seconds = int(re.findall(r"\d+", await message.inner_text())[0])
    assert seconds <= 60
    # Nothing ran: the shared run is still the third one.
    await expect(by_test_id(ada, "run-status")).to_have_attribute("data-status", "done")

    # The limit is per person: Bob, in the same room, still runs.
    bob = await person("Bob")
    await open_room(bob, server.http_url, room, file="count.js")
    await set_code(bob, 'console.log("Bob ran");\n')
    run_id = await run_and_wait(bob, "done")
    await expect(by_test_id(bob, "rate-limit-message")).to_be_hidden()
    await expect(by_test_id(ada, "run-status")).to_have_attribute(
        "data-run-id", run_id, timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(ada, "output")).to_have_text("Bob ran\n", timeout=UI_TIMEOUT_MS)


async def test_someone_who_arrives_later_sees_the_last_run(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await create_file(ada, "early.js")
    await set_code(ada, 'console.log("before you came");\n')
    await run_and_wait(ada, "done")

    bob = await person("Bob")
    await open_room(bob, server.http_url, room, file="early.js")
    await expect(by_test_id(bob, "run-status")).to_have_attribute(
        "data-status", "done", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(bob, "output").locator("[data-stream=stdout]")).to_have_text(
        "before you came\n", timeout=UI_TIMEOUT_MS
    )


async def test_a_run_does_not_stay_running_when_its_runner_leaves(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await create_file(ada, "loop.js")
    await set_code(ada, "while (true) {}\n")
    await by_test_id(ada, "run").click()
    await expect(by_test_id(bob, "run-status")).to_have_attribute(
        "data-status", "running", timeout=UI_TIMEOUT_MS
    )

    await ada.close()
    ada_for_bob = by_test_id(bob, "participant").filter(has_text="Ada")
    await expect(ada_for_bob).to_have_attribute("data-online", "false", timeout=UI_TIMEOUT_MS)
    # Ada's page ends its run as it goes (pagehide); nobody has to press Stop.
    await expect(by_test_id(bob, "run-status")).to_have_attribute(
        "data-status", "stopped", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(bob, "output")).to_contain_text("Ada left the room")


async def test_run_works_again_once_the_limit_window_has_passed(
    tmp_path: Path, room: str, person: NewPerson
):
    async with live_server(quick_settings(tmp_path, run_limit=1, run_window_s=3)) as server:
        ada = await person("Ada")
        await open_room(ada, server.http_url, room)
        await create_file(ada, "again.js")
        await set_code(ada, 'console.log("allowed");\n')
        first = await run_and_wait(ada, "done")

        message = by_test_id(ada, "rate-limit-message")
        await by_test_id(ada, "run").click()
        await expect(message).to_have_text(
            re.compile(r"^Run limit reached — try again in [1-3] s$"), timeout=UI_TIMEOUT_MS
        )

        # Press Run again (bounded) until the window has passed: the message goes, the run runs.
        deadline = time.monotonic() + 60
        run_status = by_test_id(ada, "run-status")
        while await run_status.get_attribute("data-run-id") == first:
            assert time.monotonic() < deadline, "Run stayed limited after its window"
            await expect(by_test_id(ada, "run")).to_be_enabled(timeout=UI_TIMEOUT_MS)
            await by_test_id(ada, "run").click()
            await ada.wait_for_timeout(500)  # pacing between presses, not an assertion
        await expect(run_status).to_have_attribute("data-status", "done", timeout=UI_TIMEOUT_MS)
        await expect(message).to_be_hidden()


async def test_a_flood_of_output_is_truncated_for_everyone(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await create_file(ada, "flood.js")
    await set_code(ada, 'for (let i = 0; i < 100000; i++) console.log("0123456789");\n')
    await run_and_wait(ada, "done", timeout=60_000)
    for page in (ada, bob):
        system = by_test_id(page, "output").locator("[data-stream=system]")
        await expect(system).to_have_text(
            "[output truncated after 200000 characters]\n", timeout=UI_TIMEOUT_MS
        )
    length = (
        await by_test_id(bob, "output")
        .locator("[data-stream=stdout]")
        .evaluate_all("(spans) => spans.reduce((n, span) => n + span.textContent.length, 0)")
    )
    assert length == 200_000
    await expect_connected(bob)
