"""Rate limits on the `limits` library, failing open: the Run button's and the guardrails'."""

from pairpilot.ratelimit.limiter import (
    Decision,
    LimitStorage,
    RunLimiter,
    build_limit_storage,
    build_run_limiter,
)
from pairpilot.ratelimit.throttle import Throttle

__all__ = [
    "Decision",
    "LimitStorage",
    "RunLimiter",
    "Throttle",
    "build_limit_storage",
    "build_run_limiter",
]
