#!/bin/sh
# Installs everything the test suite needs into the virtual environment whose python is $PYTHON.
set -eu
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m pip install --quiet --upgrade pip
# The CPU build of torch first, pinned, so the diffusers extra does not pull a CUDA build.
"$PYTHON" -m pip install --quiet "torch==2.13.0"
"$PYTHON" -m pip install --quiet -e ".[dev,diffusers]"
# The browser tests drive Debian's Chromium headless (never a downloaded browser build).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq chromium
  else
    echo "Chromium is missing: run 'sudo apt-get install -y chromium' (browser tests need /usr/bin/chromium)." >&2
  fi
fi
# axe-core (the accessibility checks the browser tests inject), from the npm registry at the locked version.
if command -v npm >/dev/null 2>&1; then
  npm ci --prefix tests/web --no-audit --no-fund --silent
else
  echo "npm is missing: install Node.js so the browser tests can run axe-core (tests/web/package.json)." >&2
fi
