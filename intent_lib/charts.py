"""altair charts for the reports, rendered as inline SVG so reports open offline (no CDN)."""

from __future__ import annotations

from typing import Sequence

import altair as alt
import numpy as np
import pandas as pd

from intent_lib.intents import intent_label

# Text is measured when the SVG is made (by vl-convert) and drawn later by the browser: measure with a wide font,
# so that a browser drawing with it or with a narrower fallback (Arial, Helvetica) never runs past the frame.
FONT = "DejaVu Sans, Verdana, sans-serif"
CELL = 15  # px per confusion-matrix cell at least: room for a two-digit intent number
MATRIX_SIDE = 300  # px: the confusion matrix is at least this large, however few the intents
ROW = 13  # px per row in the one-row-per-intent charts
FEW_QUESTIONS = 10  # per-intent scores on fewer validation questions than this are drawn pale


@alt.theme.register("posos", enable=True)
def _theme() -> alt.theme.ThemeConfig:
    """Every label and title in full (no ellipsis), in the measured font."""
    no_limit = {"labelLimit": 0, "titleLimit": 0}
    return {"config": {"font": FONT, "axis": no_limit, "legend": no_limit, "header": no_limit,
                       "title": {"limit": 0, "fontSize": 13, "anchor": "start"}}}


alt.renderers.enable("svg")  # vl-convert renders in-process; the notebook output is plain SVG
alt.data_transformers.disable_max_rows()


def intent_frequencies(train: pd.DataFrame, val: pd.DataFrame, names: dict[int, str]) -> alt.Chart:
    """Horizontal bars: questions per intent in each split, most frequent first."""
    counts = pd.concat([train.assign(split="train"), val.assign(split="validation")])
    counts = counts.groupby(["intention", "split"]).size().rename("questions").reset_index()
    counts["intent"] = [intent_label(i, names) for i in counts["intention"]]
    order = counts.groupby("intent")["questions"].sum().sort_values(ascending=False).index.tolist()
    return alt.Chart(counts, title="Questions per intent").mark_bar().encode(
        y=alt.Y("intent:N", sort=order, title=None), x=alt.X("questions:Q", stack=True),
        color=alt.Color("split:N"), tooltip=["intent", "split", "questions"],
    ).properties(width=420, height=alt.Step(ROW))


def confusion_heatmap(matrix: np.ndarray, labels: Sequence[int], names: dict[int, str]) -> alt.Chart:
    """Row-normalised confusion matrix: true intent down, predicted across, every intent on both axes
    (one never predicted keeps its empty column), named on the rows and numbered across."""
    labels = [int(v) for v in labels]
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    tick = [intent_label(i, names) for i in labels]
    cells = pd.DataFrame([{"true": tick[i], "predicted": tick[j], "predicted_id": labels[j],
                           "count": int(matrix[i, j]), "share": float(shares[i, j])}
                          for i in range(len(labels)) for j in range(len(labels)) if matrix[i, j]])
    step = max(CELL, MATRIX_SIDE // max(len(labels), 1))
    return alt.Chart(cells, title="Confusion matrix (share of each true intent)").mark_rect().encode(
        y=alt.Y("true:N", scale=alt.Scale(domain=tick), title="true intent"),
        # Names on the rows only: 51 rotated names across would overlap; the columns carry the intent number.
        x=alt.X("predicted_id:O", scale=alt.Scale(domain=labels), title="predicted intent (number)",
                axis=alt.Axis(labelAngle=0, orient="top")),
        color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="share"),
        tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".3f")],
    ).properties(width=alt.Step(step), height=alt.Step(step))


def per_intent_bars(table: pd.DataFrame, metric: str = "f1") -> alt.Chart:
    """Bars of a per-intent metric, sorted by support, each labelled with its support; intents with fewer than
    ``FEW_QUESTIONS`` validation questions are drawn pale, since their score rests on a handful of answers."""
    names = dict(zip(table["intent"], table["name"]))
    data = table.assign(label=[intent_label(i, names) for i in table["intent"]],
                        questions=np.where(table["support"] < FEW_QUESTIONS, f"fewer than {FEW_QUESTIONS}",
                                           f"{FEW_QUESTIONS} or more"),
                        support_text=[f"n={n}" for n in table["support"]])
    order = data.sort_values("support", ascending=False)["label"].tolist()
    # Room right of 1 for the support labels; ticks every 0.2, each labelled with its own value.
    base = alt.Chart(data, title=f"Per-intent {metric} (sorted by support, n = validation questions)").encode(
        y=alt.Y("label:N", sort=order, title=None),
        x=alt.X(f"{metric}:Q", scale=alt.Scale(domain=[0, 1.15]),
                axis=alt.Axis(values=[round(0.2 * i, 1) for i in range(6)], format=".1f")))
    bars = base.mark_bar().encode(
        color=alt.Color("questions:N", title="validation questions",
                        scale=alt.Scale(domain=[f"{FEW_QUESTIONS} or more", f"fewer than {FEW_QUESTIONS}"],
                                        range=["#2f7d4f", "#c7dccd"])),
        tooltip=["label", "support", metric])
    counts = base.mark_text(align="left", dx=3, fontSize=9, color="#444").encode(text="support_text:N")
    return (bars + counts).properties(width=360, height=alt.Step(ROW))


