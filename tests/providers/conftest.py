"""Fixtures shared by the provider tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The fake servers live in tests/fakes; make them importable however pytest was started.
_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
