"""The runner's schedule: which steps wait for which, and that independent steps run at the same time.

Papermill and nbconvert are replaced by stand-ins, so these tests run no kernel: they check the order, the
concurrency and what a failure stops, not the notebooks.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from intent_lib import pipeline
from intent_lib.paths import EMBEDDING_CACHE_ENV, STAMPS_DIR, STEP_FILES, TRAIN_NOTEBOOKS

REPO = Path(__file__).resolve().parents[1]
INDEPENDENT = ("03_evaluate", "04_variability", "06_data_quality")  # all read 02's outputs, none another's


def test_each_step_waits_for_the_steps_whose_outputs_it_reads() -> None:
    waits = pipeline.upstream(TRAIN_NOTEBOOKS)
    assert waits["01_split"] == set()
    assert waits["02_train"] == {"01_split"}
    for name in INDEPENDENT:
        assert waits[name] == {"01_split", "02_train"}
    assert pipeline.upstream((*TRAIN_NOTEBOOKS, "05_tune"))["05_tune"] == set(TRAIN_NOTEBOOKS), \
        "an undeclared step waits for every earlier one"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    monkeypatch.setenv(EMBEDDING_CACHE_ENV, str(tmp_path / "cache"))  # run_notebooks sets it for its kernels
    return tmp_path


def fake_steps(monkeypatch: pytest.MonkeyPatch, execute: Any) -> list[str]:
    """Replace papermill and nbconvert; return the list of steps executed, in order of their end."""
    ended: list[str] = []

    def run(root: Path, name: str, output: Path, parameters: dict[str, Any], progress_bar: bool = True) -> None:
        execute(name, progress_bar)
        ended.append(name)

    monkeypatch.setattr(pipeline, "_execute", run)
    monkeypatch.setattr(pipeline, "render_html", lambda executed, step, run: step.html.parent.mkdir(exist_ok=True))
    return ended


def test_independent_steps_run_at_the_same_time_and_only_lone_steps_show_a_progress_bar(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    together = threading.Barrier(len(INDEPENDENT), timeout=30)  # broken unless all three are running at once
    bars: dict[str, bool] = {}

    def execute(name: str, progress_bar: bool) -> None:
        bars[name] = progress_bar
        if name in INDEPENDENT:
            together.wait()

    ended = fake_steps(monkeypatch, execute)
    run = pipeline.run_notebooks(project, TRAIN_NOTEBOOKS, {})
    assert ended[:2] == ["01_split", "02_train"] and sorted(ended[2:]) == sorted(INDEPENDENT)
    assert sorted(s.name for s in run.steps) == sorted(TRAIN_NOTEBOOKS)
    assert bars == {"01_split": True, "02_train": True} | dict.fromkeys(INDEPENDENT, False)
    assert sorted(p.stem for p in (project / STAMPS_DIR).glob("*.json")) == sorted(TRAIN_NOTEBOOKS)


def test_a_failed_step_starts_nothing_that_waits_for_it(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def execute(name: str, progress_bar: bool) -> None:
        if name == "02_train":
            raise pipeline.PipelineError("02_train failed in cell 3")

    ended = fake_steps(monkeypatch, execute)
    with pytest.raises(pipeline.PipelineError, match="02_train failed"):
        pipeline.run_notebooks(project, TRAIN_NOTEBOOKS, {})
    assert ended == ["01_split"]


def test_a_failure_lets_the_steps_beside_it_finish_then_is_raised(project: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    evaluate_failed = threading.Event()

    def execute(name: str, progress_bar: bool) -> None:
        if name == "03_evaluate":
            evaluate_failed.set()
            raise pipeline.PipelineError("03_evaluate failed in cell 5")
        if name in INDEPENDENT:
            assert evaluate_failed.wait(timeout=30)  # still running when 03 fails

    ended = fake_steps(monkeypatch, execute)
    with pytest.raises(pipeline.PipelineError, match="03_evaluate failed"):
        pipeline.run_notebooks(project, TRAIN_NOTEBOOKS, {})
    assert sorted(ended) == sorted(["01_split", "02_train", "04_variability", "06_data_quality"])
    assert not (project / STAMPS_DIR / "03_evaluate.json").exists()
    assert (project / STAMPS_DIR / "04_variability.json").exists(), "a step that finished keeps its stamp"


def write_outputs(root: Path, name: str) -> None:
    """What step ``name`` writes, as small valid files (the stamps read JSON and .npz by content)."""
    for path in (root / p for p in STEP_FILES[name][1]):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".npz":
            np.savez(path, values=np.arange(3))
        else:
            path.write_text("{}" if path.suffix == ".json" else name, encoding="utf-8")


def test_force_reruns_every_step_that_a_rerun_reuses(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ended = fake_steps(monkeypatch, lambda name, progress_bar: write_outputs(project, name))
    monkeypatch.setattr(pipeline, "write_index", lambda *args, **kwargs: None)  # it reads a real split's record
    monkeypatch.setattr(pipeline, "render_html", lambda executed, step, run: step.html.write_text(step.name))
    pipeline.run_notebooks(project, TRAIN_NOTEBOOKS, {})
    ended.clear()
    assert pipeline.run_notebooks(project, TRAIN_NOTEBOOKS, {}).reused and ended == [], "nothing changed: all reused"
    pipeline.run_notebooks(project, TRAIN_NOTEBOOKS, {}, force=True)
    assert sorted(ended) == sorted(TRAIN_NOTEBOOKS)