def reliability_diagram(table: pd.DataFrame) -> alt.Chart:
    """Accuracy against mean confidence per confidence bin; the diagonal is perfect calibration."""
    diagonal = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(strokeDash=[4, 4], color="gray").encode(
        x="x:Q", y="y:Q")
    base = alt.Chart(table).encode(
        x=alt.X("confidence:Q", title="mean confidence", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])))
    line = base.mark_line(color="#1f77b4")
    points = base.mark_circle(color="#1f77b4", opacity=0.8).encode(
        # No zero in the size scale: the legend would show a dot for a bin of 0 questions, which is never drawn.
        size=alt.Size("count:Q", scale=alt.Scale(range=[30, 400], zero=False), title="questions"),
        tooltip=["bin", "count", "confidence", "accuracy"])
    return (diagonal + line + points).properties(title="Reliability of the confidence", width=300, height=300)


def interval_bars(table: pd.DataFrame, value: str, low: str, high: str, label: str, sort_by: str,
                  title: str, domain: tuple[float, float] | None = (0, 1)) -> alt.Chart:
    """Points with horizontal interval bars, one row per ``label``, sorted by ``sort_by`` descending;
    the x scale spans ``domain``, or the values when None."""
    order = table.sort_values(sort_by, ascending=False)[label].tolist()
    # padding: points at the ends of the domain (an F1 of 0 or 1) are drawn whole, clear of the frame
    scale = alt.Scale(domain=list(domain), padding=8) if domain else alt.Scale(zero=False, padding=8)
    ticks = alt.Axis(values=[domain[0] + i * (domain[1] - domain[0]) / 5 for i in range(6)]) if domain else alt.Axis()
    base = alt.Chart(table, title=title).encode(y=alt.Y(f"{label}:N", sort=order, title=None))
    bars = base.mark_rule().encode(x=alt.X(f"{low}:Q", scale=scale, title=value, axis=ticks), x2=f"{high}:Q")
    return (bars + base.mark_point(filled=True).encode(x=f"{value}:Q", tooltip=list(table.columns))).properties(
        width=360, height=alt.Step(ROW))


def distributions(samples: pd.DataFrame, metrics: Sequence[str], title: str) -> alt.ConcatChart:
    """Histograms of several metrics' resampled values, one panel each with its own bins and x scale
    (a faceted histogram would bin every panel over the range of all metrics together). Bins are drawn as
    ranges on a plain axis: an axis of bin edges gets irregular, colliding labels."""
    panels = [alt.Chart(samples[[metric]], title=alt.Title(metric, fontSize=11)).transform_bin(
        ["low", "high"], field=metric, bin=alt.Bin(maxbins=30),
    ).transform_aggregate(resamples="count()", groupby=["low", "high"]).mark_bar().encode(
        x=alt.X("low:Q", scale=alt.Scale(zero=False), title=None, axis=alt.Axis(tickCount=4, labelSeparation=6)),
        x2="high:Q",
        y=alt.Y("resamples:Q", title="resamples"), y2=alt.datum(0),
    ).properties(width=240, height=120) for metric in metrics]
    return alt.concat(*panels, columns=2, title=title)


