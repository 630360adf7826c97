#!/usr/bin/env bash
# Sets everything up, then runs every lint, type check and test. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "check: ruff"
uv run --locked ruff check .
uv run --locked ruff format --check .
echo "check: mypy (strict, src/)"
uv run --locked mypy
if [ -f client/package.json ]; then
  echo "check: tsc --noEmit (client/)"
  npm run --prefix client --silent typecheck
fi
echo "check: pytest"
uv run --locked pytest "$@"
