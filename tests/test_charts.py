"""The report charts, rendered to SVG as the reports render them: titles present, every label in full."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc

from intent_lib import charts
from intent_lib.intents import intent_label, intent_names
from intent_lib.metrics import confusion, per_intent_table, reliability_table
from intent_lib.variability import MAIN_METRICS, bootstrap_predictions

LABELS = list(range(8))
NAMES = intent_names(LABELS) | {7: "Conduite à tenir face à un effet indésirable, un nom très long pour le test"}


def svg_of(chart) -> str:
    return vlc.vegalite_to_svg(chart.to_dict())


def texts(svg: str) -> list[str]:
    return [t.replace("&amp;", "&").replace("&#39;", "'") for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def axis_labels(svg: str, title: str) -> list[str]:
    """The tick labels of the axis titled ``title``."""
    start = svg.index(f"axis titled '{title}'")
    labels = svg.index("role-axis-label", start)
    return texts(svg[labels: svg.index("</g>", labels)])


@pytest.fixture(scope="module")
def predictions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.choice(LABELS, size=200)
    predicted = np.where(rng.random(200) < 0.7, y, rng.choice(LABELS, size=200))
    predicted[predicted == 3] = 2  # intent 3 is never predicted
    return y, predicted


def every_chart(predictions: tuple[np.ndarray, np.ndarray]) -> dict[str, object]:
    """Each chart function with small data, keyed by the title it must show."""
    y, predicted = predictions
    frame = pd.DataFrame({"intention": y})
    boot = bootstrap_predictions(y, predicted, LABELS, NAMES, n_resamples=50)
    trials = pd.DataFrame({"number": range(5), "state": ["COMPLETE"] * 4 + ["PRUNED"], "value": [.5, .6, .55, .58, .4]})
    compared = pd.DataFrame([{"config": c, "metric": m, "point": .6, "low": .55, "high": .65}
                             for c in ("default", "tuned") for m in ("accuracy", "f1_macro")])
    return {
        "Questions per intent": charts.intent_frequencies(frame, frame, NAMES),
        "Per-intent f1 (sorted by support, n = validation questions)": charts.per_intent_bars(per_intent_table(y, predicted, LABELS, NAMES)),
        "Confusion matrix (share of each true intent)": charts.confusion_heatmap(
            confusion(y, predicted, LABELS), LABELS, NAMES),
        "Reliability of the confidence": charts.reliability_diagram(
            reliability_table(y, predicted, np.linspace(0.05, 1, len(y)))),
        "Bootstrap distributions": charts.distributions(boot.samples, MAIN_METRICS, "Bootstrap distributions"),
        "Per-intent F1 intervals": charts.interval_bars(boot.per_intent, "f1", "low", "high", "label", "support",
                                                        "Per-intent F1 intervals"),
        "Optimisation history (f1_macro; red: best so far)": charts.optimisation_history(trials, "f1_macro", (.5, .6)),
        "Parameter importances": charts.importance_bars({"C": .7, "class_weight_power": .3}),
        "Default and tuned": charts.interval_points(compared, "point", "low", "high", "config", "metric",
                                                    "Default and tuned"),
        "Scope score: mean cosine to the nearest labelled questions": charts.scope_scores(
            pd.DataFrame({"set": ["labelled"] * 50 + ["own"] * 20,
                          "score": np.r_[np.linspace(0.4, 0.9, 50), np.linspace(0.1, 0.5, 20)]}), 0.45),
    }


def test_every_chart_shows_its_title_in_the_svg(predictions) -> None:
    for title, chart in every_chart(predictions).items():
        assert title in texts(svg_of(chart)), title


def test_long_intent_names_are_shown_whole_with_their_number(predictions) -> None:
    long_label = intent_label(7, NAMES)
    for title, chart in every_chart(predictions).items():
        shown = texts(svg_of(chart))
        assert not any(t.endswith("…") for t in shown), f"{title}: a label is cut"
        if "intent" in title.lower() and "Confusion" not in title:
            assert long_label in shown, title


def test_charts_measure_text_in_the_wide_font_they_ask_the_browser_for(predictions) -> None:
    svg = svg_of(every_chart(predictions)["Questions per intent"])
    assert set(re.findall(r'font-family="([^"]*)"', svg)) == {charts.FONT}


def test_confusion_matrix_has_every_intent_on_both_axes(predictions) -> None:
    y, predicted = predictions
    assert 3 not in predicted
    svg = svg_of(charts.confusion_heatmap(confusion(y, predicted, LABELS), LABELS, NAMES))
    assert axis_labels(svg, "predicted intent (number)") == [str(i) for i in LABELS]
    assert axis_labels(svg, "true intent") == [intent_label(i, NAMES) for i in LABELS]


def test_confusion_matrix_keeps_a_readable_size_with_few_intents() -> None:
    chart = charts.confusion_heatmap(np.eye(3, dtype=int), [0, 1, 2], NAMES).to_dict()
    assert chart["width"]["step"] * 3 >= charts.MATRIX_SIDE and chart["height"]["step"] * 3 >= charts.MATRIX_SIDE


def test_reliability_legend_shows_no_empty_bin(predictions) -> None:
    y, predicted = predictions
    svg = svg_of(charts.reliability_diagram(reliability_table(y, predicted, np.linspace(0.05, 1, len(y)))))
    legend = svg[svg.index("role-legend-label"):]
    assert "0" not in texts(legend[: legend.index("</g>")])


def test_trial_axis_has_whole_distinct_ticks() -> None:
    trials = pd.DataFrame({"number": range(3), "state": ["COMPLETE"] * 3, "value": [.5, .6, .55]})
    ticks = axis_labels(svg_of(charts.optimisation_history(trials, "accuracy")), "trial")
    assert ticks == ["0", "1", "2"]


@pytest.mark.parametrize(("values", "expected"),
                         [([0, 1, 2], [0, 1, 2]), ([], [0]), (range(40), list(range(0, 40, 4)))])
def test_integer_ticks(values, expected) -> None:
    assert charts.integer_ticks(values) == expected


def test_histograms_have_their_own_range_and_unique_ticks() -> None:
    rng = np.random.default_rng(1)
    samples = pd.DataFrame({"accuracy": rng.normal(.70, .01, 300), "f1_macro": rng.normal(.45, .02, 300)})
    svg = svg_of(charts.distributions(samples, ["accuracy", "f1_macro"], "Distributions"))
    ticks = [float(t) for t in texts(svg) if re.fullmatch(r"0\.\d+", t)]
    assert any(t >= .68 for t in ticks) and any(t <= .47 for t in ticks)
    assert all(.6 <= t <= .8 or .3 <= t <= .6 for t in ticks) and len(ticks) == len(set(ticks))


def test_per_intent_bars_say_how_few_questions_a_score_rests_on(predictions) -> None:
    y, predicted = predictions
    table = per_intent_table(y, predicted, LABELS, NAMES)
    table.loc[table.index[0], "support"] = 2  # one intent scored on two questions
    svg = svg_of(charts.per_intent_bars(table))
    shown = texts(svg)
    assert {f"n={n}" for n in table["support"]} <= set(shown)
    assert f"fewer than {charts.FEW_QUESTIONS}" in shown
    assert {"#2f7d4f", "#c7dccd"} <= set(re.findall(r'fill="(#[0-9a-f]{6})"', svg))


def test_per_intent_bars_label_each_tick_with_its_own_value(predictions) -> None:
    """No tick at 0.25 labelled "0.3": every label reads as the value it marks."""
    y, predicted = predictions
    svg = svg_of(charts.per_intent_bars(per_intent_table(y, predicted, LABELS, NAMES)))
    assert axis_labels(svg, "f1") == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]


def test_interval_points_draw_every_interval_clear_of_the_frame() -> None:
    """An interval's ends stop inside the panel: one that reaches the frame looks cut."""
    table = pd.DataFrame([{"kind": kind, "metric": metric, "value": .72, "low": low, "high": high}
                          for metric in ("accuracy", "f1_macro")
                          for kind, low, high in (("seeds", .703, .727), ("bootstrap", .699, .745))])
    svg = svg_of(charts.interval_points(table, "value", "low", "high", "kind", "metric", "Side by side"))
    width = float(re.search(r'class="background"[^>]*d="M0\.5,0\.5h([\d.]+)v', svg)[1])
    rules = re.findall(r'aria-roledescription="rule mark" transform="translate\(([\d.]+),[\d.]+\)" x2="([\d.]+)"', svg)
    assert len(rules) == 4
    assert all(float(start) >= 5 and float(start) + float(length) <= width - 5 for start, length in rules)