def integer_ticks(values: Sequence[int], most: int = 12) -> list[int]:
    """At most about ``most`` whole-number ticks from 0 to the largest value (an axis of counts or trial numbers)."""
    top = int(max(values, default=0))
    return list(range(0, top + 1, max(1, -(-top // most))))


def optimisation_history(trials: pd.DataFrame, objective: str, band: tuple[float, float] | None = None,
                         band_label: str = "default, 95% bootstrap interval") -> alt.LayerChart:
    """Completed trials' values by trial number, the best so far as a step line, and an optional shaded band."""
    done = trials[trials["state"] == "COMPLETE"].sort_values("number").assign(
        best=lambda t: t["value"].cummax())
    points = alt.Chart(done).mark_point(filled=True).encode(
        x=alt.X("number:Q", title="trial", scale=alt.Scale(padding=8),  # padding: edge points drawn whole
                axis=alt.Axis(values=integer_ticks(done["number"]), format="d")),
        y=alt.Y("value:Q", title=objective, scale=alt.Scale(zero=False)),
        tooltip=["number", "value"])
    best = alt.Chart(done).mark_line(interpolate="step-after", color="#c0392b").encode(x="number:Q", y="best:Q")
    layers = [points, best]
    if band is not None:
        area = pd.DataFrame({"low": [band[0]], "high": [band[1]], "what": [band_label]})
        layers.insert(0, alt.Chart(area).mark_rect(opacity=0.2, color="gray").encode(
            y="low:Q", y2="high:Q", tooltip=["what", "low", "high"]))
    return alt.layer(*layers).properties(title=f"Optimisation history ({objective}; red: best so far)",
                                         width=480, height=240)


def importance_bars(importances: dict[str, float], title: str = "Parameter importances") -> alt.Chart:
    """Horizontal bars of each hyperparameter's importance, largest first."""
    data = pd.DataFrame({"parameter": list(importances), "importance": list(importances.values())})
    return alt.Chart(data, title=title).mark_bar().encode(
        y=alt.Y("parameter:N", sort="-x", title=None), x=alt.X("importance:Q"), tooltip=["parameter", "importance"],
    ).properties(width=360, height=alt.Step(16))


def interval_points(table: pd.DataFrame, value: str, low: str, high: str, label: str, facet: str,
                    title: str) -> alt.FacetChart:
    """Points with interval bars on a zoomed scale, one panel per ``facet`` value (e.g. metric), rows by ``label``."""
    base = alt.Chart().encode(y=alt.Y(f"{label}:N", title=None))  # a faceted layer takes its data at the top
    # padding: the interval ends stop short of the frame, where they would otherwise look cut
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X(f"{low}:Q", scale=alt.Scale(zero=False, padding=12), title=None, axis=alt.Axis(tickCount=5)),
        x2=f"{high}:Q")
    points = base.mark_point(filled=True, size=60).encode(x=f"{value}:Q", tooltip=list(table.columns))
    return alt.layer(bars, points, data=table).properties(width=300, height=alt.Step(26)).facet(
        facet=alt.Facet(f"{facet}:N", title=None), columns=2, title=title).resolve_scale(x="independent")


def accuracy_coverage(curve: pd.DataFrame, threshold: float, target_accuracy: float) -> alt.Chart:
    """Accuracy among answered questions against the share answered, with the chosen unsure threshold marked."""
    chosen = curve[curve["threshold"] >= threshold].tail(1)  # the questions answered at the threshold
    chosen = chosen.assign(label=[f"threshold {threshold:.2f}: {c:.0%} answered, {a:.1%} right"
                                  for c, a in zip(chosen["coverage"], chosen["accuracy"])])
    base = alt.Chart(curve, title="Answering only above a confidence threshold").mark_line().encode(
        x=alt.X("coverage:Q", title="share of questions answered", axis=alt.Axis(format="%")),
        y=alt.Y("accuracy:Q", title="accuracy among answered", scale=alt.Scale(zero=False), axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("threshold:Q", format=".3f"), alt.Tooltip("coverage:Q", format=".1%"),
                 alt.Tooltip("accuracy:Q", format=".1%")])
    target = alt.Chart(pd.DataFrame({"accuracy": [target_accuracy]})).mark_rule(strokeDash=[4, 4], color="gray").encode(
        y="accuracy:Q")
    point = alt.Chart(chosen).mark_point(size=90, filled=True, color="#d62728").encode(x="coverage:Q", y="accuracy:Q")
    text = point.mark_text(align="right", dx=-6, dy=16, fontSize=12).encode(text="label:N")  # below-left: empty
    return (base + target + point + text).properties(width=520, height=300)


# ------------------------------------------------------------------------ data quality (notebook 06)
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


def lengths_chart(lengths: pd.DataFrame) -> alt.Chart:
    """Histogram of words per question (bins of ``LENGTH_BIN``), labelled and test as shares of their set
    (``lengths``: set, words; ``TestComparison.lengths``)."""
    words = lengths.assign(bin=lambda t: t["words"].clip(upper=LENGTH_CAP) // LENGTH_BIN * LENGTH_BIN)
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


# ------------------------------------------------------------------------ out of scope (notebook 03)
def scope_scores(scores: pd.DataFrame, threshold: float, step: float = 0.025) -> alt.Chart:
    """Each set's distribution of scope scores (share of its questions per bin), the threshold as a rule: questions
    left of it are flagged out of scope."""
    edges = np.arange(np.floor(scores["score"].min() / step) * step, scores["score"].max() + step, step)
    shares = pd.concat([pd.DataFrame({"set": name, "score": edges[:-1] + step / 2,
                                      "share": np.histogram(group["score"], edges)[0] / len(group)})
                        for name, group in scores.groupby("set", sort=False)])
    lines = alt.Chart(shares, title="Scope score: mean cosine to the nearest labelled questions").mark_line(
        interpolate="step").encode(x=alt.X("score:Q", title="scope score"),
                                   y=alt.Y("share:Q", title="share of the set's questions", axis=alt.Axis(format="%")),
                                   color=alt.Color("set:N", title=None), tooltip=["set", "score", "share"])
    rule = alt.Chart(pd.DataFrame({"score": [threshold]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="score:Q")
    return (lines + rule).properties(width=520, height=260, padding=PADDING)
