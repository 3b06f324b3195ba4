"""Small file helpers every step shares: content hashes and atomic JSON writes."""

from __future__ import annotations

import hashlib
import json
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Callable


def sha256_of(*paths: Path | Traversable) -> str:
    """One sha256 over the bytes of one or several files, in order, read in chunks."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def write_json(content: Any, path: Path, default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``content`` as indented UTF-8 JSON, atomically (a reader never sees half a file); make the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=2, ensure_ascii=False, default=default), encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def notebook_cells(path: Path) -> list[dict[str, Any]]:
    """A notebook's cells as ``{"cell_type", "source", "tags"}``, its source one string. Read as JSON: nbformat
    imports jsonschema, seconds that a rerun reusing every step does not need."""
    def text(source: str | list[str]) -> str:
        return source if isinstance(source, str) else "".join(source)
    return [{"cell_type": c["cell_type"], "source": text(c["source"]), "tags": list(c.get("metadata", {}).get("tags", []))}
            for c in read_json(path)["cells"]]
