"""Data quality: planted label errors found and ranked first, conflicting duplicates grouped once, test profile,
the relabel experiment, and notebook 06 on the demo data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from intent_lib import data_quality as dq
from intent_lib import question_profile, relabel
from intent_lib import pipeline
from intent_lib.evaluation import validation_predictions
from intent_lib.intents import intent_names
from intent_lib.model import ModelParams
from intent_lib.paths import DATA_QUALITY_PATH, LABEL_ISSUES_PATH, PREDICTIONS_DIR, PROCESSED_DIR, REPORTS_DIR
from intent_lib.refit import SplitData
from intent_lib.split import Split
from intent_lib.predictions import StalePredictionsError

# Label errors planted in intent_lib/resources/demo: ID -> the intent the question really asks about.
PLANTED = {400: 47, 401: 42, 402: 44, 403: 7, 404: 28, 405: 34, 406: 47, 407: 7}


@pytest.fixture(scope="module")
def demo_issues(trained_model_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled demo questions (training rows, then validation rows) and their ranked label issues."""
    split = Split.read(trained_model_dir / PROCESSED_DIR)
    labelled, classes, proba = dq.held_out_proba(trained_model_dir / PREDICTIONS_DIR, *split.frames(trained_model_dir))
    return labelled, dq.label_issues(labelled, classes, proba, intent_names([int(c) for c in classes]))


