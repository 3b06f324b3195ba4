"""Check that this checkout's text cleaning gives the same features as another revision's on the real questions.

    .venv/bin/python bench/check_bounded_features.py [--ref main] [--data data]

Fits the feature blocks of the default model (word and char TF-IDF, mean spaCy vectors, sentence embedding) on the
labelled questions, then computes every block's matrix for all questions (``input_train.csv`` and
``input_test.csv``): once with this checkout's ``intent_lib``, once in a subprocess with ``--ref``'s (extracted
with ``git archive``). Prints, per block, whether the two matrices are identical; exits 1 if any differs. Nothing
is written outside a temporary folder (the questions are health data), and the embedding cache is not used: both
sides encode every question.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import sparse

from intent_lib.paths import DATA_DIR, EMBEDDING_CACHE_ENV, TEST_INPUTS, TRAIN_INPUTS, project_root

ROOT = project_root()


def features(data: Path) -> dict[str, sparse.csr_matrix]:
    """Each feature block's matrix of every question, fitted on the labelled ones, with the importable intent_lib."""
    import intent_lib
    from intent_lib.data import load_questions
    from intent_lib.model import ModelParams, build_model

    print(f"features from {Path(intent_lib.__file__).parent}", file=sys.stderr)
    labelled = list(load_questions(data / TRAIN_INPUTS).question)
    texts = labelled + list(load_questions(data / TEST_INPUTS).question)
    pipeline = build_model(ModelParams())
    clean, union = pipeline.named_steps["clean"], pipeline.named_steps["features"]
    union.fit(clean.transform(labelled))
    cleaned = clean.transform(texts)
    return {name: sparse.csr_matrix(block.transform(cleaned)) for name, block in union.transformer_list}


def dump(data: Path, out: Path) -> None:
    blocks = features(data)
    np.savez(out, **{f"{name}.{part}": getattr(m, part) for name, m in blocks.items()
                     for part in ("data", "indices", "indptr", "shape")})


def load(path: Path) -> dict[str, sparse.csr_matrix]:
    with np.load(path) as npz:
        names = sorted({key.split(".")[0] for key in npz.files})
        return {name: sparse.csr_matrix((npz[f"{name}.data"], npz[f"{name}.indices"], npz[f"{name}.indptr"]),
                                        shape=tuple(npz[f"{name}.shape"])) for name in names}


def differing_rows(a: sparse.csr_matrix, b: sparse.csr_matrix) -> int:
    """How many rows of ``a`` and ``b`` differ (all of them when the shapes do)."""
    if a.shape != b.shape:
        return max(a.shape[0], b.shape[0])
    return int(np.unique((a != b).tocoo().row).size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="main", help="the git revision to compare with (default main)")
    parser.add_argument("--data", type=Path, default=ROOT / DATA_DIR, help="folder of the real CSV files")
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)  # the subprocess's side
    args = parser.parse_args(argv)
    os.environ.pop(EMBEDDING_CACHE_ENV, None)
    if args.dump:
        dump(args.data, args.dump)
        return 0
    with tempfile.TemporaryDirectory(prefix="bounded-features-") as tmp:
        before_code, before = Path(tmp) / "ref", Path(tmp) / "before.npz"
        before_code.mkdir()
        archive = subprocess.run(["git", "archive", args.ref, "intent_lib"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before_code)], input=archive, check=True)
        subprocess.run([sys.executable, __file__, "--data", str(args.data), "--dump", str(before)], check=True,
                       env={**os.environ, "PYTHONPATH": str(before_code)})
        old = load(before)
    new = features(args.data)
    failed = set(old) != set(new)
    for name, matrix in new.items():
        rows = differing_rows(old[name], matrix)
        failed |= rows > 0
        print(f"{name:9s} {matrix.shape[0]} x {matrix.shape[1]}: "
              f"{'identical' if rows == 0 else f'{rows} rows differ'} ({args.ref} vs this checkout)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
