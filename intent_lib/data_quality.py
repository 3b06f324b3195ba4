"""Know the data (notebook 06_data_quality): likely label errors, conflicting duplicates, how the test questions differ.

* Label issues: every labelled question gets calibrated probabilities from a model that never saw it, with
  no refit: the 5-fold out-of-fold probabilities 02_train saved in ``paths.PREDICTIONS_DIR``. cleanlab's ``find_label_issues`` flags the questions whose
  given intent these probabilities doubt, ranked by ``get_label_quality_scores`` (self-confidence: the
  probability of the given intent, lowest first).
* Conflicting duplicates: questions equal after normalisation (exact) or with a cosine of at least
  ``threshold`` between their TF-IDF vectors of character 3-5-grams (near), joined into groups (connected
  components), kept when a group carries more than one intent. Each conflict is one group.
* The report's record (``data_quality.json``) gathers these with the test profile (``question_profile``) and the
  relabel experiment (``relabel``); the notebook's charts are in ``charts``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
with warnings.catch_warnings():  # cleanlab imports tqdm.auto, which warns in a kernel without ipywidgets
    warnings.filterwarnings("ignore", message="IProgress not found")
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import TfidfVectorizer

from intent_lib.features import clean_text, fold_text
from intent_lib.files import write_json
from intent_lib.intents import intent_label
from intent_lib.paths import held_out_predictions_path
from intent_lib.question_profile import WORDS, TestComparison
from intent_lib.predictions import load_predictions

if TYPE_CHECKING:
    from intent_lib.relabel import RelabelExperiment

ISSUE_COLUMNS = ("rank", "ID", "question", "given_intent", "given_name", "suggested_intent", "suggested_name",
                 "quality", "given_probability", "suggested_probability")
NEAR_THRESHOLD = 0.9  # character TF-IDF cosine above which two questions count as near duplicates


# --------------------------------------------------------------------------------------------- label issues
def held_out_proba(predictions_dir: Path, train: pd.DataFrame,
                   val: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Every labelled question with probabilities from a model that never saw it, and no refit: what
    02_train saved in ``predictions_dir`` (out-of-fold probabilities; the validation rows' predictions when the
    served model did not see them). ``StalePredictionsError`` when they were written for another split.

    Returns the labelled frame (training rows, then validation rows), the classes and the probabilities.
    """
    labelled = pd.concat([train, val], ignore_index=True)
    proba, classes = load_predictions(held_out_predictions_path(predictions_dir), labelled)
    return labelled, classes, proba


def label_issues(frame: pd.DataFrame, classes: np.ndarray, proba: np.ndarray, names: dict[int, str]) -> pd.DataFrame:
    """The questions cleanlab flags as likely mislabelled, most doubtful first (``ISSUE_COLUMNS``).

    ``frame`` holds ID, question, intention in the row order of ``proba``. The suggested intent is the most
    probable one other than the given one.
    """
    given = np.searchsorted(classes, frame["intention"].to_numpy())
    flagged = find_label_issues(given, proba, filter_by="prune_by_noise_rate", n_jobs=1)
    quality = get_label_quality_scores(given, proba, method="self_confidence")
    others = proba.copy()
    others[np.arange(len(given)), given] = -1.0
    suggested = others.argmax(axis=1)
    rows = np.flatnonzero(flagged)
    rows = rows[np.lexsort((frame["ID"].to_numpy()[rows], quality[rows]))]
    table = pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1), "ID": frame["ID"].to_numpy()[rows],
        "question": frame["question"].to_numpy()[rows],
        "given_intent": classes[given[rows]], "given_name": [names.get(int(c), "") for c in classes[given[rows]]],
        "suggested_intent": classes[suggested[rows]],
        "suggested_name": [names.get(int(c), "") for c in classes[suggested[rows]]],
        "quality": quality[rows], "given_probability": proba[rows, given[rows]],
        "suggested_probability": proba[rows, suggested[rows]],
    })
    return table[list(ISSUE_COLUMNS)]


