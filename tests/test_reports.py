"""How the HTML reports present a run: the header's dataset line and the page template."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import nbformat

from intent_lib.data import DatasetInfo
from intent_lib.pipeline import Run, StepResult, describe_dataset, render_html

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
