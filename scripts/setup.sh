#!/usr/bin/env bash
# Installs everything PairPilot needs on a fresh machine of this kind. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv (pip)"
  python3 -m pip install --quiet uv
fi
echo "setup: python dependencies (uv sync --locked)"
uv sync --locked --quiet

echo "setup: npm packages of the interop peer"
npm ci --prefix tests/interop --no-audit --no-fund --silent

if [ -f client/package.json ]; then
  echo "setup: building the browser client"
  npm ci --prefix client --no-audit --no-fund --silent
  npm run --prefix client --silent build
fi
