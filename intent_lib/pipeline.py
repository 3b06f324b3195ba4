"""Run the numbered notebooks with papermill, render each to HTML with nbconvert, and write an index.

Executed notebooks are kept in ``paths.EXECUTED_DIR``; HTML reports land in ``paths.REPORTS_DIR``. Each report
starts with a header cell of run metadata (and the demo-data warning when it applies). A ``-p`` override that
no notebook of the run declares stops the run before anything executes. A training step whose stamp says nothing
it depends on changed is reused, not run (``intent_lib.stamps``); the index page (``intent_lib.index_page``) says
which steps ran, in their order, and how this run compares with its baseline.
"""

from __future__ import annotations

import ast
import difflib
import html
import json
import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from intent_lib import index_page, stamps
from intent_lib.card import git_commit
from intent_lib.data import DEMO_BANNER, DatasetInfo
from intent_lib.files import notebook_cells
from intent_lib.paths import (EMBEDDING_CACHE_DIR, EMBEDDING_CACHE_ENV, EXECUTED_DIR, INDEX_FILE, NOTEBOOKS_DIR,
                              PROCESSED_DIR, REPORTS_DIR, SPLIT_META, STEP_FILES)
from intent_lib.split import Split

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"


class PipelineError(RuntimeError):
    """A step failed; the message says which and where to look."""


@dataclass
class StepResult:
    name: str
    started: datetime
    seconds: float
    parameters: dict[str, Any]
    html: Path


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass
class Run:
    root: Path
    started: datetime = field(default_factory=_now)
    steps: list[StepResult] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def notebook_parameters(path: Path) -> dict[str, dict[str, str]]:
    """The assignments of a notebook's ``parameters`` cell: name -> {"default": its source text}.

    Read with Python's ``ast``, not papermill's line parser, which drops (with a warning only) any line holding a
    second ``=``, such as ``alpha = 0.1  # ... >= 1 - alpha``; papermill still injects overrides of such names.
    """
    source = next((c["source"] for c in notebook_cells(path) if "parameters" in c["tags"]), "")
    declared: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                declared[target.id] = {"default": ast.get_source_segment(source, node.value) or ""}
    return declared


def declared_parameters(root: Path, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Each notebook's parameters (``notebook_parameters``), by notebook name."""
    sources = {name: root / NOTEBOOKS_DIR / f"{name}.ipynb" for name in names}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise PipelineError(f"notebook(s) not found: {', '.join(missing)}. Run from the project's root "
                            "(or set POSOS_ROOT to it).")
    return {name: notebook_parameters(path) for name, path in sources.items()}


def check_overrides(declared: dict[str, dict[str, str]], overrides: dict[str, Any]) -> None:
    """``ValueError`` naming the closest declared parameters and listing them all (with their defaults when
    these are plain values) when an override matches none of them."""
    known = {p for params in declared.values() for p in params}
    unknown = sorted(set(overrides) - known)
    if unknown:
        close = sorted({m for name in unknown for m in difflib.get_close_matches(name, known, n=2)})
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        listing = "\n".join(f"  {name}: " + ", ".join(_with_default(p, v["default"]) for p, v in params.items())
                            for name, params in declared.items())
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}{hint}: no notebook of this run declares "
                         f"{'it' if len(unknown) == 1 else 'them'}. The parameters (with defaults) are:\n{listing}")


def _with_default(name: str, default: str) -> str:
    """``name=default`` when the default is a literal; the bare name when it is code (a path from the layout)."""
    try:
        ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return name
    return f"{name}={default}"


