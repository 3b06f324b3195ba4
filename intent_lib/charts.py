"""altair charts for the reports, rendered as inline SVG so reports open offline (no CDN)."""

from __future__ import annotations

from typing import Sequence

import altair as alt
import numpy as np
import pandas as pd

alt.renderers.enable("svg")  # vl-convert renders in-process; the notebook output is plain SVG
alt.data_transformers.disable_max_rows()


def _label(intent: int, names: dict[int, str]) -> str:
    return f"{intent} · {names.get(int(intent), '')}"


def intent_frequencies(train: pd.DataFrame, val: pd.DataFrame, names: dict[int, str]) -> alt.Chart:
    """Horizontal bars: questions per intent in each split, most frequent first."""
    counts = pd.concat([train.assign(split="train"), val.assign(split="validation")])
    counts = counts.groupby(["intention", "split"]).size().rename("questions").reset_index()
    counts["intent"] = [_label(i, names) for i in counts["intention"]]
    order = counts.groupby("intent")["questions"].sum().sort_values(ascending=False).index.tolist()
    return alt.Chart(counts, title="Questions per intent").mark_bar().encode(
        y=alt.Y("intent:N", sort=order, title=None), x=alt.X("questions:Q", stack=True),
        color=alt.Color("split:N"), tooltip=["intent", "split", "questions"],
    ).properties(width=420, height=alt.Step(11))


def confusion_heatmap(matrix: np.ndarray, labels: Sequence[int], names: dict[int, str]) -> alt.Chart:
    """Row-normalised confusion matrix: true intent down, predicted across, with intent names."""
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    tick = [_label(i, names) for i in labels]
    cells = pd.DataFrame([{"true": tick[i], "predicted": tick[j], "count": int(matrix[i, j]),
                           "share": float(shares[i, j])}
                          for i in range(len(labels)) for j in range(len(labels)) if matrix[i, j]])
    return alt.Chart(cells, title="Confusion matrix (share of each true intent)").mark_rect().encode(
        y=alt.Y("true:N", sort=tick, title="true intent"),
        x=alt.X("predicted:N", sort=tick, title="predicted intent", axis=alt.Axis(labelAngle=-60)),
        color=alt.Color("share:Q", scale=alt.Scale(scheme="blues")), tooltip=["true", "predicted", "count", "share"],
    ).properties(width=alt.Step(11), height=alt.Step(11))


def per_intent_bars(table: pd.DataFrame, metric: str = "f1") -> alt.Chart:
    """Bars of a per-intent metric, sorted by support, support as a tooltip."""
    data = table.assign(label=[f"{i} · {n}" for i, n in zip(table["intent"], table["name"])])
    order = data.sort_values("support", ascending=False)["label"].tolist()
    return alt.Chart(data, title=f"Per-intent {metric} (sorted by support)").mark_bar().encode(
        y=alt.Y("label:N", sort=order, title=None), x=alt.X(f"{metric}:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("support:Q", scale=alt.Scale(scheme="greens")), tooltip=["label", "support", metric],
    ).properties(width=360, height=alt.Step(11))


def reliability_diagram(table: pd.DataFrame) -> alt.Chart:
    """Accuracy against mean confidence per confidence bin; the diagonal is perfect calibration."""
    diagonal = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(strokeDash=[4, 4], color="gray").encode(
        x="x:Q", y="y:Q")
    points = alt.Chart(table).mark_line(point=True).encode(
        x=alt.X("confidence:Q", title="mean confidence", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        size=alt.Size("count:Q"), tooltip=["bin", "count", "confidence", "accuracy"])
    return (diagonal + points).properties(title="Reliability of the confidence", width=300, height=300)


def interval_bars(table: pd.DataFrame, value: str, low: str, high: str, label: str, sort_by: str,
                  title: str) -> alt.Chart:
    """Points with horizontal interval bars, one row per ``label``, sorted by ``sort_by`` descending."""
    order = table.sort_values(sort_by, ascending=False)[label].tolist()
    base = alt.Chart(table, title=title).encode(y=alt.Y(f"{label}:N", sort=order, title=None))
    bars = base.mark_rule().encode(x=alt.X(f"{low}:Q", scale=alt.Scale(domain=[0, 1]), title=value), x2=f"{high}:Q")
    return (bars + base.mark_point(filled=True).encode(x=f"{value}:Q", tooltip=list(table.columns))).properties(
        width=360, height=alt.Step(11))


def distributions(samples: pd.DataFrame, metrics: Sequence[str], title: str) -> alt.Chart:
    """Histograms of several metrics' resampled values, one panel each."""
    long = samples[list(metrics)].melt(var_name="metric", value_name="value")
    return alt.Chart(long, title=title).mark_bar().encode(
        x=alt.X("value:Q", bin=alt.Bin(maxbins=30)), y=alt.Y("count():Q", title="resamples"),
    ).properties(width=200, height=120).facet(facet="metric:N", columns=3).resolve_scale(x="independent")
