"""schemathesis against the live OpenAPI schema: no 500, no response outside the schema."""

import asyncio
import re
import shutil
import sys
from pathlib import Path

import pytest
from tests.support import new_user

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(api_server: LiveServer):
    ada = await new_user(api_server.http_url, "Schema")
    await ada.join("schema-room")
    executable = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    process = await asyncio.create_subprocess_exec(
        executable,
        "run",
        f"{api_server.http_url}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--header",
        f"Authorization: Bearer {ada.token}",
        "--max-examples",
        "40",
        "--seed",
        "1",
        "--workers",
        "1",
        "--generation-database",
        "none",
        # stateful: call sequences along the links schemathesis infers from the schema (a room
        # made by join, then its members, snapshot, versions, files...), bounded by the same
        # --max-examples per scenario.
        "--phases",
        "examples,coverage,fuzzing,stateful",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 600)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "passed" in text.lower()
    # The stateful phase ran and followed links (it is skipped silently when none are found).
    links = re.search(r"API Links:\s+(\d+) covered", text)
    assert links is not None, text[-6000:]
    assert int(links.group(1)) > 0, text[-6000:]