def issues_per_intent(issues: pd.DataFrame, frame: pd.DataFrame, names: dict[int, str]) -> pd.DataFrame:
    """Per given intent: labelled questions, flagged questions and their share, most flagged first."""
    table = pd.DataFrame({"questions": frame["intention"].value_counts()})
    table["issues"] = issues["given_intent"].value_counts().reindex(table.index, fill_value=0)
    table["share"] = table["issues"] / table["questions"]
    table = table.rename_axis("intent").reset_index()
    table.insert(1, "name", [names.get(int(i), "") for i in table["intent"]])
    table["label"] = [intent_label(i, names) for i in table["intent"]]
    return table.sort_values(["issues", "intent"], ascending=[False, True]).reset_index(drop=True)


def issue_pairs(issues: pd.DataFrame, names: dict[int, str]) -> pd.DataFrame:
    """Given → suggested intent pairs of the flagged questions, with counts, most frequent first."""
    pairs = issues.groupby(["given_intent", "suggested_intent"]).size().rename("issues").reset_index()
    pairs["given"] = [intent_label(i, names) for i in pairs["given_intent"]]
    pairs["suggested"] = [intent_label(i, names) for i in pairs["suggested_intent"]]
    pairs["pair"] = pairs["given"] + "  →  " + pairs["suggested"]
    return pairs.sort_values(["issues", "given_intent", "suggested_intent"], ascending=[False, True, True]
                             ).reset_index(drop=True)


# --------------------------------------------------------------------------------------------- duplicates
def normalise(text: object) -> str:
    """The comparison form of a question: cleaned, lower-cased, accents folded, words only."""
    return " ".join(WORDS.findall(fold_text(clean_text(text))))


def duplicate_groups(frame: pd.DataFrame, threshold: float = NEAR_THRESHOLD) -> pd.DataFrame:
    """Groups of two or more questions that are equal after ``normalise`` or close (cosine >= ``threshold``).

    One row per question in a group: group, kind (``exact`` when all its normalised texts are equal, else
    ``near``), intents (distinct intents in the group), conflicting, ID, question, intention. Questions that
    normalise to nothing are left out (they are junk, not duplicates).
    """
    norm = pd.Series([normalise(q) for q in frame["question"]], index=frame.index)
    keep = np.flatnonzero(norm.str.len().to_numpy() > 0)
    texts = norm.to_numpy()[keep]
    _, exact_code = np.unique(texts, return_inverse=True)
    membership = sparse.csr_matrix((np.ones(len(keep)), (np.arange(len(keep)), exact_code)))
    links = membership @ membership.T  # questions sharing a normalised text
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(texts)
    close = near_pairs(vectors, threshold)
    _, group = connected_components(links + close, directed=False)
    members = frame.iloc[keep].assign(norm=texts, group=group)
    size = members.groupby("group")["ID"].transform("size")
    members = members[size > 1]
    grouped = members.groupby("group")
    members = members.assign(
        kind=np.where(grouped["norm"].transform("nunique") == 1, "exact", "near"),
        intents=grouped["intention"].transform("nunique"),
    )
    members["conflicting"] = members["intents"] > 1
    # Number groups by first ID so the numbering does not depend on the row order.
    first = members.groupby("group")["ID"].transform("min")
    members["group"] = pd.factorize(first, sort=True)[0] + 1
    columns = ["group", "kind", "intents", "conflicting", "ID", "question", "intention"]
    return members.sort_values(["group", "intention", "ID"])[columns].reset_index(drop=True)


def near_pairs(vectors: sparse.csr_matrix, threshold: float, chunk: int = 1000) -> sparse.csr_matrix:
    """Symmetric adjacency of the rows whose cosine (rows are L2-normalised) is at least ``threshold``."""
    blocks = []
    for start in range(0, vectors.shape[0], chunk):
        similarity = (vectors[start:start + chunk] @ vectors.T).tocsr()
        similarity.data = (similarity.data >= threshold).astype(float)
        similarity.eliminate_zeros()
        blocks.append(similarity)
    return sparse.vstack(blocks).tocsr()


