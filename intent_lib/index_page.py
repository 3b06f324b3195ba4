"""The reports' index page (``reports/index.html``): each step's report, whether this run ran or reused it, when it
last ran and for how long, the hash of its inputs; then this run against its baseline run (``comparison.json``,
written by ``baseline``): Δ accuracy and Δ macro-F1 with their intervals, the verdict, the intents whose F1
changed beyond noise. Plain HTML styled like the reports (JupyterLab's look), no script: it opens offline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from intent_lib.comparison import HEADLINE, LABELS
from intent_lib.results_blocks import duration

DEMO_STYLE = "background:#fde2e1;border:2px solid #c0392b;padding:8px;font-weight:bold"  # the reports' banner too
STYLE = """
body { font-family: system-ui, -apple-system, blinkmacsystemfont, 'Segoe UI', helvetica, arial, sans-serif;
  font-size: 14px; line-height: 1.6; color: rgba(0, 0, 0, 0.87); margin: 0; padding: 10px 20px 40px; }
h1 { font-size: 2.07em; font-weight: 500; margin: 0.8em 0 0.5em; }
h2 { font-size: 1.73em; font-weight: 500; margin: 1.2em 0 0.5em; }
p { margin: 0.4em 0 0.8em; }
a { color: #0d47a1; }
code { font-family: menlo, consolas, 'DejaVu Sans Mono', monospace; font-size: 13px; background: #eee;
  padding: 1px 5px; }
table { border-collapse: collapse; margin: 0 0 1em; }
thead { border-bottom: 1px solid #bdbdbd; vertical-align: bottom; }
th, td { padding: 0.5em; text-align: left; line-height: normal; }
th { font-weight: bold; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(odd) { background: #f5f5f5; }
tbody tr:hover { background: #e1f5fe; }
.verdict { font-size: 1.15em; }
.muted { color: rgba(0, 0, 0, 0.54); }
"""


@dataclass(frozen=True)
class StepRow:
    """One report on the index."""

    name: str
    status: str  # "ran", "reused" or "not in this run"
    ran_at: str  # when the step last ran (ISO, UTC)
    seconds: float | None  # how long that took
    inputs_sha256: str | None  # None: not stamped


def _e(text: Any) -> str:
    return html.escape(str(text))


def _utc(iso: str) -> str:
    """``2026-01-02 09:00:00`` from an ISO time in UTC."""
    return iso.replace("T", " ").removesuffix("+00:00")


def _table(header: list[str], rows: list[list[str]], numeric_columns: set[int]) -> str:
    """A table; ``numeric_columns`` (positions) are aligned right, header and cells, the text left."""
    def cell(tag: str, i: int, content: str) -> str:
        return f'<{tag} class="num">{content}</{tag}>' if i in numeric_columns else f"<{tag}>{content}</{tag}>"
    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "\n".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def steps_table(rows: list[StepRow]) -> str:
    return _table(["step", "this run", "last ran (UTC)", "inputs sha256", "took"],
                  [[f'<a href="{_e(r.name)}.html">{_e(r.name)}</a>', _e(r.status), _e(_utc(r.ran_at)),
                    f"<code>{_e(r.inputs_sha256[:12])}…</code>" if r.inputs_sha256 else "not stamped",
                    "" if r.seconds is None else duration(r.seconds)] for r in rows], {4})


def _delta(delta: dict[str, float]) -> str:
    return f"{delta['point']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}]"


def comparison_section(comparison: dict[str, Any] | None, names: dict[int, str]) -> str:
    """This run against its baseline, or why there is none."""
    title = "<h2>Against the baseline run</h2>"
    if comparison is None:
        return (f"{title}<p>No comparison for this run: only a tracked <code>make train</code> compares itself with "
                "a baseline run (this run was <code>make tune</code>, ran with <code>TRACKING=off</code>, or stopped "
                "before comparing).</p>")
    if "deltas" not in comparison:  # no comparable run, or its predictions could not be read
        baseline = comparison.get("baseline_run_id")
        if baseline is None:
            return f"{title}<p>No comparable run: {_e(comparison['line'])}.</p>"
        why = comparison["line"].rpartition("not comparable, ")[2]
        return f"{title}<p>Run <code>{_e(baseline)}</code> is the baseline, but not comparable: {_e(why)}.</p>"
    deltas = comparison["deltas"]
    rows = [[f"Δ {LABELS[k]}", _delta(deltas[k]), "within noise" if deltas[k]["within_noise"] else "beyond noise"]
            for k in HEADLINE]
    intro = (f"<p>This run (<code>{_e(comparison['run_id'])}</code>) against run "
             f"<code>{_e(comparison['baseline_run_id'])}</code>, on the same {comparison['n']:,} validation "
             f"questions: differences (this run minus the baseline) with their {comparison['confidence']:.0%} "
             f"paired-bootstrap intervals ({comparison['n_resamples']:,} resamples).</p>")
    verdict = f'<p class="verdict">Verdict: <b>{_e(comparison["verdict"])}</b>.</p>'
    changed = comparison["changed_intents"]
    tested = comparison["intents_tested"]
    fdr = f"Benjamini–Hochberg over {tested} intents, false discovery rate {1 - comparison['confidence']:.0%}"
    if not changed:
        intents = f"<p>No intent's F1 changed beyond noise ({fdr}).</p>"
    else:
        intents = (f"<p>{len(changed)} of {tested} intents' F1 changed beyond noise ({fdr}):</p>"
                   + _table(["intent", "name", "baseline F1", "F1", "Δ F1 [interval]", "p-value"],
                            [[str(c["intent"]), _e(names.get(int(c["intent"]), "")), f"{c['baseline_f1']:.3f}",
                              f"{c['f1']:.3f}", _delta(c["delta"]), f"{c['p_value']:.4f}"] for c in changed],
                            {0, 2, 3, 4, 5}))
    return title + intro + _table(["difference", f"{comparison['confidence']:.0%} interval", ""], rows, {1}) \
        + verdict + intents


def page(*, dataset: str, demo_banner: str | None, commit: str, started: str, steps: list[StepRow],
         comparison: dict[str, Any] | None, names: dict[int, str]) -> str:
    """The whole page."""
    ran = [s.name for s in steps if s.status == "ran"]
    reused = [s.name for s in steps if s.status == "reused"]
    banner = f'<div style="{DEMO_STYLE}">⚠ {_e(demo_banner)}</div>' if demo_banner else ""
    this_run = (f"This run (started {_e(_utc(started))} UTC, git commit <code>{_e(commit)}</code>) ran "
                f"{', '.join(ran) or 'no step'}" + (f" and reused {', '.join(reused)}" if reused else "") + ".")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>posos-intent reports</title>"
            f"<style>{STYLE}</style></head><body>{banner}<h1>posos-intent reports</h1>"
            f"<p>{this_run}<br>{_e(dataset)}</p>{steps_table(steps)}"
            f'<p class="muted">A step this run reused or did not run keeps its report from when it last ran.</p>'
            f"{comparison_section(comparison, names)}</body></html>")
