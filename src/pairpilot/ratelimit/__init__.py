"""The Run button's limiter: sliding window per (room, user), failing open."""

from pairpilot.ratelimit.limiter import Decision, RunLimiter, build_run_limiter

__all__ = ["Decision", "RunLimiter", "build_run_limiter"]
