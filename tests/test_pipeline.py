"""The whole pipeline through papermill on the demo data, in a throw-away project folder."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from intent_lib.paths import RUNS_DB, RUNS_DIR, TRAIN_NOTEBOOKS
from intent_lib.tracking import EXPERIMENT
from intent_lib.pipeline import notebook_parameters

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_train(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("POSOS_", "DATA_ARCHIVE", "MLFLOW_", "TRACKING", "BASELINE"))}
    return subprocess.run([sys.executable, "-m", "intent_lib", "train", *args], cwd=root, capture_output=True,
                          text=True, env=environment | {"POSOS_ROOT": str(root), **env}, timeout=900)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("demo-project")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    return root, run_train(root, "-p", "n_resamples=50", "-p", "n_seeds=2")


def test_demo_run_succeeds_and_says_it_is_demo_data(demo_run) -> None:
    root, run = demo_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert "DEMO DATA" in run.stderr


def test_model_and_card_exist_and_agree(demo_run) -> None:
    root, _ = demo_run
    card = json.loads((root / "models" / "model_card.json").read_text())
    import hashlib
    assert hashlib.sha256((root / "models" / "intent_model.pkl").read_bytes()).hexdigest() == card["model_sha256"]
    assert card["dataset"]["source"] == "demo" and card["params_source"].startswith("defaults")


def test_metrics_json_is_sane(demo_run) -> None:
    root, _ = demo_run
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    summary = metrics["summary"]
    assert 0.5 < summary["accuracy"] <= 1 and summary["accuracy"] == pytest.approx(summary["f1_micro"])
    assert 0 <= summary["ece"] <= 1
    matrix, labels = metrics["confusion_matrix"]["matrix"], metrics["confusion_matrix"]["labels"]
    assert len(matrix) == len(labels) == len(metrics["per_intent"]) == 6
    assert sum(map(sum, matrix)) == summary["n"]
    assert sum(matrix[i][i] for i in range(len(labels))) / summary["n"] == pytest.approx(summary["accuracy"])
    scope = metrics["out_of_scope"]  # 03_evaluate: the served rule on the labelled, test and own sets
    assert scope["oof_rate"] <= scope["flagged_share"] and scope["test_questions"] == 60
    assert 0 <= scope["test_rate"] <= 1 and 0 <= scope["own_set_caught"] <= 1


def test_html_reports_open_offline_and_warn_about_demo_data(demo_run) -> None:
    root, _ = demo_run
    reports = sorted((root / "reports").glob("0*.html"))
    assert [p.stem for p in reports] == list(TRAIN_NOTEBOOKS)
    for report in reports:
        page = report.read_text()
        assert "DEMO DATA" in page and "Run metadata" in page
        assert not re.search(r'(src|href)="(https?:)?//', page), f"{report.name} loads something from the network"
        assert "cdnjs" not in page and "cdn.jsdelivr" not in page, f"{report.name} names a CDN script"
        assert "Traceback" not in page
    assert "data:image/svg+xml" in (root / "reports" / "03_evaluate.html").read_text()
    index = (root / "reports" / "index.html").read_text()
    assert all(f'href="{p.name}"' in index for p in reports)


def test_the_run_is_on_record_in_the_local_store(demo_run) -> None:
    from mlflow import MlflowClient

    root, run = demo_run
    client = MlflowClient(f"sqlite:///{root / RUNS_DIR / RUNS_DB}")
    [logged] = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert logged.info.status == "FINISHED"
    assert {f"step.{name}": "ran" for name in TRAIN_NOTEBOOKS}.items() <= logged.data.tags.items()
    summary = json.loads((root / "reports" / "metrics.json").read_text())["summary"]
    assert logged.data.metrics["val.accuracy"] == summary["accuracy"]
    assert logged.data.params["04_variability.n_resamples"] == "50"
    assert "reports/03_evaluate.html" in {f.path for f in client.list_artifacts(logged.info.run_id, "reports")}
    assert "no earlier run with the same split to compare with" in run.stdout


def test_executed_notebooks_are_kept(demo_run) -> None:
    root, _ = demo_run
    assert sorted(p.stem for p in (root / "reports" / "executed").glob("*.ipynb"))[:3] == [
        "01_split", "02_train", "03_evaluate"]


def test_a_failing_step_exits_non_zero_with_a_pointer(tmp_path: Path) -> None:
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    run = run_train(tmp_path, "--only", "02_train")  # no split yet
    assert run.returncode == 1
    assert "02_train failed" in run.stderr and "reports/executed/02_train.ipynb" in run.stderr


def test_an_unknown_parameter_stops_the_run_with_the_declared_ones(tmp_path: Path) -> None:
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    run = run_train(tmp_path, "-p", "n_seedz=7", "-p", "n_resamples=10")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "unknown parameter(s) n_seedz (did you mean n_seeds?)" in run.stderr
    assert "01_split: " in run.stderr and "split_seed=42" in run.stderr and "model_seed=0" in run.stderr
    assert "processed_dir," in run.stderr and "paths." not in run.stderr, "defaults that are code show the name"
    assert not (tmp_path / "reports").exists() and not (tmp_path / "data").exists(), "nothing ran"


def test_missing_archive_named_explicitly_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    run = run_train(tmp_path, DATA_ARCHIVE=str(tmp_path / "mine.tgz.gpg"))
    assert run.returncode == 1 and "does not exist" in run.stderr and "Traceback" not in run.stderr


def test_a_missing_notebook_is_a_one_line_error(tmp_path: Path) -> None:
    run = run_train(tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "notebook(s) not found" in run.stderr and "POSOS_ROOT" in run.stderr


def test_a_url_with_a_password_is_refused_before_it_reaches_a_report(tmp_path: Path) -> None:
    environment = os.environ | {"POSOS_ROOT": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "intent_lib", "tune", "-p", "storage=postgresql://me:s3cret@db/x"],
                         capture_output=True, text=True, env=environment, timeout=120)
    assert run.returncode == 1 and "PGPASSWORD" in run.stderr and "s3cret" not in run.stderr
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("notebook", sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb")))
def test_every_assignment_of_a_parameters_cell_can_be_overridden(notebook: str) -> None:
    """Each name a ``parameters`` cell assigns is declared (so ``-p`` accepts it), and papermill injects it."""
    path = REPO / "notebooks" / f"{notebook}.ipynb"
    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", ()))
    assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    declared = notebook_parameters(path)
    assert assigned and set(declared) == assigned
    overrides = {name: 12345 for name in declared}
    injected = parameterize_notebook(load_notebook_node(str(path)), overrides)
    source = next(c.source for c in injected.cells if "injected-parameters" in c.metadata.get("tags", ()))
    assert all(f"{name} = 12345" in source for name in declared)


def test_a_parameter_whose_comment_holds_an_equals_sign_is_declared() -> None:
    assert {"alpha", "target_accuracy"} <= set(notebook_parameters(REPO / "notebooks" / "02_train.ipynb"))
