"""A package's top docstring lists every module it holds, and nothing else; no module is over MAX_LINES."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("intent_lib", "api")
MAX_LINES = 300  # a module past this holds more than one job: split it along its jobs (ARCHITECTURE.md)


def listed_modules(docstring: str) -> list[str]:
    """The names at the start of the docstring's indented lines (``    name  what it does``)."""
    return re.findall(r"^    (\w+)\s", docstring, flags=re.M)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_docstring_lists_every_module(package: str) -> None:
    listed = listed_modules(importlib.import_module(package).__doc__ or "")
    present = sorted(p.stem for p in (REPO / package).glob("*.py") if p.stem != "__init__")
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({m for m in listed if listed.count(m) > 1})}"
    assert sorted(listed) == present, (f"not listed: {sorted(set(present) - set(listed))}; "
                                       f"listed but absent: {sorted(set(listed) - set(present))}")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_max_lines(package: str) -> None:
    lines = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (REPO / package).glob("*.py")}
    assert {name: n for name, n in lines.items() if n > MAX_LINES} == {}
