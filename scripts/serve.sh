#!/usr/bin/env bash
# Sets everything up, then serves PairPilot on the embedded default (SQLite in ./pairpilot-data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec uv run --locked pairpilot serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
