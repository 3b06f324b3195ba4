"""The model card: what a pickled model is, where it came from and how well it did.

Written beside the pickle (``paths.card_path``); ``artefacts.load_checked`` reads it to check the pickle's
sha256 and the library versions before unpickling.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from intent_lib import __version__
from intent_lib.files import read_json
from intent_lib.paths import MODEL_FILE, card_path, project_root

# Libraries whose version must match between training and serving for a pickle to load and behave the same.
PICKLE_LIBRARIES = ("scikit-learn", "numpy", "scipy", "spacy")
REPORTED_LIBRARIES = (*PICKLE_LIBRARIES, "pandas", "posos-intent")


def library_versions(names: tuple[str, ...] = REPORTED_LIBRARIES) -> dict[str, str]:
    versions = {name: metadata.version(name) for name in names}
    return versions | {"python": platform.python_version()}


def git_commit() -> str:
    """``POSOS_GIT_COMMIT`` (set for containers), else the checkout's commit (``-dirty`` with changes), else unknown."""
    if env := os.environ.get("POSOS_GIT_COMMIT"):
        return env
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=project_root(), capture_output=True,  # noqa: E731
                                        text=True, timeout=10, check=True).stdout.strip()
        return run("rev-parse", "HEAD") + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_card(*, model_sha256: str, dataset: dict[str, Any], split: dict[str, Any], training: dict[str, Any],
               params: dict[str, Any], params_source: str, labels: list[int], names: dict[int, str],
               validation: dict[str, float], uncertainty: dict[str, Any],
               encoder: dict[str, str] | None, out_of_scope: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card's content. ``validation`` holds the train-split model's validation metrics; ``training`` says
    which rows the saved model was fitted on; ``uncertainty`` its unsure threshold and conformal set threshold;
    ``out_of_scope`` its scope rule (``intent_lib.scope``; None for a model without sentence encoder)."""
    trained_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return {
        "model_version": f"{__version__}+{model_sha256[:12]}",
        "trained_at": trained_at,
        "model_sha256": model_sha256,
        "git_commit": git_commit(),
        "dataset": dataset,
        "split": split,
        "training": training,
        "params": params,
        "params_source": params_source,
        "labels": labels,
        "names": {str(k): v for k, v in names.items()},
        "validation": validation,
        "validation_note": "validation metrics are those of the model fitted on the train split only"
                           + (", before the refit on every labelled row" if training.get("refit_full") else ""),
        "uncertainty": uncertainty,
        "out_of_scope": out_of_scope,
        "encoder": encoder,
        "libraries": library_versions(),
    }


def version_mismatches(card: dict[str, Any]) -> list[str]:
    """Human-readable differences between the card's pickle libraries (and sentence encoder) and the installed ones."""
    installed = library_versions(PICKLE_LIBRARIES)
    trained = card.get("libraries", {})
    found = [f"{name} {trained.get(name, '?')} at training, {installed[name]} here"
             for name in PICKLE_LIBRARIES if trained.get(name) != installed[name]]
    if encoder := card.get("encoder"):
        try:
            here = metadata.version(encoder["package"])
        except metadata.PackageNotFoundError:
            here = "not installed"
        if here != encoder["version"]:
            found.append(f"{encoder['package']} {encoder['version']} at training, {here} here")
    return found


def same_build(*model_dirs: str) -> tuple[bool, str]:
    """Whether the models in two folders have the same bytes (their cards' sha256), and a line saying so; when
    they differ, the line names what differs among what must match for equal bytes (libraries, data, parameters)."""
    first, second = (read_json(card_path(Path(folder) / MODEL_FILE)) for folder in model_dirs)
    if first["model_sha256"] == second["model_sha256"]:
        return True, f"same model: sha256 {first['model_sha256']}"
    differing = [key for key in ("libraries", "encoder", "dataset", "split", "params")
                 if first.get(key) != second.get(key)]
    return False, (f"different models: sha256 {first['model_sha256'][:12]}… and {second['model_sha256'][:12]}…; "
                   f"their cards differ in {', '.join(differing) or 'nothing that should change the bytes'}")
