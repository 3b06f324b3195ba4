"""Know the data (notebook 06_data_quality): likely label errors, conflicting duplicates, how the test questions differ.

* Label issues: every labelled question gets calibrated probabilities from a model that never saw it, with
  no refit: the 5-fold out-of-fold probabilities 02_train saved beside the model. cleanlab's ``find_label_issues`` flags the questions whose
  given intent these probabilities doubt, ranked by ``get_label_quality_scores`` (self-confidence: the
  probability of the given intent, lowest first).
* Conflicting duplicates: questions equal after normalisation (exact) or with a cosine of at least
  ``threshold`` between their TF-IDF vectors of character 3-5-grams (near), joined into groups (connected
  components), kept when a group carries more than one intent. Each conflict is one group.
* Test profile: length, words of no labelled question (for a labelled one: of no other one), language (stop
  words of a few languages counted), empty or junk text; labelled and test questions side by side.
* Relabel experiment (off by default): issues found on the training rows only (one fit); the model refitted without
  the top-ranked ones and with their suggested intents; paired bootstrap on the untouched validation split.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Sequence

import altair as alt
import numpy as np
import pandas as pd
with warnings.catch_warnings():  # cleanlab imports tqdm.auto, which warns in a kernel without ipywidgets
    warnings.filterwarnings("ignore", message="IProgress not found")
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import TfidfVectorizer

from intent_lib.charts import intent_label
from intent_lib.features import clean_text, fold_text
from intent_lib.metrics import bootstrap_scores, format_interval, percentile_interval
from intent_lib.model import ModelParams, fit_model
from intent_lib.paths import held_out_predictions_path
from intent_lib.files import write_json
from intent_lib.refit import SplitData, fit_predict
from intent_lib.training import load_predictions

ISSUE_COLUMNS = ("rank", "ID", "question", "given_intent", "given_name", "suggested_intent", "suggested_name",
                 "quality", "given_probability", "suggested_probability")
NEAR_THRESHOLD = 0.9  # character TF-IDF cosine above which two questions count as near duplicates
LANGUAGES = ("fr", "en", "es", "it", "de", "pt")  # spaCy ships stop words for each, no model needed
MIN_LETTERS = 3  # fewer letters than this: junk
MIN_LETTER_SHARE = 0.5  # share of letters among non-space characters below which a text is junk
EXAMPLES = 5
_WORDS = re.compile(r"[^\W\d_]+")
_NONSPACE = re.compile(r"\S")


# --------------------------------------------------------------------------------------------- label issues
def held_out_proba(model_path: Path, train: pd.DataFrame,
                   val: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Every labelled question with probabilities from a model that never saw it, and no refit: what
    02_train saved beside the model (out-of-fold probabilities; the validation rows' predictions when the
    served model did not see them). ``StalePredictionsError`` when they were written for another split.

    Returns the labelled frame (training rows, then validation rows), the classes and the probabilities.
    """
    labelled = pd.concat([train, val], ignore_index=True)
    proba, classes = load_predictions(held_out_predictions_path(model_path), labelled)
    return labelled, classes, proba


def training_issues(train: pd.DataFrame, params: ModelParams, names: dict[int, str],
                    random_state: int = 0) -> pd.DataFrame:
    """Label issues of the training rows found without the validation rows: one fit on the training rows,
    whose out-of-fold probabilities feed ``label_issues`` (the relabel experiment must not peek at validation)."""
    classifier = fit_model(train["question"], train["intention"], params, random_state).named_steps["classifier"]
    return label_issues(train, classifier.classes_, classifier.oof_proba_, names)


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
    return " ".join(_WORDS.findall(fold_text(clean_text(text))))


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


# --------------------------------------------------------------------------------------------- test profile
def _stop_words() -> dict[str, frozenset[str]]:
    """Folded stop words of each language in ``LANGUAGES``."""
    return {lang: frozenset(fold_text(w) for w in import_module(f"spacy.lang.{lang}.stop_words").STOP_WORDS)
            for lang in LANGUAGES}


