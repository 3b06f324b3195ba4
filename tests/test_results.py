"""Figures nobody types: README's and docs/' generated blocks are what `make results` renders from the committed
snapshot, no figure sits outside a block, and the snapshot is distilled from a run's artefacts without questions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from intent_lib import results
from intent_lib.data import DEMO_DIR, load_labelled_folder
from intent_lib.files import read_json
from intent_lib.paths import (BENCH_MODEL_FILE, BENCH_RESULTS_DIR, CARD_FILE, METRICS_PATH, MODEL_PATH,
                              RESULTS_BLOCKS_DIR, RESULTS_PAGES, RESULTS_SNAPSHOT)
from intent_lib.results_blocks import BlockError, block_names, figures_outside_blocks, provenance, render_page

REPO = Path(__file__).resolve().parents[1]
DEMO_RUN = REPO / "tests" / "fixtures" / "demo_run"  # what `make train` and `make bench` wrote on the demo data


def page_text(page: Path) -> str:
    return (REPO / page).read_text(encoding="utf-8")


@pytest.mark.parametrize("page", RESULTS_PAGES, ids=str)
def test_every_block_is_what_make_results_renders_from_the_committed_snapshot(page: Path) -> None:
    text = page_text(page)
    assert render_page(text, read_json(REPO / RESULTS_SNAPSHOT), REPO / RESULTS_BLOCKS_DIR) == text, (
        f"{page}: a generated block differs from the snapshot's rendering: edit its template in "
        f"{RESULTS_BLOCKS_DIR}/ and run `make results RESULTS_ARGS=--render-only`, never the block")


@pytest.mark.parametrize("page", RESULTS_PAGES, ids=str)
def test_no_figure_is_typed_outside_a_block(page: Path) -> None:
    assert figures_outside_blocks(page_text(page)) == [], (
        f"{page}: a measured figure belongs in a generated block; a deliberate literal is named in a "
        "`<!-- literal: ... -->` comment on its line")


def test_every_template_is_a_block_of_a_page() -> None:
    used = {name for page in RESULTS_PAGES for name in block_names(page_text(page))}
    assert used == {p.name.removesuffix(".md.j2") for p in (REPO / RESULTS_BLOCKS_DIR).glob("*.md.j2")}


def test_figures_are_found_in_prose_and_tables_but_not_in_code_comments_or_blocks() -> None:
    text = """Accuracy 0.723 on the split, 55.5% answered, fit in 38 s, a pickle of 37.1 MB.
| figure | 0.91 / 3.2 | 7 min |
Commands and ports are no figures: `make train TRAIN_ARGS="-p alpha=0.2"`, 127.0.0.1:5000, 2,035 questions, v1.2.
Python 3.11 and a 90% target. <!-- literal: 3.11, 90% -->
A stale mark. <!-- literal: 0.5 -->
<!-- RESULTS:x START -->
accuracy 0.723
<!-- RESULTS:x END -->
```
took 12.5 s
```
"""
    assert figures_outside_blocks(text) == [
        "line 1: 0.723", "line 1: 55.5%", "line 1: 38 s", "line 1: 37.1 MB",
        "line 2: 0.91", "line 2: 3.2", "line 2: 7 min",
        "line 5: literal '0.5' is not on its line"]


def test_a_block_edited_by_hand_is_found_and_put_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project_copy(tmp_path)
    readme = root / "README.md"
    committed = readme.read_text(encoding="utf-8")
    start = committed.index("<!-- RESULTS:headline START -->")
    edited = committed[:start] + committed[start:].replace("**0.", "**1.", 1)  # the accuracy, typed over
    assert edited != committed
    readme.write_text(edited, encoding="utf-8")
    monkeypatch.setenv("POSOS_ROOT", str(root))
    assert results.main(["--check"]) == 1
    assert readme.read_text(encoding="utf-8") == edited, "--check changes nothing"
    assert results.main(["--render-only"]) == 0
    assert readme.read_text(encoding="utf-8") == committed


def project_copy(tmp_path: Path) -> Path:
    """The pages, the templates and the committed snapshot, in a project of their own."""
    root = tmp_path / "project"
    for path in (*RESULTS_PAGES, RESULTS_SNAPSHOT):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, root / path)
    shutil.copytree(REPO / RESULTS_BLOCKS_DIR, root / RESULTS_BLOCKS_DIR)
    return root


def test_make_results_distils_a_demo_run_into_every_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the demo run's artefacts: a section per artefact, every block rendered from them with the demo run's
    provenance, and no question text in the snapshot."""
    root = project_copy(tmp_path)
    shutil.copytree(DEMO_RUN, root, dirs_exist_ok=True)
    monkeypatch.setenv("POSOS_ROOT", str(root))
    committed = read_json(root / RESULTS_SNAPSHOT)
    assert results.main([]) == 1, "demo figures are refused by default"
    assert read_json(root / RESULTS_SNAPSHOT) == committed
    assert results.main(["--allow-demo"]) == 0
    snapshot = read_json(root / RESULTS_SNAPSHOT)
    assert set(snapshot["sections"]) == {"evaluation", "variability", "data_quality", "relabel", "tune",
                                         *results.BENCHES}
    card = read_json(DEMO_RUN / MODEL_PATH.parent / CARD_FILE)
    metrics = read_json(DEMO_RUN / METRICS_PATH)
    for page in RESULTS_PAGES:
        text = (root / page).read_text(encoding="utf-8")
        assert "{{" not in text and figures_outside_blocks(text) == []
        for name in block_names(text):
            block = text[text.index(f"RESULTS:{name} START"): text.index(f"RESULTS:{name} END")]
            assert "from the demo data (sha256 " + card["dataset"]["sha256"][:12] in block, (page, name)
    headline = (root / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"accuracy\s+\*\*{metrics['summary']['accuracy']:.3f}\u00a0\[", headline)
    assert results.main(["--check"]) == 0, "a second run has nothing left to change"
    snapshot_text = json.dumps(snapshot, ensure_ascii=False)
    labelled = load_labelled_folder(DEMO_DIR)
    leaked = [q for q in labelled["question"] if q in snapshot_text]
    assert leaked == [], "the snapshot holds figures, never a question"


def test_a_section_whose_artefact_is_missing_keeps_its_committed_figures(tmp_path: Path) -> None:
    shutil.copytree(DEMO_RUN, tmp_path, dirs_exist_ok=True)
    committed = {"sections": {"bench_model": {"source": {"kept": True}}}}
    (tmp_path / BENCH_RESULTS_DIR / BENCH_MODEL_FILE).unlink()
    snapshot = results.distil(tmp_path, committed)
    assert snapshot["sections"]["bench_model"] == {"source": {"kept": True}}
    assert snapshot["sections"]["evaluation"]["validation"]["n"] > 0


def test_a_block_without_its_section_says_what_to_run(tmp_path: Path) -> None:
    text = "<!-- RESULTS:relabel START -->\n<!-- RESULTS:relabel END -->\n"
    with pytest.raises(BlockError, match="no section relabel"):
        render_page(text, {"sections": {}}, REPO / RESULTS_BLOCKS_DIR)


def test_a_block_says_when_its_run_had_uncommitted_changes() -> None:
    source = {"dataset_source": "archive", "dataset_sha256": "a" * 64, "date": "2026-12-07T01:00:00+00:00"}
    assert "commit bbbbbbbbbb-dirty, 2026-12-07" in provenance(source | {"git_commit": "b" * 40 + "-dirty"})
    assert "commit bbbbbbbbbb, 2026-12-07" in provenance(source | {"git_commit": "b" * 40})
