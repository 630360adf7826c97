"""What the test suite needs beyond pairpilot.testing: CI's rule for missing services."""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str) -> None:
    """Fail in CI (a missing service is a broken CI), skip with one line elsewhere."""
    if IN_CI:
        pytest.fail(f"CI requires {what}")
    pytest.skip(what)
