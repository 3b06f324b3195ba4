"""Step reuse on the demo data: a rerun runs only the steps whose inputs, code, parameters or outputs changed.

One throw-away project holds a copy of the package (the runner and the notebook kernels import it, through
PYTHONPATH), so a test can edit a module a step imports; the scenarios run in sequence on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intent_lib.paths import (INDEX_FILE, METRICS_PATH, PROCESSED_DIR, REPORTS_DIR, STAMPS_DIR, TRAIN_LOCK,
                              TRAIN_NOTEBOOKS, VAL_SPLIT)

REPO = Path(__file__).resolve().parents[1]
FAST = ("-p", "n_resamples=50", "-p", "n_seeds=2", "-p", "refit_full=False")  # every run passes them (02, 04, 06)
pytestmark = pytest.mark.slow


def train(root: Path, *args: str) -> list[str]:
    """Run ``python -m intent_lib train`` in ``root`` on its own copy of the package; the steps that ran."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("POSOS_", "DATA_ARCHIVE"))}
    run = subprocess.run([sys.executable, "-m", "intent_lib", "train", *FAST, *args], cwd=root, capture_output=True,
                         text=True, env=environment | {"POSOS_ROOT": str(root), "PYTHONPATH": str(root)}, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    ran = re.findall(r"running (\d\d_\w+)", run.stderr)
    reused = re.findall(r"(\d\d_\w+): reused \(unchanged since \d{4}-\d\d-\d\dT", run.stderr)
    assert sorted(ran + reused) == sorted(TRAIN_NOTEBOOKS), run.stderr[-3000:]
    return ran


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with its own intent_lib, notebooks and lock file, trained once from scratch."""
    root = tmp_path_factory.mktemp("reuse")
    for folder in ("intent_lib", "notebooks"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / TRAIN_LOCK).parent.mkdir(parents=True)
    shutil.copy(REPO / TRAIN_LOCK, root / TRAIN_LOCK)
    assert train(root) == list(TRAIN_NOTEBOOKS)
    assert sorted(p.stem for p in (root / STAMPS_DIR).glob("*.json")) == sorted(TRAIN_NOTEBOOKS)
    return root


def test_a_rerun_reuses_every_step_and_reruns_what_changed(project: Path) -> None:
    reports = {p.name: p.read_bytes() for p in (project / REPORTS_DIR).glob("0*.html")}
    assert train(project) == []
    assert {p.name: p.read_bytes() for p in (project / REPORTS_DIR).glob("0*.html")} == reports, "reports stay"
    index = (project / REPORTS_DIR / INDEX_FILE).read_text(encoding="utf-8")
    for name in TRAIN_NOTEBOOKS:
        assert re.search(rf'{name}</a></td><td>reused</td><td>\d{{4}}-[^<]+</td><td><code>[0-9a-f]{{12}}', index)

    module = project / "intent_lib" / "data_quality.py"  # imported by 06_data_quality alone
    module.write_text(module.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert train(project) == ["06_data_quality"]

    (project / METRICS_PATH).unlink()  # a deleted output
    assert train(project) == ["03_evaluate"]
    val = project / PROCESSED_DIR / VAL_SPLIT
    val.write_text(val.read_text(encoding="utf-8") + "999999,edited,0\n", encoding="utf-8")  # a modified output
    assert train(project) == ["01_split"], "01 wrote the same split again: nothing downstream reruns"
    index = (project / REPORTS_DIR / INDEX_FILE).read_text(encoding="utf-8")
    assert "01_split</a></td><td>ran</td>" in index and "02_train</a></td><td>reused</td>" in index


def test_a_parameter_change_reruns_its_step_and_what_reads_its_outputs(project: Path) -> None:
    assert train(project, "-p", "n_examples=5") == ["03_evaluate"]
    assert train(project, "-p", "n_examples=5", "-p", "model_seed=1") == [
        "02_train", "03_evaluate", "04_variability", "06_data_quality"]
    assert train(project, "-p", "n_examples=5", "-p", "model_seed=1") == []  # --force: tests/test_schedule.py
