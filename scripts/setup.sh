#!/usr/bin/env bash
# Installs everything PairPilot needs on a fresh machine of this kind. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium drives the browser tests (Playwright never downloads a browser here).
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium"
  if [ "$(id -u)" -eq 0 ]; then apt_get="apt-get"; else apt_get="sudo apt-get"; fi
  $apt_get update -qq
  DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq chromium >/dev/null
fi

# ss (iproute2) and pgrep (procps): the multi-worker test looks at which process holds a socket;
# openssl: the Redis-over-TLS test makes its own CA.
for tool in ss:iproute2 pgrep:procps openssl:openssl; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    echo "setup: installing ${tool#*:}"
    if [ "$(id -u)" -eq 0 ]; then apt_get="apt-get"; else apt_get="sudo apt-get"; fi
    $apt_get update -qq
    DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq "${tool#*:}" >/dev/null
  fi
done

if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv (pip)"
  python3 -m pip install --quiet uv
fi
echo "setup: python dependencies (uv sync --locked)"
# Bytecode compiled once here: a machine with PYTHONDONTWRITEBYTECODE set otherwise compiles
# every module from source at each start (4 s and 8 MB of a server's start, bench/README.md).
uv sync --locked --quiet --compile-bytecode

echo "setup: npm packages of the interop peer"
npm ci --prefix tests/interop --no-audit --no-fund --silent

if [ -f client/package.json ]; then
  echo "setup: building the browser client"
  npm ci --prefix client --no-audit --no-fund --silent
  npm run --prefix client --silent build
fi
