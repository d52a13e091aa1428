"""satpy is the ``worker`` extra: tests that need it skip without it on a developer's core
install, and fail in CI, where ``.ci/run`` installs the extra and sets VIIRS_TESTS_NEED_SATPY=1
(a broken extra must not turn into a green run of skipped tests)."""

from __future__ import annotations

import importlib
import os

import pytest


def satpy():
    """The satpy module, or skip (fail when VIIRS_TESTS_NEED_SATPY is set)."""
    if os.environ.get("VIIRS_TESTS_NEED_SATPY"):
        return importlib.import_module("satpy")
    return pytest.importorskip("satpy", reason="the worker extra: pip install -e '.[worker]'")
