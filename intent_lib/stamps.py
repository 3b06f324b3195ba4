"""Step stamps: what a training step last ran on and wrote, by content hash, so an unchanged step is reused.

A stamp (``paths.STAMPS_DIR``/<step>.json) holds the hashes of the step's inputs: its notebook's cells, the
``intent_lib`` modules it imports (the static import graph of the notebook's code), the lock file, the package's
resources and templates, the files ``paths.STEP_FILES`` says it reads, and its resolved parameters (defaults plus
overrides); and the hashes of the files it writes. A step is reused while its inputs hash as in its stamp and its
outputs are still there with their recorded hashes. Content hashes only, never modification times; files that
hold times (``VOLATILE_KEYS`` in JSON) are hashed without them, so a rerun that writes the same content does not
rerun the steps that read it.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from intent_lib.files import notebook_cells, read_json, sha256_of, write_json
from intent_lib.paths import NOTEBOOKS_DIR, REPORTS_DIR, STAMPS_DIR, STEP_FILES, TRAIN_LOCK

PACKAGE = Path(__file__).resolve().parent  # the intent_lib the runner imports, and its kernels too
PACKAGE_DATA = ("resources", "templates")  # folders of the package every step reads
# JSON keys whose values are times, durations or the commit of a run: left out of a JSON file's hash.
VOLATILE_KEYS = ("trained_at", "tuned_at", "git_commit", "seconds", "*_seconds")


def _digest(content: Any) -> str:
    """sha256 of a JSON-able value, written canonically (sorted keys)."""
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items()
                if not any(fnmatchcase(k, pattern) for pattern in VOLATILE_KEYS)}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def content_hash(path: Path) -> str | None:
    """A file's content hash (None when it does not exist): JSON without ``VOLATILE_KEYS``, ``.npz`` by its
    arrays (the zip records the time it was written), anything else by its bytes."""
    if not path.is_file():
        return None
    if path.suffix == ".json":
        return _digest(_without_volatile(read_json(path)))
    if path.suffix == ".npz":
        digest = hashlib.sha256()
        with np.load(path, allow_pickle=False) as arrays:
            for name in sorted(arrays.files):
                array = np.ascontiguousarray(arrays[name])
                digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
                digest.update(array.tobytes())
        return digest.hexdigest()
    return sha256_of(path)


def _code_source(source: str) -> str:
    """A cell's Python source without IPython's line magics and shell escapes."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def _imported_names(source: str, package: str = "") -> Iterable[str]:
    """Every module name ``source`` imports (``from a import b`` gives ``a`` and ``a.b``: b may be a module);
    relative imports are taken from ``package``, the dotted name of the package holding ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            within = package.split(".")[:len(package.split(".")) + 1 - node.level] if node.level else []
            module = ".".join(within + [node.module] * bool(node.module))
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _module_files(name: str, package: Path) -> list[Path]:
    """The package's files that importing ``name`` runs: each package ``__init__`` on the way and the module."""
    parts = name.split(".")
    if parts[0] != package.name:
        return []
    found = []
    for depth in range(1, len(parts) + 1):
        base = package.parent.joinpath(*parts[:depth])
        found += [f for f in (base / "__init__.py", base.with_suffix(".py")) if f.is_file()]
    return found


def imported_modules(sources: Iterable[str], package: Path = PACKAGE) -> list[Path]:
    """The files of ``package`` that code importing as ``sources`` do runs, following imports transitively."""
    todo, seen = [(source, "") for source in sources], set()
    while todo:
        source, within = todo.pop()
        for name in _imported_names(source, within):
            for path in _module_files(name, package):
                if path not in seen:
                    seen.add(path)
                    todo.append((path.read_text(encoding="utf-8"),
                                 ".".join(path.parent.relative_to(package.parent).parts)))
    return sorted(seen)


def _tree_hash(folders: Iterable[Path]) -> str:
    """One hash over every file under ``folders`` (relative names and bytes), compiled caches left out."""
    files = sorted(p for folder in folders if folder.is_dir() for p in folder.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    return _digest({str(p.relative_to(PACKAGE.parent)): sha256_of(p) for p in files})


def resolved_parameters(declared: dict[str, dict[str, str]], overrides: dict[str, Any]) -> dict[str, Any]:
    """A notebook's parameters as its run sees them: each default (its value when a literal, else its source
    text) replaced by the override given for it."""
    def default(source: str) -> Any:
        try:
            return ast.literal_eval(source)
        except (ValueError, SyntaxError):
            return source
    return {name: overrides[name] if name in overrides else default(spec["default"]) for name, spec in declared.items()}


def step_inputs(root: Path, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Everything the stamp of step ``name`` compares: see the module's docstring."""
    cells = notebook_cells(root / NOTEBOOKS_DIR / f"{name}.ipynb")
    code = [_code_source(c["source"]) for c in cells if c["cell_type"] == "code"]
    reads = STEP_FILES[name][0]
    return {
        "notebook": _digest(cells),
        "code": {str(p.relative_to(PACKAGE.parent)): sha256_of(p) for p in imported_modules(code)},
        "lock": content_hash(root / TRAIN_LOCK),
        "package_data": _tree_hash(PACKAGE / folder for folder in PACKAGE_DATA),
        "files": {str(path): content_hash(root / path) for path in reads},
        "parameters": json.loads(json.dumps(parameters, sort_keys=True, default=repr)),
    }


def outputs(root: Path, name: str) -> dict[str, str | None]:
    """The content hashes of the files step ``name`` writes."""
    return {str(path): content_hash(root / path) for path in STEP_FILES[name][1]}


@dataclass(frozen=True)
class Stamp:
    """A step's last run: when, how long, the hash of its inputs, and where its inputs and outputs stood."""

    step: str
    ran_at: str
    seconds: float
    inputs_sha256: str
    inputs: dict[str, Any]
    outputs: dict[str, str | None]

    @classmethod
    def read(cls, root: Path, name: str) -> "Stamp | None":
        path = root / STAMPS_DIR / f"{name}.json"
        try:
            return cls(**read_json(path))
        except (FileNotFoundError, TypeError, ValueError):
            return None


def forget(root: Path, name: str) -> None:
    """Remove a step's stamp (before it runs: a run that fails half-way must not look finished)."""
    (root / STAMPS_DIR / f"{name}.json").unlink(missing_ok=True)


def record(root: Path, name: str, inputs: dict[str, Any], started: datetime, seconds: float) -> Stamp:
    """Write the stamp of a run of step ``name`` that just finished, with the inputs hashed before it started."""
    stamp = Stamp(name, started.astimezone(timezone.utc).isoformat(), round(seconds, 1), _digest(inputs), inputs,
                  outputs(root, name))
    write_json(stamp.__dict__, root / STAMPS_DIR / f"{name}.json")
    return stamp


def reusable(root: Path, name: str, inputs: dict[str, Any]) -> Stamp | None:
    """The step's stamp when its inputs are as recorded and its outputs and report are still there, unchanged."""
    stamp = Stamp.read(root, name)
    if stamp is None or stamp.inputs_sha256 != _digest(inputs) or not (root / REPORTS_DIR / f"{name}.html").is_file():
        return None
    current = outputs(root, name)
    return stamp if None not in current.values() and current == stamp.outputs else None
