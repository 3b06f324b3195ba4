"""How the HTML reports present a run: the header's dataset line, the page template, and the index page."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import numpy as np

from intent_lib import stamps
from intent_lib.comparison import compare_predictions
from intent_lib.data import DatasetInfo
from intent_lib.intents import intent_names
from intent_lib.paths import REPORTS_DIR
from intent_lib.pipeline import Run, StepResult, describe_dataset, render_html, write_index

CSV_SHA, ARCHIVE_SHA = "6d5dc2" + "0" * 58, "147857" + "1" * 58


def test_the_dataset_line_names_each_hash_without_nested_brackets() -> None:
    line = describe_dataset(DatasetInfo("archive", "archive sha256 147857111111", CSV_SHA, ARCHIVE_SHA))
    assert line == "decrypted from an archive (sha256 147857111111…), CSV sha256 6d5dc2000000…"
    assert describe_dataset(DatasetInfo("csv", "data", CSV_SHA)) == "CSV files in data/, CSV sha256 6d5dc2000000…"
    assert describe_dataset(DatasetInfo("demo", "intent_lib/resources/demo", CSV_SHA)).startswith("synthetic demo data")


def test_the_header_gives_the_notebooks_own_start_and_long_code_lines_wrap(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = " + "1 + " * 200 + "1")])
    executed = tmp_path / "step.ipynb"
    nbformat.write(notebook, executed)
    run = Run(tmp_path, started=datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc))
    step = StepResult("step", datetime(2026, 1, 1, 9, 5, tzinfo=timezone.utc), 1.0, {}, tmp_path / "step.html")
    render_html(executed, step, run)
    page = step.html.read_text()
    css = page[page.index(".jp-InputArea-editor pre"):]
    assert css[: css.index("}")].count("pre-wrap") == 1
    assert "started 2026-01-01T09:05:00+00:00" in page, "the header gives the notebook's own start"


def _reports(root: Path) -> Run:
    """A project whose 01 ran in this run, 02 was reused and 03 is not in it; 01 and 02 stamped."""
    reports = root / REPORTS_DIR
    reports.mkdir(parents=True)
    for name in ("01_split", "02_train", "03_evaluate"):
        (reports / f"{name}.html").write_text("<html></html>")
    stamps.record(root, "01_split", {"a": 1}, datetime(2026, 1, 2, 9, 0, tzinfo=timezone.utc), 8.4)
    stamps.record(root, "02_train", {"b": 2}, datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc), 61.0)
    run = Run(root, started=datetime(2026, 1, 2, 9, 0, tzinfo=timezone.utc))
    run.steps.append(StepResult("01_split", run.started, 8.4, {}, reports / "01_split.html"))
    run.reused.append("02_train")
    return run


def _comparison() -> dict:
    """A real comparison: the baseline misses intent 3 entirely, this run gets it right."""
    y = np.repeat([1, 2, 3], 60)
    ours = y.copy()
    theirs = np.where(y == 3, 1, y)
    content = compare_predictions(y, ours, theirs, [1, 2, 3], n_resamples=400).to_dict()
    return content | {"run_id": "run-b", "baseline_run_id": "run-a", "line": "vs run run-a: ..."}


def test_the_index_says_what_each_step_did_when_and_how_long_styled_like_the_reports(tmp_path: Path) -> None:
    run = _reports(tmp_path)
    page = write_index(run).read_text(encoding="utf-8")
    rows = re.findall(r"<tr><td><a href=\"(\w+)\.html\">\w+</a></td><td>([^<]+)</td><td>([^<]+)</td>"
                      r"<td>(.*?)</td><td class=\"num\">([^<]*)</td></tr>", page)
    assert [r[:3] for r in rows] == [("01_split", "ran", "2026-01-02 09:00:00"),
                                     ("02_train", "reused", "2026-01-01 08:00:00"),
                                     ("03_evaluate", "not in this run", rows[2][2])]
    assert [r[4] for r in rows] == ["8 s", "1 min 01 s", ""]
    assert re.fullmatch(r"<code>[0-9a-f]{12}…</code>", rows[0][3]) and rows[2][3] == "not stamped"
    assert "ran 01_split and reused 02_train" in page
    assert "font-family: system-ui" in page and "tbody tr:nth-child(odd)" in page, "the reports' look"
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "No comparison for this run" in page


def test_the_index_shows_this_run_against_its_baseline(tmp_path: Path) -> None:
    page = write_index(_reports(tmp_path), _comparison()).read_text(encoding="utf-8")
    assert re.search(r"<td>Δ accuracy</td><td class=\"num\">\+0\.333 \[\+0\.\d{3}, \+0\.\d{3}\]</td>"
                     r"<td>beyond noise</td>", page)
    assert "<td>Δ macro-F1</td>" in page
    assert "Verdict: <b>accuracy up, macro-F1 up beyond noise</b>" in page
    assert "run <code>run-a</code>" in page and "180 validation questions" in page
    intents = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>([^<]*)</td>", page)
    assert ("3", intent_names([3])[3]) in intents, "the intent that changed, by number and name"
    assert "Benjamini–Hochberg over 3 intents" in page


def test_the_index_says_when_no_run_compares(tmp_path: Path) -> None:
    no_baseline = {"run_id": "run-b", "baseline_run_id": None,
                   "line": "no earlier run with the same split to compare with"}
    page = write_index(_reports(tmp_path), no_baseline).read_text(encoding="utf-8")
    assert "No comparable run: no earlier run with the same split to compare with." in page
    assert "Verdict" not in page
    unreadable = {"run_id": "run-b", "baseline_run_id": "run-a",
                  "line": "vs run run-a: not comparable, its validation predictions cover other rows"}
    page = write_index(_reports(tmp_path / "other"), unreadable).read_text(encoding="utf-8")
    assert ("Run <code>run-a</code> is the baseline, but not comparable: its validation predictions cover other "
            "rows.") in page