class EncryptedKernelManager(AsyncKernelManager):
    """A local kernel whose ZMQ traffic is encrypted (CurveZMQ) when the kernel supports it: no plain-text
    loopback traffic, and no ipykernel warning about it in the console."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transport_encryption = "auto"


def _execute(root: Path, name: str, output: Path, parameters: dict[str, Any], progress_bar: bool = True) -> None:
    """Run one notebook with papermill (imported here: a rerun that reuses every step never loads it); a progress
    bar only when no other step runs beside it (bars of several steps would overwrite each other)."""
    import papermill

    try:
        papermill.execute_notebook(str(root / NOTEBOOKS_DIR / f"{name}.ipynb"), str(output), parameters=parameters,
                                   cwd=str(root), kernel_name="python3", progress_bar=progress_bar, log_output=False,
                                   kernel_manager_class=EncryptedKernelManager)
    except papermill.PapermillExecutionError as exc:
        raise PipelineError(f"{name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                            f"See {output.relative_to(root)} for the full trace.") from exc


def upstream(names: tuple[str, ...]) -> dict[str, set[str]]:
    """For each step of ``names``, the earlier ones it waits for: those writing a file it reads
    (``paths.STEP_FILES``). A step the table does not declare (05_tune) waits for every earlier step, and every
    later step waits for it."""
    waits: dict[str, set[str]] = {}
    for position, name in enumerate(names):
        earlier = names[:position]
        waits[name] = (set(earlier) if name not in STEP_FILES else
                       {e for e in earlier if e not in STEP_FILES or set(STEP_FILES[name][0]) & set(STEP_FILES[e][1])})
    return waits


def _alone(name: str, waits: dict[str, set[str]]) -> bool:
    """Whether no other step can run at the same time as ``name`` (then it shows papermill's progress bar)."""
    def before(a: str, b: str) -> bool:  # a is upstream of b, directly or not
        return a in waits[b] or any(before(a, c) for c in waits[b])

    return all(before(other, name) or before(name, other) for other in waits if other != name)


def run_notebooks(root: Path, names: tuple[str, ...], overrides: dict[str, Any], force: bool = False) -> Run:
    """Execute ``notebooks/<name>.ipynb`` with the overrides its parameters cell declares, each step once the
    steps it reads from are done (``upstream``): steps that do not depend on each other (03, 04 and 06) run at the
    same time, each in its own kernel. A step of ``paths.STEP_FILES`` whose stamp matches is reused instead,
    unless ``force``. After a failure no step starts; those running finish, then the first failure is raised."""
    declared = declared_parameters(root, names)
    check_overrides(declared, overrides)
    run = Run(root)
    # Kernels inherit it: every step (and tuning worker) reuses the sentence embeddings of earlier ones.
    os.environ.setdefault(EMBEDDING_CACHE_ENV, str(root / EMBEDDING_CACHE_DIR))
    (root / EXECUTED_DIR).mkdir(parents=True, exist_ok=True)
    waits = upstream(names)
    pending, done, failures = list(names), set(), []
    running: dict[Future[None], str] = {}
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        while pending or running:
            for name in [n for n in pending if waits[n] <= done and not failures]:
                pending.remove(name)
                parameters = {k: v for k, v in overrides.items() if k in declared[name]}
                inputs = (stamps.step_inputs(root, name, stamps.resolved_parameters(declared[name], parameters))
                          if name in STEP_FILES else None)
                if not force and inputs is not None and (stamp := stamps.reusable(root, name, inputs)):
                    log.info("%s: reused (unchanged since %s)", name, stamp.ran_at)
                    run.reused.append(name)
                    done.add(name)
                else:
                    log.info("running %s %s", name, parameters or "(default parameters)")
                    running[pool.submit(_run_step, run, name, parameters, inputs, _alone(name, waits))] = name
            if failures and not running:
                break
            if not running:
                continue  # a reused step may have made others ready
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    future.result()
                    done.add(name)
                except PipelineError as exc:
                    failures.append(exc)
    if failures:
        raise failures[0]
    write_index(run)
    return run


def _run_step(run: Run, name: str, parameters: dict[str, Any], inputs: dict[str, Any] | None,
              progress_bar: bool) -> None:
    """Execute one step, render its report, and stamp it when it is a declared step."""
    root = run.root
    stamps.forget(root, name)
    output = root / EXECUTED_DIR / f"{name}.ipynb"
    started_at, started = _now(), time.perf_counter()
    _execute(root, name, output, parameters, progress_bar)
    step = StepResult(name, started_at, time.perf_counter() - started, parameters, root / REPORTS_DIR / f"{name}.html")
    render_html(output, step, run)
    run.steps.append(step)
    if inputs is not None:
        stamps.record(root, name, inputs, started_at, step.seconds)
    log.info("%s done in %.0f s -> %s", name, step.seconds, step.html.relative_to(root))


def _dataset_line(root: Path) -> tuple[str, bool]:
    """A line describing the data of this run, and whether it is the demo data."""
    if not (root / PROCESSED_DIR / SPLIT_META).is_file():
        return "dataset: not split yet", False
    split = Split.read(root / PROCESSED_DIR)
    line = f"dataset: {describe_dataset(split.dataset)}; split seed {split.seed}, validation share {split.val_size}"
    return line, split.dataset.is_demo


def describe_dataset(dataset: DatasetInfo) -> str:
    """Where the data came from, each hash named:
    ``decrypted from an archive (sha256 …), CSV sha256 …``."""
    origin = {"archive": f"decrypted from an archive (sha256 {(dataset.archive_sha256 or '')[:12]}…)",
              "csv": f"CSV files in {dataset.location}/",
              "demo": f"synthetic demo data in {dataset.location}/"}.get(dataset.source, dataset.location)
    return f"{origin}, CSV sha256 {dataset.sha256[:12]}…"


def _header(step: StepResult, run: Run) -> str:
    dataset, is_demo = _dataset_line(run.root)
    lines = [f"**Run metadata** — notebook `{step.name}`, started {step.started.isoformat()}, "
             f"took {step.seconds:.0f} s, git commit `{git_commit()}`  ",
             f"{dataset}  ",
             f"parameters passed: `{json.dumps(step.parameters)}` (the rest are the notebook's defaults)"]
    if is_demo:
        lines.insert(0, f'<div style="{index_page.DEMO_STYLE}">⚠ {html.escape(DEMO_BANNER)}</div>\n')
    return "\n".join(lines)


def render_html(executed: Path, step: StepResult, run: Run) -> None:
    """Render an executed notebook to standalone HTML (charts are inline SVG, no CDN script: opens offline)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(executed, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(_header(step, run)))
    exporter = HTMLExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="offline",
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(notebook)
    step.html.write_text(body, encoding="utf-8")


def _step_row(report: Path, run: Run) -> index_page.StepRow:
    """A report's row: whether this run ran or reused its step, when the step last ran and how long, its inputs'
    hash (from its stamp; a step without one, such as 05_tune, by its report's time)."""
    stamp = stamps.Stamp.read(run.root, report.stem)
    status = ("reused" if report.stem in run.reused else "ran" if report.stem in {s.name for s in run.steps}
              else "not in this run")
    if stamp is None:
        when = datetime.fromtimestamp(int(report.stat().st_mtime), timezone.utc).isoformat()
        return index_page.StepRow(report.stem, status, when, None, None)
    return index_page.StepRow(report.stem, status, stamp.ran_at, stamp.seconds, stamp.inputs_sha256)


def write_index(run: Run, comparison: dict[str, Any] | None = None) -> Path:
    """The index page (``index_page``): every HTML report present, in the order of their numbered names (the steps'
    order), and ``comparison``, this run against its baseline (None: not compared)."""
    from intent_lib.intents import intent_names

    reports = run.root / REPORTS_DIR
    dataset, is_demo = _dataset_line(run.root)
    steps = [_step_row(p, run) for p in sorted(reports.glob("0*.html"))]
    names = intent_names([int(c["intent"]) for c in (comparison or {}).get("changed_intents", [])])
    page = index_page.page(dataset=dataset, demo_banner=DEMO_BANNER if is_demo else None, commit=git_commit(),
                           started=run.started.isoformat(), steps=steps, comparison=comparison, names=names)
    index = reports / INDEX_FILE
    index.write_text(page, encoding="utf-8")
    return index
