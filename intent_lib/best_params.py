"""The ``best_params.json`` contract: what ``make tune`` writes and the next ``make train`` reads.

The record holds ``params`` (every ``ModelParams`` field) and how they were found (objective, scores, study,
split, bootstrap comparison with the defaults). It is written only when the search found a configuration
other than the defaults, so a card never calls the defaults "tuned".
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from intent_lib.files import read_json, write_json
from intent_lib.model import ModelParams
from intent_lib.split import Split

DEFAULTS_SOURCE = "defaults (intent_lib.model.ModelParams)"


def build_record(*, params: ModelParams, objective: str, score: float, scores: dict[str, float],
                 default_score: float | None, trial: int, study: dict[str, Any], split: Split,
                 bootstrap: dict[str, Any], commit: str) -> dict[str, Any]:
    """The record: ``params`` (read by 02_train) and how they were found."""
    return {
        "params": params.to_dict(),
        "objective": objective,
        "score": score,
        "scores": scores,
        "default_score": default_score,
        "bootstrap": bootstrap,
        "trial": trial,
        "study": study,
        "split": {"seed": split.seed, "val_size": split.val_size, "train_sha256": split.train_sha256,
                  "val_sha256": split.val_sha256},
        "tuned_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "git_commit": commit,
        "warning": "score was measured on the validation split that chose these parameters: it is optimistic.",
    }


def is_default(record: dict[str, Any]) -> bool:
    """Whether the record's params are the defaults (the search kept them)."""
    return ModelParams.from_dict(record["params"]) == ModelParams()


def write_best_params(record: dict[str, Any], path: Path) -> bool:
    """Write ``record`` to ``path`` when its params differ from the defaults; else remove a stale file.
    Return whether a file was written."""
    if is_default(record):
        path.unlink(missing_ok=True)
        return False
    write_json(record, path)
    return True


def read_best_params(path: Path) -> tuple[ModelParams, str]:
    """The params from ``path`` when present, else the defaults; and a sentence saying which, for the model
    card and the reports."""
    if not path.is_file():
        return ModelParams(), DEFAULTS_SOURCE
    record = read_json(path)
    params = ModelParams.from_dict(record["params"])
    search = f"objective {record.get('objective', '?')}, validation score {record.get('score', float('nan')):.4f}"
    return params, f"{path.name}: tuned, trial {record.get('trial', '?')} ({search})"


def summary_text(record: dict[str, Any], path: Path) -> str:
    """A few console lines: what the search tried, best against defaults with paired bootstrap intervals, and
    whether ``path`` now holds parameters for the next ``make train``."""
    trials = ", ".join(f"{n} {state}" for state, n in record["study"]["trials"].items() if n)
    objective = record["objective"]
    rows = {r["config"]: r for r in record["bootstrap"]["intervals"] if r["metric"] == objective}
    confidence = record["bootstrap"]["confidence"]
    lines = [f"Tuning {objective}: {trials} trials; validation scores with {confidence:.0%} paired bootstrap intervals:"]
    for config, label in (("default", "defaults"), ("tuned", f"best (trial {record['trial']})"),
                          ("tuned - default", "best - defaults")):
        row = rows[config]
        sign = "+" if config == "tuned - default" and row["point"] >= 0 else ""
        lines.append(f"  {label:<22} {sign}{row['point']:.3f} [{row['low']:.3f}, {row['high']:.3f}]")
    if is_default(record):
        lines.append(f"The defaults stayed best: {path} is not written, and the next `make train` fits the defaults.")
    else:
        lines.append(f"Wrote {path}: the next `make train` fits these parameters (delete it to go back to the "
                     "defaults). The best score is optimistic: it was chosen on these validation questions.")
    return "\n".join(lines)