def guess_language(words: Sequence[str], stop_words: dict[str, frozenset[str]]) -> str:
    """The language whose stop words a text uses most (French wins ties); ``unknown`` without any stop word.

    A crude test, but enough to spot a question written in another language: it needs two stop words of that
    language more than of French.
    """
    hits = {lang: sum(w in words_of for w in words) for lang, words_of in stop_words.items()}
    best = max(hits, key=lambda lang: (hits[lang], lang == "fr"))
    if hits[best] == 0:
        return "unknown"
    return best if best == "fr" or hits[best] >= hits["fr"] + 2 else "fr"


def junk_reason(text: str) -> str:
    """Why a text is junk (``empty``, ``no letters``, ``too short``, ``mostly symbols``), or ``""``."""
    text = clean_text(text)
    letters = sum(ch.isalpha() for ch in text)
    if not text:
        return "empty"
    if letters == 0:
        return "no letters"
    if letters < MIN_LETTERS:
        return "too short"
    if letters < MIN_LETTER_SHARE * len(_NONSPACE.findall(text)):
        return "mostly symbols"
    return ""


def text_profile(texts: Sequence[object], vocabulary: set[str]) -> pd.DataFrame:
    """Per text: characters, words, words never seen in ``vocabulary`` (count and share), language, junk reason."""
    stop_words = _stop_words()
    rows = []
    for text in texts:
        cleaned = clean_text(text)
        words = _WORDS.findall(fold_text(cleaned))
        unseen = sum(w not in vocabulary for w in words)
        rows.append({"question": cleaned, "chars": len(cleaned), "words": len(words), "unseen_words": unseen,
                     "unseen_share": unseen / len(words) if words else 0.0,
                     "language": guess_language(words, stop_words), "junk": junk_reason(cleaned)})
    return pd.DataFrame(rows)


def word_questions(texts: Sequence[object]) -> Counter[str]:
    """How many of ``texts`` hold each folded word."""
    return Counter(w for t in texts for w in set(_WORDS.findall(fold_text(clean_text(t)))))


# The two vocabulary flags of the test profile (their examples are chosen so the lists do not repeat).
SOME_UNSEEN = "at least one unseen word"
MOSTLY_UNSEEN = "half or more of its words unseen"


@dataclass
class TestComparison:
    """Labelled and test questions profiled alike, and the flags that say where they differ."""

    labelled: pd.DataFrame  # text_profile of the labelled questions, unseen words: those of no other labelled one
    test: pd.DataFrame  # text_profile of the test questions against the labelled vocabulary
    long_words: int  # the labelled questions' 99th percentile of words

    def flags(self, profile: pd.DataFrame) -> dict[str, pd.Series]:
        """Boolean masks over ``profile``: what makes a question unlike the labelled ones."""
        return {
            f"longer than {self.long_words} words (labelled 99th percentile)": profile["words"] > self.long_words,
            "one word or fewer": profile["words"] <= 1,
            SOME_UNSEEN: profile["unseen_words"] > 0,
            MOSTLY_UNSEEN: (profile["unseen_share"] >= 0.5) & (profile["words"] > 0),
            "another language than French": ~profile["language"].isin(["fr", "unknown"]),
            "empty or junk": profile["junk"] != "",
        }

    def summary(self) -> pd.DataFrame:
        """flag, labelled count and share, test count and share."""
        rows = []
        for (flag, in_labelled), in_test in zip(self.flags(self.labelled).items(), self.flags(self.test).values()):
            rows.append({"flag": flag, "labelled": int(in_labelled.sum()), "labelled_share": float(in_labelled.mean()),
                         "test": int(in_test.sum()), "test_share": float(in_test.mean())})
        return pd.DataFrame(rows)

    def examples(self, n: int = EXAMPLES) -> dict[str, list[str]]:
        """Up to ``n`` test questions per flag: most unseen words first for the vocabulary flags (the "at least
        one" list leaves out the questions of the "half or more" one), else longest first."""
        flags = self.flags(self.test)
        out = {}
        for flag, mask in flags.items():
            shown = mask & ~flags[MOSTLY_UNSEEN] if flag == SOME_UNSEEN else mask
            key = "unseen_share" if flag in (SOME_UNSEEN, MOSTLY_UNSEEN) else "words"
            out[flag] = self.test[shown].sort_values(key, ascending=False, kind="stable")["question"].head(n).tolist()
        return out

    def lengths(self) -> pd.DataFrame:
        """Long table for a histogram: set (labelled or test), words."""
        return pd.concat([self.labelled[["words"]].assign(set="labelled"), self.test[["words"]].assign(set="test")],
                         ignore_index=True)