def test_planted_label_errors_rank_at_the_top(demo_issues: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    labelled, issues = demo_issues
    assert set(PLANTED) <= set(labelled["ID"]) and len(issues) < len(labelled) / 5
    ranks = issues.set_index("ID")["rank"]
    assert set(PLANTED) <= set(ranks.index), "every planted error is flagged"
    assert set(issues["ID"].head(4)) <= set(PLANTED), "the most doubtful questions are planted ones"
    assert ranks[list(PLANTED)].max() <= 2 * len(PLANTED), ranks[list(PLANTED)].to_dict()
    planted = issues[issues["ID"].isin(PLANTED)]
    assert (planted["suggested_intent"] == planted["ID"].map(PLANTED)).mean() >= 0.75
    assert issues["quality"].is_monotonic_increasing and list(issues["rank"]) == list(range(1, len(issues) + 1))


def test_issue_rows_name_both_intents_and_never_suggest_the_given_one(
        demo_issues: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    labelled, issues = demo_issues
    assert tuple(issues.columns) == dq.ISSUE_COLUMNS
    assert (issues["suggested_intent"] != issues["given_intent"]).all()
    assert issues["given_name"].str.len().gt(0).all() and issues["suggested_name"].str.len().gt(0).all()
    given = labelled.set_index("ID")["intention"]
    assert (issues["given_intent"].to_numpy() == given[issues["ID"]].to_numpy()).all()
    per_intent = dq.issues_per_intent(issues, labelled, intent_names())
    assert per_intent["issues"].sum() == len(issues) and per_intent["questions"].sum() == len(labelled)
    assert dq.issue_pairs(issues, intent_names())["issues"].sum() == len(issues)


def test_label_issues_follow_the_probabilities() -> None:
    frame = pd.DataFrame({"ID": np.arange(60), "question": ["q"] * 60, "intention": np.repeat([3, 5, 8], 20)})
    proba = np.full((60, 3), 0.05)
    proba[np.arange(60), np.repeat([0, 1, 2], 20)] = 0.9
    proba[7] = [0.02, 0.03, 0.95]  # labelled 3, clearly an 8
    proba[45] = [0.005, 0.985, 0.01]  # labelled 8, clearly a 5: more doubtful than row 7
    issues = dq.label_issues(frame, np.array([3, 5, 8]), proba, {3: "a", 5: "b", 8: "c"})
    assert issues["ID"].tolist() == [45, 7]
    assert issues["suggested_intent"].tolist() == [5, 8] and issues["suggested_name"].tolist() == ["b", "c"]


def test_predictions_from_another_split_are_refused(trained_model_dir: Path) -> None:
    train, val = Split.read(trained_model_dir / PROCESSED_DIR).frames(trained_model_dir)
    stranger = val.assign(ID=val["ID"] + 10**6)
    with pytest.raises(StalePredictionsError, match="make train"):
        dq.held_out_proba(trained_model_dir / PREDICTIONS_DIR, train, stranger)


def test_conflicting_duplicates_are_grouped_once() -> None:
    questions = {
        1: "Doliprane enceinte ?", 2: "doliprane, enceinte", 3: "DOLIPRANE ENCEINTE !!", 4: "Dolipràne enceinte",
        5: "quelle posologie pour le spasfon chez l'adulte ?", 6: "quelle posologie pour le spasfon chez un adulte ?",
        7: "kardegic remboursé ?", 8: "kardegic rembourse", 9: "smecta et gaviscon ensemble ?", 10: "?!", 11: "",
    }
    intents = {1: 44, 2: 44, 3: 48, 4: 44, 5: 42, 6: 14, 7: 47, 8: 47, 9: 34, 10: 39, 11: 28}
    frame = pd.DataFrame({"ID": list(questions), "question": list(questions.values()),
                          "intention": [intents[i] for i in questions]}).sample(frac=1, random_state=3)
    groups = dq.duplicate_groups(frame)
    members = groups.groupby("group")["ID"].apply(sorted).tolist()
    assert sorted(members) == [[1, 2, 3, 4], [5, 6], [7, 8]]  # junk and unrelated questions belong to no group
    assert groups.groupby("group")["kind"].first().tolist() == ["exact", "near", "exact"]
    conflicts = dq.conflict_table(groups, intent_names())
    assert len(conflicts) == 2 and conflicts["questions"].tolist() == [4, 2]
    assert conflicts["intents"].iloc[0].startswith("44 · ") and "(3)" in conflicts["intents"].iloc[0]
    assert dq.duplicate_counts(groups) == {
        "exact_groups": 2, "exact_conflicting_groups": 1, "exact_questions": 6, "exact_conflicting_questions": 4,
        "near_groups": 1, "near_conflicting_groups": 1, "near_questions": 2, "near_conflicting_questions": 2}


def test_planted_duplicates_of_the_demo_data_are_found(demo_frame: pd.DataFrame) -> None:
    conflicts = dq.conflict_table(dq.duplicate_groups(demo_frame), intent_names())
    found = {(row.kind, frozenset(map(int, row.IDs.split()))) for row in conflicts.itertuples()}
    assert found >= {("exact", frozenset({18, 406})), ("near", frozenset({6, 407}))}


def test_junk_and_language() -> None:
    assert [question_profile.junk_reason(t) for t in ["", "  ", "???", "ab ?", "#### 12 §§ a b c ####", "doliprane ?"]] == [
        "empty", "empty", "no letters", "too short", "mostly symbols", ""]
    stop_words = question_profile._stop_words()
    guess = lambda text: question_profile.guess_language(question_profile.WORDS.findall(question_profile.fold_text(text)), stop_words)  # noqa: E731
    assert guess("Can I take this drug with my other medicine?") == "en"
    assert guess("Est-ce que je peux le prendre avec mon autre traitement ?") == "fr"
    assert guess("doliprane 1000") == "unknown"
    assert guess("is it ok ? c'est pour ma fille") == "fr"  # one stop word more than French is not enough


def test_test_profile_counts_what_differs() -> None:
    labelled = ["doliprane enceinte ?", "posologie du spasfon ?", "spasfon et doliprane ensemble ?"] * 10
    labelled[0] = "doliprane enceinte, urgent ?"  # the only labelled question with "urgent"
    test = ["doliprane enceinte ?", "pyostatine enceinte ?", "", "What is the dose of this medicine for a child?",
            " ".join(["spasfon"] * 40)]
    comparison = question_profile.compare_test(labelled, test)
    assert comparison.test["unseen_words"].tolist() == [0, 1, 0, 10, 0]
    summary = comparison.summary().set_index("flag")
    counts = dict(zip(summary.index, summary["test"]))
    assert comparison.long_words == 4 and list(counts.values()) == [2, 1, 2, 2, 1, 1]
    assert summary["labelled"].tolist() == [0, 0, 1, 0, 0, 0] and summary["test_share"].iloc[0] == pytest.approx(2 / 5)
    examples = comparison.examples()
    assert examples["another language than French"] == ["What is the dose of this medicine for a child?"]
    assert examples["at least one unseen word"] == [], "all of them are in the next list"
    assert examples["half or more of its words unseen"] == [test[3], "pyostatine enceinte ?"]
    assert examples["empty or junk"] == [""]


def test_relabel_experiment_pairs_every_variant_with_the_baseline(trained_model_dir: Path) -> None:
    split = Split.read(trained_model_dir / PROCESSED_DIR)
    train, val = split.frames(trained_model_dir)
    train_issues = relabel.training_issues(train, ModelParams(), intent_names())
    experiment = relabel.relabel_experiment(SplitData(split, trained_model_dir), train["ID"], train_issues, ModelParams(),
                                       [2, None], n_resamples=40)
    results = experiment.results.set_index("variant")
    assert list(results.index) == ["baseline", "without top 2", "relabelled top 2", f"without all {len(train_issues)}",
                                   f"relabelled all {len(train_issues)}"]
    assert results["changed"].tolist() == [0, 2, 2, len(train_issues), len(train_issues)]
    proba, classes = validation_predictions(trained_model_dir / PREDICTIONS_DIR, val)  # the train-split model's (02)
    assert results.loc["baseline", "accuracy"] == pytest.approx((classes[proba.argmax(axis=1)] == val["intention"]).mean())
    assert (results.loc["baseline", ["accuracy_diff", "accuracy_diff_low", "accuracy_diff_high"]] == 0).all()
    for metric in ("accuracy", "f1_macro"):
        assert (results[f"{metric}_diff_low"] <= results[f"{metric}_diff"] + 1e-9).all()
        assert (results[f"{metric}_diff"] <= results[f"{metric}_diff_high"] + 1e-9).all()
    assert isinstance(experiment.helps(), bool)


@pytest.mark.slow
def test_data_quality_notebook_writes_its_files(project: Path, demo_frame: pd.DataFrame) -> None:
    root = project
    pipeline.run_notebooks(root, ("06_data_quality",),
                           {"run_experiment": True, "experiment_tops": [3], "n_resamples": 40})
    issues = pd.read_csv(root / LABEL_ISSUES_PATH)
    assert tuple(issues.columns) == dq.ISSUE_COLUMNS and set(issues["ID"].head(4)) <= set(PLANTED)
    record = json.loads((root / DATA_QUALITY_PATH).read_text(encoding="utf-8"))
    assert record["label_issues"]["count"] == len(issues)
    assert record["labelled_questions"] == len(demo_frame)
    assert record["duplicates"]["counts"]["exact_conflicting_groups"] >= 1
    assert record["test"]["questions"] == 60 and len(record["test"]["flags"]) == 6
    assert [r["variant"] for r in record["relabel_experiment"]["results"]] == ["baseline", "without top 3",
                                                                               "relabelled top 3"]
    html = (root / REPORTS_DIR / "06_data_quality.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/svg+xml') == 4 and "Conflicting duplicates" in html
    assert not re.search(r"""(src|href)=["']https?://""", html), "the report must open offline"
