"""Run across files: the entry imports the room's other files, in Python and in JavaScript."""

import pytest
from playwright.async_api import expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    by_test_id,
    open_file,
    run_and_wait,
    set_code,
)
from tests.support import new_user

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio

PYODIDE_TIMEOUT_MS = 120_000


async def _upload(server: LiveServer, room: str, files: dict[str, str]) -> None:
    owner = await new_user(server.http_url, "Owner")
    assert (await owner.join(room)).status_code == 200
    # A top-level main.py: the file every page opens first.
    every = {"main.py": "print('main')\n", **files}
    body = {"files": [{"name": name, "text": text} for name, text in every.items()]}
    response = await owner.call("POST", f"/api/rooms/{room}/files", json=body)
    assert response.status_code == 200, response.text


async def test_a_python_entry_imports_a_sibling_package_reads_a_data_file_and_names_room_paths(
    server: LiveServer, room: str, person: NewPerson
):
    await _upload(
        server,
        room,
        {
            "src/app.py": (
                "from utils.strings import slug\n"
                "import json, pathlib\n"
                "print(slug('Hello Room'))\n"
                "print(json.loads(pathlib.Path('data/config.json').read_text())['name'])\n"
            ),
            "src/utils/__init__.py": "",
            "src/utils/strings.py": "def slug(s):\n    return s.lower().replace(' ', '-')\n",
            "data/config.json": '{"name": "from a data file"}\n',
        },
    )
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await open_file(ada, "src/app.py")
    await by_test_id(ada, "run").click()
    for page in (ada, bob):
        await expect(by_test_id(page, "output").locator("[data-stream=stdout]")).to_have_text(
            "hello-room\nfrom a data file\n", timeout=PYODIDE_TIMEOUT_MS
        )
        await expect(by_test_id(page, "run-entry")).to_have_text("src/app.py")

    # An edit to the imported module is seen by the next run (the worker forgot the old one),
    # and an error inside it is shown at its room path.
    await open_file(ada, "src/utils/strings.py")
    await set_code(ada, "def slug(s):\n    return s.upper() + 1\n")
    await open_file(ada, "src/app.py")
    await run_and_wait(ada, "error", timeout=PYODIDE_TIMEOUT_MS)
    stderr = by_test_id(ada, "output").locator("[data-stream=stderr]")
    await expect(stderr).to_contain_text('File "src/app.py", line 3')
    await expect(stderr).to_contain_text('File "src/utils/strings.py", line 2, in slug')
    await expect(stderr).to_contain_text("TypeError")

    await set_code(ada, "import numpy\n")
    await run_and_wait(ada, "error", timeout=PYODIDE_TIMEOUT_MS)
    await expect(stderr).to_contain_text("ModuleNotFoundError")
    await expect(stderr).to_contain_text("other packages are not installed here")


async def test_a_javascript_entry_imports_other_room_files_by_relative_path(
    server: LiveServer, room: str, person: NewPerson
):
    await _upload(
        server,
        room,
        {
            "web/main.js": (
                'import { greet } from "./lib/greet.js";\n'
                'import shout from "../shared/shout";\n'
                'const { twice } = await import("./lib/twice.mjs");\n'
                'console.log(greet("room"), shout("hi"), twice(21));\n'
            ),
            "web/lib/greet.js": 'import shout from "../../shared/shout.js";\n'
            "export const greet = (who) => `hello ${who}` + shout('!');\n",
            "web/lib/twice.mjs": "export const twice = (n) => n * 2;\n",
            "shared/shout.js": "export default (s) => s.toUpperCase();\n",
            "web/broken.js": 'import { nothing } from "./missing.js";\n',
        },
    )
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await open_file(ada, "web/main.js")
    await run_and_wait(ada, "done")
    for page in (ada, bob):
        await expect(by_test_id(page, "output").locator("[data-stream=stdout]")).to_have_text(
            "hello room! HI 42\n", timeout=UI_TIMEOUT_MS
        )
        await expect(by_test_id(page, "run-entry")).to_have_text("web/main.js")

    await open_file(ada, "web/broken.js")
    await run_and_wait(ada, "error")
    await expect(by_test_id(ada, "output").locator("[data-stream=stderr]")).to_contain_text(
        'Cannot find module "./missing.js" imported from web/broken.js'
    )
