"""Shared fixtures: every test's data is made here or by the test itself, never the real dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from intent_lib.data import DEMO_DIR, DatasetInfo, load_labelled_folder
from intent_lib.model import ModelParams
from intent_lib.paths import MODEL_PATH, PROCESSED_DIR
from intent_lib.split import stratified_split, write_split
from intent_lib.training import train_and_save

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_frame() -> pd.DataFrame:
    """The demo dataset shipped in the package (synthetic, written for the project)."""
    return load_labelled_folder(DEMO_DIR)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, demo_frame: pd.DataFrame) -> Path:
    """A project-like folder with data/processed (split of the demo data) and models/ (pickle + card)."""
    root = tmp_path_factory.mktemp("project")
    train, val = stratified_split(demo_frame, val_size=0.25, seed=0)
    split = write_split(train, val, root / PROCESSED_DIR, root, seed=0, val_size=0.25,
                        dataset=DatasetInfo("demo", "fixture", "0" * 64))
    train_and_save(split, root, root / MODEL_PATH, ModelParams(), "defaults")
    return root


@pytest.fixture
def project(tmp_path: Path, trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo project with the repository's notebooks, the kernel rooted there."""
    root = tmp_path / "project"
    shutil.copytree(trained_model_dir, root)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    monkeypatch.setenv("POSOS_ROOT", str(root))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout, whatever the venv points at
    return root
