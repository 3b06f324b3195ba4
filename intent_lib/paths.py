"""Where the project's files live: every path is relative to the repository root."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_MARKER = "pyproject.toml"


def project_root() -> Path:
    """The repository root: ``POSOS_ROOT`` if set, else the nearest parent of the cwd holding pyproject.toml."""
    if env := os.environ.get("POSOS_ROOT"):
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / ROOT_MARKER).is_file():
            return candidate
    return here


def resolve(path: str | os.PathLike[str]) -> Path:
    """An absolute path: absolute paths stay, relative ones are taken from the project root."""
    p = Path(path)
    return p if p.is_absolute() else project_root() / p