def compare_test(labelled: Sequence[object], test: Sequence[object]) -> TestComparison:
    """Profile both sets. A test question's unseen words are those of no labelled question; a labelled
    question's, those of no other labelled question (what a model trained without it would not know)."""
    counts = word_questions(labelled)
    labelled_profile = text_profile(labelled, {w for w, n in counts.items() if n > 1})
    seen = set(counts)
    long_words = int(np.percentile(labelled_profile["words"], 99)) if len(labelled_profile) else 0
    return TestComparison(labelled_profile, text_profile(test, seen), long_words)


# --------------------------------------------------------------------------------------------- experiment
@dataclass
class RelabelExperiment:
    """Validation scores of the model refitted on cleaned training labels, paired with the unchanged model."""

    issues: pd.DataFrame  # label_issues of the training split
    results: pd.DataFrame  # variant, changed, accuracy/f1_macro point, interval, difference and its interval
    confidence: float

    def helps(self) -> bool:
        """Whether some variant beats the baseline beyond the paired interval on both accuracy and macro-F1."""
        changed = self.results[self.results["variant"] != "baseline"]
        return bool(((changed["accuracy_diff_low"] > 0) & (changed["f1_macro_diff_low"] > 0)).any())


def relabel_experiment(data: SplitData, train_ids: Sequence[int], train_issues: pd.DataFrame, params: ModelParams,
                       tops: Sequence[int | None], n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
                       random_state: int = 0) -> RelabelExperiment:
    """Refit without the top ``k`` issues of the training split (``None``: all) and with their suggested
    intents instead; score every variant on the validation rows with one paired bootstrap.

    ``train_issues`` are ``label_issues`` of the training rows only (found on their out-of-fold
    probabilities), ``train_ids`` the IDs of ``data``'s training rows in order.
    """
    variants = {"baseline": (data.train_rows, data.y_train, 0)}
    for top in tops:
        picked = train_issues.head(top) if top is not None else train_issues
        label = f"top {len(picked)}" if top is not None else f"all {len(picked)}"
        positions = pd.Index(train_ids).get_indexer(picked["ID"])
        flagged = np.isin(data.train_rows, data.train_rows[positions])
        variants[f"without {label}"] = (data.train_rows[~flagged], data.y_train[~flagged], len(picked))
        relabelled = data.y_train.copy()
        relabelled[positions] = picked["suggested_intent"].to_numpy()
        variants[f"relabelled {label}"] = (data.train_rows, relabelled, len(picked))
    rows: list[dict[str, Any]] = []
    base_samples = base_point = None
    for variant, (train_rows, y_train, changed) in variants.items():
        predicted = fit_predict(data.cache, params, train_rows, y_train, data.val_rows, random_state)
        samples, _ = bootstrap_scores(data.y_val, predicted, data.labels, n_resamples, seed)
        point = data.scores(predicted)
        if base_samples is None:
            base_samples, base_point = samples, point
        row: dict[str, Any] = {"variant": variant, "changed": changed}
        for metric in ("accuracy", "f1_macro"):
            low, high = percentile_interval(samples[metric], confidence)
            d_low, d_high = percentile_interval(samples[metric] - base_samples[metric], confidence)
            d_point = point[metric] - base_point[metric]
            row |= {metric: point[metric], f"{metric}_interval": format_interval(point[metric], low, high, 3),
                    f"{metric}_diff": d_point, f"{metric}_diff_low": float(d_low), f"{metric}_diff_high": float(d_high),
                    f"{metric}_diff_interval": format_interval(d_point, d_low, d_high, 3)}
        rows.append(row)
    return RelabelExperiment(train_issues, pd.DataFrame(rows), confidence)


# --------------------------------------------------------------------------------------------- charts
LENGTH_CAP = 150  # words: longer questions share the last histogram bin
LENGTH_BIN = 5  # words per histogram bin
# Room around a chart: the browser's font runs wider than the one the SVG was laid out with.
PADDING = {"left": 90, "right": 60, "top": 5, "bottom": 5}


