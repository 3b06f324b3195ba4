"""The whole pipeline on the real (encrypted) dataset, when ../shared/data is beside the checkout (as in CI).

Guards against regressions only (accuracy >= 0.68, macro-F1 >= 0.54); ``make bench`` tracks the targets.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_pipeline import REPO, run_train

SHARED_DATA = REPO.parent / "shared" / "data"
pytestmark = [pytest.mark.realdata, pytest.mark.slow,
              pytest.mark.skipif(not (SHARED_DATA / "data.tgz.gpg").is_file(), reason="../shared/data is absent")]


def test_real_data_pipeline_meets_the_regression_floor(tmp_path: Path) -> None:
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    run = run_train(tmp_path, "-p", "n_seeds=2", DATA_ARCHIVE=str(SHARED_DATA / "data.tgz.gpg"),
                    POSOS_PASSPHRASE_FILE=str(SHARED_DATA / "passphrase.txt"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "DEMO DATA" not in run.stderr
    passphrase = (SHARED_DATA / "passphrase.txt").read_text().strip()
    assert passphrase not in run.stdout + run.stderr, "the passphrase was printed"
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["dataset"]["source"] == "csv" and len(metrics["per_intent"]) == 51
    assert metrics["summary"]["n"] > 1000
    assert metrics["summary"]["accuracy"] >= 0.68
    assert metrics["summary"]["f1_macro"] >= 0.54
    for report in ("01_split", "02_train", "03_evaluate", "04_variability"):
        assert "DEMO DATA" not in (tmp_path / "reports" / f"{report}.html").read_text()
