"""PairPilot: a self-hostable real-time collaborative code editor server."""

from importlib.metadata import version

__version__ = version("pairpilot")
