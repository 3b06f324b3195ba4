"""System programs a test needs (Debian packages that CI installs, .ci/run): skipped with how to install them when
they are absent, except under CI (``CI`` set), where an absent program fails the test instead of hiding it."""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str, package: str) -> str:
    """The path of ``program``; skip (fail in CI) with the ``apt-get install`` line when it is not on PATH."""
    found = shutil.which(program)
    if found:
        return found
    message = f"{program} is not installed (apt-get install {package})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must have it (.ci/run installs it)")
    pytest.skip(message)
