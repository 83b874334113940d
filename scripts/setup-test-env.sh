#!/bin/sh
# Installs everything the test suite needs into the virtual environment whose python is $PYTHON.
set -eu
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m pip install --quiet --upgrade pip
# The CPU build of torch first, pinned, so the diffusers extra does not pull a CUDA build.
"$PYTHON" -m pip install --quiet "torch==2.13.0"
"$PYTHON" -m pip install --quiet -e ".[dev,diffusers]"