def conflict_table(groups: pd.DataFrame, names: dict[int, str]) -> pd.DataFrame:
    """One row per conflicting group: kind, size, intents with their counts (most frequent first), questions."""
    conflicts = groups[groups["conflicting"]]
    rows = []
    for number, members in conflicts.groupby("group", sort=True):
        counts = members["intention"].value_counts()
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        rows.append({"group": int(number), "kind": members["kind"].iloc[0], "questions": len(members),
                     "intents": " / ".join(f"{intent_label(i, names)} ({n})" for i, n in counts.items()),
                     "IDs": " ".join(str(i) for i in members["ID"]),
                     "examples": " | ".join(dict.fromkeys(members["question"]))})
    return pd.DataFrame(rows, columns=["group", "kind", "questions", "intents", "IDs", "examples"])


def duplicate_counts(groups: pd.DataFrame) -> dict[str, int]:
    """Groups and questions, all and conflicting, per kind."""
    per_group = groups.drop_duplicates("group")
    counts: dict[str, int] = {}
    for kind in ("exact", "near"):
        of_kind = groups[groups["kind"] == kind]
        heads = per_group[per_group["kind"] == kind]
        counts |= {f"{kind}_groups": len(heads), f"{kind}_conflicting_groups": int(heads["conflicting"].sum()),
                   f"{kind}_questions": len(of_kind),
                   f"{kind}_conflicting_questions": int(of_kind["conflicting"].sum())}
    return counts


# --------------------------------------------------------------------------------------------- record
def write_issues(issues: pd.DataFrame, path: Path) -> None:
    """``label_issues.csv``: the ranked issues, one row per question."""
    path.parent.mkdir(parents=True, exist_ok=True)
    issues.to_csv(path, index=False, float_format="%.4g")


def quality_record(*, dataset: dict[str, Any], parameters: dict[str, Any], issues: pd.DataFrame,
                   per_intent: pd.DataFrame, pairs: pd.DataFrame, groups: pd.DataFrame, conflicts: pd.DataFrame,
                   comparison: TestComparison | None, experiment: RelabelExperiment | None,
                   labelled_rows: int) -> dict[str, Any]:
    """The content of ``reports/data_quality.json``."""
    return {
        "dataset": dataset,
        "parameters": parameters,
        "labelled_questions": labelled_rows,
        "label_issues": {
            "what": "cleanlab find_label_issues (prune_by_noise_rate) on held-out calibrated probabilities of all "
                    "labelled questions, ranked by self-confidence; the full list is in the CSV file beside this one",
            "count": len(issues),
            "per_intent": [{"intent": int(r.intent), "name": r.name, "questions": int(r.questions),
                            "issues": int(r.issues)} for r in per_intent.itertuples() if r.issues],
            "pairs": [{"given": int(r.given_intent), "suggested": int(r.suggested_intent), "issues": int(r.issues)}
                      for r in pairs.itertuples()],
        },
        "duplicates": {
            "what": "questions equal after normalisation (exact) or with character TF-IDF cosine >= near_threshold "
                    "(near), grouped by connected components",
            "counts": duplicate_counts(groups),
            "conflicting_groups": [{"group": int(r.group), "kind": r.kind,
                                    "questions": [{"ID": int(m.ID), "question": m.question, "intent": int(m.intention)}
                                                  for m in groups[groups["group"] == r.group].itertuples()]}
                                   for r in conflicts.itertuples()],
        },
        "test": None if comparison is None else {
            "questions": len(comparison.test),
            "flags": comparison.summary().to_dict(orient="records"),
            "examples": comparison.examples(),
        },
        "relabel_experiment": None if experiment is None else {
            "what": "issues found on the training split only; refits scored on the validation split, paired "
                    "bootstrap differences against the baseline",
            "confidence": experiment.confidence, "helps": experiment.helps(),
            "training_issues": len(experiment.issues),
            "results": experiment.results.to_dict(orient="records"),
        },
    }


def write_record(record: dict[str, Any], path: Path) -> None:
    """``data_quality.json``."""
    write_json(record, path, default=_plain)


def _plain(value: object) -> object:
    """numpy scalars as Python numbers for json."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
