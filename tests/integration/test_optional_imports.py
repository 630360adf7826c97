"""A server imports what its configuration uses, and no more (issue #16: memory).

Each check runs in a fresh interpreter: the test process itself has imported everything.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import unavailable

OPTIONAL = (
    "sentry_sdk",
    "redis",
    "httpx",
    "rich",
    "pygments",
    # FastAPI itself loads the OpenTelemetry API (fastapi.telemetry); the SDK, its exporter and
    # protobuf and requests (the exporter's HTTP client) are what tracing would add.
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "google.protobuf",
    "requests",
    "standardwebhooks",
)

# The app a `pairpilot serve` with this environment would run, built but not started.
BUILD_APP = """
import json, sys
from pairpilot.cli import parser
from pairpilot.observability.logging import configure_logging
from pairpilot.settings import load_settings
from pairpilot.web import create_app
from pairpilot.web.server import make_server

settings = load_settings()
make_server(create_app(settings), "127.0.0.1", 0)
print(json.dumps({name: name in sys.modules for name in sys.argv[1:]}))
"""


def _unconfigured_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAIRPILOT_", "SENTRY"))}
    for name in ("REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)
    env["PAIRPILOT_DATA_DIR"] = str(tmp_path / "data")
    env.update(extra)
    return env


def _loaded(code: str, env: dict[str, str], *names: str) -> dict[str, bool]:
    out = subprocess.run(
        [sys.executable, "-c", code, *names],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_the_serve_command_loads_structlog_without_rich(tmp_path: Path):
    if importlib.util.find_spec("rich") is None:  # the dev group installs it (schemathesis)
        unavailable("rich (the dev dependency group) to show structlog loads without it")
    code = (
        "import json, sys\n"
        "import pairpilot.observability.logging, structlog\n"  # what `serve` imports
        "before = {n: n in sys.modules for n in sys.argv[1:]}\n"
        "import rich.console\n"  # anything else may still use rich
        "print(json.dumps({**before, 'structlog_rich': structlog.dev.rich is not None}))\n"
    )
    loaded = _loaded(code, _unconfigured_env(tmp_path), "rich", "pygments")
    assert loaded == {"rich": False, "pygments": False, "structlog_rich": False}


def test_the_console_scripts_module_imports_no_settings_logging_or_framework(tmp_path: Path):
    # The compaction's merge worker is spawned: it imports the console script's module again.
    heavy = ("pydantic", "pydantic_settings", "structlog", "asyncio", "sqlalchemy", "fastapi")
    code = "import json, sys\nimport pairpilot.cli\n"
    code += "print(json.dumps({n: n in sys.modules for n in sys.argv[1:]}))\n"
    assert _loaded(code, _unconfigured_env(tmp_path), *heavy) == dict.fromkeys(heavy, False)


def test_sentry_functions_do_nothing_and_import_nothing_while_sentry_is_off(tmp_path: Path):
    code = (
        "import json, sys\n"
        "from pairpilot.observability.sentry import close_sentry, is_on, report, set_tag\n"
        "report(RuntimeError('x'), room_id='r')\n"
        "set_tag('user_id', 'u')\n"
        "close_sentry()\n"
        "print(json.dumps({'on': is_on(), 'sentry_sdk': 'sentry_sdk' in sys.modules}))\n"
    )
    assert _loaded(code, _unconfigured_env(tmp_path)) == {"on": False, "sentry_sdk": False}


def test_a_dsn_imports_and_starts_sentry(tmp_path: Path):
    env = _unconfigured_env(tmp_path, SENTRY_DSN="http://public@127.0.0.1:9/1")
    code = BUILD_APP.replace(
        "print(", "from pairpilot.observability.sentry import is_on\nassert is_on()\nprint("
    )
    assert _loaded(code, env, "sentry_sdk") == {"sentry_sdk": True}


def test_the_unconfigured_app_imports_no_sentry_redis_or_httpx(tmp_path: Path):
    loaded = _loaded(BUILD_APP, _unconfigured_env(tmp_path), *OPTIONAL)
    assert loaded == dict.fromkeys(OPTIONAL, False)


# The app's start-up (its lifespan: the embedded database migrated if it needs it), twice.
START_APP = """
import asyncio, json, sys
from pairpilot.settings import load_settings
from pairpilot.web import create_app

async def start() -> None:
    app = create_app(load_settings())
    async with app.router.lifespan_context(app):
        pass

asyncio.run(start())
print(json.dumps({name: name in sys.modules for name in sys.argv[1:]}))
"""


def test_alembic_is_imported_only_when_the_embedded_database_needs_migrating(tmp_path: Path):
    env = _unconfigured_env(tmp_path)
    assert _loaded(START_APP, env, "alembic") == {"alembic": True}  # a new database
    assert _loaded(START_APP, env, "alembic") == {"alembic": False}  # already at head


def test_tracing_loads_opentelemetry_only_with_an_otlp_endpoint(tmp_path: Path):
    names = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http", "google.protobuf")
    env = _unconfigured_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert _loaded(BUILD_APP, env, *names) == dict.fromkeys(names, True)
    off = _unconfigured_env(tmp_path)
    off.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    assert _loaded(BUILD_APP, off, *names) == dict.fromkeys(names, False)


def test_span_and_tag_do_nothing_and_import_nothing_while_tracing_is_off(tmp_path: Path):
    code = (
        "import json, sys\n"
        "from pairpilot.observability.tracing import close_tracing, span, tag\n"
        "with span('room.load', room_id='r'):\n"
        "    tag(user_id='u')\n"
        "close_tracing()\n"
        "print(json.dumps({n: n in sys.modules for n in sys.argv[1:]}))\n"
    )
    names = ("opentelemetry.sdk", "opentelemetry.exporter", "google.protobuf", "requests")
    assert _loaded(code, _unconfigured_env(tmp_path), *names) == dict.fromkeys(names, False)
