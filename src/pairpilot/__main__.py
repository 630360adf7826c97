"""`python -m pairpilot` is the `pairpilot` command."""

from pairpilot.cli import main

main()
