"""Command line: ``python -m intent_lib train|tune|decrypt|promote|fetch`` (what the Makefile and the images run).

Heavy libraries (papermill, nbconvert, scikit-learn, spaCy) are imported only by the commands that run notebooks.
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import sys

from intent_lib.files import read_json
from intent_lib.paths import (BEST_PARAMS_PATH, COMPARISON_PATH, INDEX_FILE, REPORTS_DIR, TRAIN_NOTEBOOKS,
                              TUNE_NOTEBOOKS, TUNING_PATH, project_root)

_URL_PASSWORD = re.compile(r"://[^/@:]+:[^/@]+@")


def _parameter(text: str) -> tuple[str, object]:
    """``name=value`` with value read as a Python literal when it is one (``n=5``, ``objective='f1_macro'``)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    try:
        return name, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name, raw


def _refuse_embedded_passwords(parameters: dict[str, object]) -> None:
    """Parameters are written into the executed notebooks and reports: a URL must not carry a password."""
    for name, value in parameters.items():
        if isinstance(value, str) and _URL_PASSWORD.search(value):
            raise ValueError(f"-p {name}=...: the URL holds a password, which would be written into the reports. "
                             "Leave it out of the URL and set PGPASSWORD (or ~/.pgpass) instead.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m intent_lib", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, notebooks, help_text in (
            ("train", TRAIN_NOTEBOOKS, "decrypt/locate data, run the training notebooks, render reports"),
            ("tune", TUNE_NOTEBOOKS, f"run the Optuna search notebook, write {BEST_PARAMS_PATH}")):
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("-p", "--parameter", action="append", type=_parameter, default=[], metavar="NAME=VALUE",
                         help="override a notebook parameter (repeatable), e.g. -p n_resamples=200; "
                              "an unknown name stops the run with the list of parameters")
        cmd.add_argument("--only", nargs="+", metavar="NOTEBOOK", choices=notebooks,
                         help=f"run only these notebooks (whether or not they changed), from {', '.join(notebooks)}")
        cmd.set_defaults(notebooks=notebooks, force=False)
        if name == "train":
            cmd.add_argument("--force", action="store_true",
                             help="run every step, even those whose stamp says nothing they depend on changed")
    sub.add_parser("decrypt", help="decrypt DATA_ARCHIVE into data/ (passphrase from POSOS_PASSPHRASE[_FILE])",
                   description="Decrypt DATA_ARCHIVE into data/; the passphrase comes from POSOS_PASSPHRASE or "
                               "the file named by POSOS_PASSPHRASE_FILE, never from the command line.")
    promote = sub.add_parser("promote", help="give a registered version of the model the alias champion",
                             description="Give version VERSION of the registered model the alias champion.")
    promote.add_argument("version", metavar="VERSION")
    fetch = sub.add_parser("fetch", help="fetch a registered version for the API and print its model path",
                           description="Download a registered version (models:/NAME/VERSION or models:/NAME@ALIAS) "
                                       "into the registry's model folders, check it, and print its pickle's path.")
    fetch.add_argument("uri", metavar="MODEL")
    fetch.add_argument("--port", type=int, help="also point the link of the API server on PORT at it, and print "
                                                "the path through that link (what make api and make reload serve)")
    return parser


def _registry(args: argparse.Namespace) -> int:
    from intent_lib import model_registry

    root = project_root()
    if args.command == "promote":
        print(model_registry.promote(root, args.version))
        return 0
    path = model_registry.fetch(root, args.uri)
    if args.port is not None:
        path = model_registry.link(root, path, args.port)
    print(path.relative_to(root) if path.is_relative_to(root) else path)
    return 0


def _demo_warning(banner: str) -> None:
    logging.warning("=" * 80 + "\n%s\n" + "=" * 80, banner)


def _decrypt() -> int:
    from intent_lib import archive, data

    if not data.decrypt_configured_archive(project_root()):
        raise archive.ArchiveError("no archive found: set DATA_ARCHIVE to your encrypted dataset")
    return 0


def _run(args: argparse.Namespace) -> int:
    from intent_lib import data, pipeline, tracking

    root = project_root()
    tracking.quiet_environment()  # the notebook kernels inherit it
    names = tuple(n for n in args.notebooks if not args.only or n in args.only)
    parameters = dict(args.parameter)
    _refuse_embedded_passwords(parameters)
    try:
        declared = pipeline.declared_parameters(root, names)
        pipeline.check_overrides(declared, parameters)
        with tracking.tracked_run(root, wanted=args.command == "train") as tracked:
            if tracked is not None:
                from intent_lib import baseline, model_registry

                baseline.check_choice(tracked)
            dataset = data.prepare_dataset(root) if TRAIN_NOTEBOOKS[0] in names else None
            if dataset is not None and dataset.is_demo:
                _demo_warning(data.DEMO_BANNER)
            run = pipeline.run_notebooks(root, names, parameters, force=args.force or bool(args.only))
            if tracked is not None:
                # The one place the runner says which steps ran: {step: "ran" | "reused"}.
                steps = {step.name: "ran" for step in run.steps} | {name: "reused" for name in run.reused}
                tracking.finish_run(tracked, steps, declared, parameters)
                comparison = baseline.compare_with_baseline(tracked)
                registered = model_registry.register(tracked)
                pipeline.write_index(run, read_json(root / COMPARISON_PATH))  # the index shows the comparison
    except pipeline.PipelineError as exc:
        logging.error("%s", exc)
        return 1
    logging.info("reports: %s", root / REPORTS_DIR / INDEX_FILE)
    if tracked is not None:
        print(comparison)
        if registered:
            print(registered)
    if args.command == "tune":
        from intent_lib.best_params import summary_text

        print(summary_text(read_json(root / TUNING_PATH), BEST_PARAMS_PATH))
    if dataset is not None and dataset.is_demo:
        _demo_warning(data.DEMO_BANNER)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    # We log each step ourselves (and the tracking store once); keep their warnings.
    for chatty in ("papermill", "traitlets", "nbconvert", "alembic"):
        logging.getLogger(chatty).setLevel(logging.ERROR)
    from intent_lib.archive import ArchiveError
    from intent_lib.artefacts import ModelIntegrityError
    from intent_lib.data import DataError
    from intent_lib.tracking import TrackingError

    try:
        if args.command in ("promote", "fetch"):
            return _registry(args)
        return _decrypt() if args.command == "decrypt" else _run(args)
    except (ArchiveError, DataError, ModelIntegrityError, TrackingError, ValueError) as exc:
        logging.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
