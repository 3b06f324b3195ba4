"""Model versions on disk: a private copy of each version a server loads, and the pointer to the one in service.

A version is named by its pickle's sha12 (the first 12 hex digits of the sha256 its card records). ``prepare``
copies a model and its card into ``<state>/versions/<sha12>/`` and checks the copy (card, hash, library versions:
``load_checked`` without the unpickling, which the workers do), so what a worker loads later is the file that was
checked, whatever happens meanwhile to ``MODEL_PATH``; a model fetched from the model registry brings its record
(``registry_fields``: name and version, which ``/version`` reports). ``InService`` is the pointer: one file holding
the sha12, replaced atomically, read by the workers on every request.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from intent_lib.artefacts import ModelIntegrityError, check_file
from intent_lib.paths import IN_SERVICE_FILE, MODEL_FILE, REGISTRY_RECORD_FILE, VERSIONS_DIR, card_path


def sha12(card: dict) -> str:
    """The version name of the model a card describes."""
    return str(card["model_sha256"])[:12]


@dataclass(frozen=True)
class Version:
    sha12: str
    model_path: Path  # the private copy's pickle (its card beside it)


def prepare(model_path: Path, state_dir: Path) -> Version:
    """Copy ``model_path`` and its card into the state folder's versions and check the copy;
    ``ModelIntegrityError`` (one line, naming ``model_path``) when a check fails."""
    versions = state_dir / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=versions))
    copy = staging / MODEL_FILE
    try:
        origin = model_path.parent.resolve() / model_path.name  # one folder, even if a link moves meanwhile
        for source, target in ((origin.with_name(REGISTRY_RECORD_FILE), copy.with_name(REGISTRY_RECORD_FILE)),
                               (card_path(origin), card_path(copy)), (origin, copy)):
            if source.is_file():
                shutil.copyfile(source, target)
        try:
            name = sha12(check_file(copy))
        except ModelIntegrityError as exc:  # said of the file the operator knows, not of its copy
            raise ModelIntegrityError(str(exc).replace(str(copy.parent), str(model_path.parent))) from None
        target = versions / name
        if not target.is_dir():
            staging.rename(target)
        return Version(name, target / MODEL_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def registry_fields(model_path: Path) -> dict[str, dict]:
    """``{"registry": {"name", "version", "run_id"}}`` for a copy fetched from the model registry (the record
    ``intent_lib.model_registry`` writes beside it), else nothing."""
    try:
        return {"registry": json.loads(model_path.with_name(REGISTRY_RECORD_FILE).read_text(encoding="utf-8"))}
    except (FileNotFoundError, ValueError):
        return {}


def discard(state_dir: Path, name: str) -> None:
    """Remove a version's private copy (once no worker will load it again)."""
    shutil.rmtree(state_dir / VERSIONS_DIR / name, ignore_errors=True)


class InService:
    """The pointer to the version in service: ``<state>/in_service``, holding its sha12."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / IN_SERVICE_FILE

    def read(self) -> str | None:
        try:
            return self.path.read_text(encoding="ascii").strip() or None
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def write(self, name: str) -> None:
        """Point at ``name`` for every worker at once (an atomic replace)."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(name, encoding="ascii")
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
