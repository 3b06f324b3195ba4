"""Command line: ``python -m intent_lib train|tune|decrypt`` (what the Makefile and the images run)."""

from __future__ import annotations

import argparse
import ast
import logging
import re
import sys
from pathlib import Path

from intent_lib import archive, pipeline
from intent_lib.data import DEMO_BANNER, DataError
from intent_lib.model import ModelIntegrityError
from intent_lib.paths import project_root


def _parameter(text: str) -> tuple[str, object]:
    """``name=value`` with value read as a Python literal when it is one (``n=5``, ``objective='f1_macro'``)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    try:
        return name, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name, raw


_URL_PASSWORD = re.compile(r"://[^/@:]+:[^/@]+@")


def _refuse_embedded_passwords(parameters: dict[str, object]) -> None:
    """Parameters are written into the executed notebooks and reports: a URL must not carry a password."""
    for name, value in parameters.items():
        if isinstance(value, str) and _URL_PASSWORD.search(value):
            raise ValueError(f"-p {name}=...: the URL holds a password, which would be written into the reports. "
                             "Leave it out of the URL and set PGPASSWORD (or ~/.pgpass) instead.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m intent_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "decrypt/locate data, run notebooks 01-04, render reports"),
                            ("tune", "run notebook 05 (Optuna search), write models/best_params.json")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("-p", "--parameter", action="append", type=_parameter, default=[], metavar="NAME=VALUE",
                         help="override a notebook parameter (repeatable), e.g. -p n_resamples=200")
        cmd.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="run only these notebooks, e.g. 03_evaluate")
    sub.add_parser("decrypt", help="decrypt DATA_ARCHIVE into data/ (passphrase from POSOS_PASSPHRASE[_FILE])")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    for chatty in ("papermill", "traitlets", "nbconvert"):  # we log each step ourselves; keep their warnings
        logging.getLogger(chatty).setLevel(logging.ERROR)
    root = project_root()
    try:
        if args.command == "decrypt":
            if pipeline.prepare_data(root) != "archive":
                raise archive.ArchiveError("no archive found: set DATA_ARCHIVE to your data.tgz.gpg")
            return 0
        names = pipeline.TRAIN_NOTEBOOKS if args.command == "train" else pipeline.TUNE_NOTEBOOKS
        if args.only:
            unknown = set(args.only) - set(names)
            if unknown:
                parser.error(f"unknown notebook(s) {sorted(unknown)}; choose from {list(names)}")
            names = tuple(n for n in names if n in args.only)
        source = pipeline.prepare_data(root) if args.command == "train" and "01_split" in names else None
        parameters = dict(args.parameter)
        _refuse_embedded_passwords(parameters)
        run = pipeline.run_notebooks(root, names, parameters)
        logging.info("reports: %s", Path(run.root, "reports", "index.html"))
        if source == "demo":
            logging.warning("%s", DEMO_BANNER)
        return 0
    except (archive.ArchiveError, DataError, ModelIntegrityError, pipeline.PipelineError, ValueError) as exc:
        logging.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
