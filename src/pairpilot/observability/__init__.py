"""Logging, metrics and error reporting set-up."""

from __future__ import annotations

import sys


def _import_structlog_without_rich() -> None:
    """Import structlog the first time with ``rich`` hidden from it.

    ``structlog.dev`` and ``structlog.tracebacks`` import ``rich`` whenever it is installed
    (the dev group's schemathesis installs it), for the console renderer and pretty
    tracebacks; PairPilot renders JSON only. ``rich`` and the ``pygments`` it pulls in were
    7.3 MB of an idle server (bench/README.md, "Where memory goes"). Hidden only while
    structlog loads: anything else may still import ``rich``.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        import structlog  # noqa: F401, PLC0415 - the import is the point
    finally:
        del sys.modules["rich"]


_import_structlog_without_rich()