def issues_chart(per_intent: pd.DataFrame) -> alt.Chart:
    """Bars: flagged questions per given intent (intents with at least one), the share as colour."""
    data = per_intent[per_intent["issues"] > 0]
    return alt.Chart(data, title="Likely label errors per given intent").mark_bar().encode(
        y=alt.Y("label:N", sort=data["label"].tolist(), title=None, axis=alt.Axis(labelLimit=320)),
        x=alt.X("issues:Q", title="questions flagged"),
        color=alt.Color("share:Q", title="share of the intent", scale=alt.Scale(scheme="orangered"),
                        legend=alt.Legend(format=".0%")),
        tooltip=["label", "questions", "issues", alt.Tooltip("share:Q", format=".1%")],
    ).properties(width=380, height=alt.Step(12), padding=PADDING)


def pairs_chart(pairs: pd.DataFrame, top: int = 25) -> alt.Chart:
    """Bars: the ``top`` most frequent given → suggested intent pairs among the flagged questions."""
    data = pairs.head(top)
    title = alt.Title(f"Between which intents the likely errors fall: the {len(data)} most frequent pairs",
                      subtitle="given intent → suggested intent")
    return alt.Chart(data, title=title).mark_bar().encode(
        y=alt.Y("pair:N", sort=data["pair"].tolist(), title=None, axis=alt.Axis(labelLimit=600)),
        x=alt.X("issues:Q", title="questions flagged"), tooltip=["given", "suggested", "issues"],
    ).properties(width=300, height=alt.Step(14), padding=PADDING)


def lengths_chart(comparison: TestComparison) -> alt.Chart:
    """Histogram of words per question (bins of ``LENGTH_BIN``), labelled and test as shares of their set."""
    words = comparison.lengths().assign(bin=lambda t: t["words"].clip(upper=LENGTH_CAP) // LENGTH_BIN * LENGTH_BIN)
    shares = words.groupby("set")["bin"].value_counts(normalize=True).rename("share").reset_index()
    full = pd.MultiIndex.from_product([shares["set"].unique(), range(0, LENGTH_CAP + 1, LENGTH_BIN)],
                                      names=["set", "bin"])
    shares = shares.set_index(["set", "bin"]).reindex(full, fill_value=0.0).reset_index()
    # A step line draws a bin from its start to the next point: the last bin gets a closing point.
    closing = shares[shares["bin"] == LENGTH_CAP].assign(bin=LENGTH_CAP + LENGTH_BIN)
    data = pd.concat([shares, closing], ignore_index=True)
    return alt.Chart(data, title=f"Words per question (the last bin holds {LENGTH_CAP} and more)").mark_line(
        interpolate="step-after"
    ).encode(
        x=alt.X("bin:Q", title="words", scale=alt.Scale(domain=[0, LENGTH_CAP + LENGTH_BIN], nice=False),
                axis=alt.Axis(values=list(range(0, LENGTH_CAP + 1, 25)))),
        y=alt.Y("share:Q", title="share of the set", axis=alt.Axis(format="%")),
        color=alt.Color("set:N", title=None), tooltip=["set", "bin", alt.Tooltip("share:Q", format=".1%")],
    ).properties(width=520, height=220, padding=PADDING)


def flags_chart(summary: pd.DataFrame) -> alt.Chart:
    """Grouped bars: share of labelled and of test questions raising each flag."""
    data = pd.concat([summary.assign(set="labelled", share=summary["labelled_share"], count=summary["labelled"]),
                      summary.assign(set="test", share=summary["test_share"], count=summary["test"])])
    return alt.Chart(data, title="Where the test questions differ from the labelled ones").mark_bar().encode(
        y=alt.Y("flag:N", sort=summary["flag"].tolist(), title=None, axis=alt.Axis(labelLimit=400)),
        yOffset="set:N", x=alt.X("share:Q", title="share of the set", axis=alt.Axis(format="%")),
        color=alt.Color("set:N", title=None), tooltip=["flag", "set", "count", alt.Tooltip("share:Q", format=".2%")],
    ).properties(width=360, padding=PADDING)


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
