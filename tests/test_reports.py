"""How the HTML reports present a run: the header's dataset line and the page template."""

from __future__ import annotations

from pathlib import Path

import nbformat

from intent_lib.data import DatasetInfo
from intent_lib.pipeline import Run, StepResult, describe_dataset, render_html

CSV_SHA, ARCHIVE_SHA = "6d5dc2" + "0" * 58, "147857" + "1" * 58


def test_the_dataset_line_names_each_hash_without_nested_brackets() -> None:
    line = describe_dataset(DatasetInfo("archive", "data.tgz.gpg", CSV_SHA, ARCHIVE_SHA))
    assert line == "decrypted from data.tgz.gpg (archive sha256 147857111111…), CSV sha256 6d5dc2000000…"
    assert describe_dataset(DatasetInfo("csv", "data", CSV_SHA)) == "CSV files in data/, CSV sha256 6d5dc2000000…"
    assert describe_dataset(DatasetInfo("demo", "intent_lib/resources/demo", CSV_SHA)).startswith("synthetic demo data")


def test_long_code_lines_wrap_in_the_report(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = " + "1 + " * 200 + "1")])
    executed = tmp_path / "step.ipynb"
    nbformat.write(notebook, executed)
    step = StepResult("step", 1.0, {}, tmp_path / "step.html")
    render_html(executed, step, Run(tmp_path))
    page = step.html.read_text()
    css = page[page.index(".jp-InputArea-editor pre"):]
    assert css[: css.index("}")].count("pre-wrap") == 1
