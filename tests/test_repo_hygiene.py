"""Nothing secret, private or generated is tracked by git; notebooks are committed without outputs and compile."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_PASSPHRASE = REPO.parent / "shared" / "data" / "passphrase.txt"
FORBIDDEN = re.compile(r"(^|/)(data/.*\.csv|.*\.gpg|.*\.tgz|.*passphrase[^/]*\.txt|models/.*\.(pkl|joblib))$")


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return out.splitlines()


def test_no_data_archive_passphrase_or_model_is_tracked() -> None:
    assert [f for f in tracked_files() if FORBIDDEN.search(f)] == []


def test_no_tracked_file_holds_the_passphrase_or_real_rows() -> None:
    needles: list[bytes] = []
    if SHARED_PASSPHRASE.is_file():
        needles.append(SHARED_PASSPHRASE.read_text().strip().encode())
    real = REPO / "data" / "input_train.csv"
    if real.is_file():  # a few long real questions must not appear anywhere in the repository
        lines = [ln for ln in real.read_text(encoding="utf-8").splitlines() if len(ln) > 80]
        needles += [ln.split(",", 1)[1].strip('"').encode() for ln in lines[:20]]
    if not needles:
        pytest.skip("neither the passphrase nor the real data is on this machine")
    for name in tracked_files():
        path = REPO / name
        if path.is_file():
            content = path.read_bytes()
            assert not any(n in content for n in needles), f"{name} holds the passphrase or real data"


def test_notebooks_are_committed_without_outputs_keep_parameters_and_compile() -> None:
    notebooks = [f for f in tracked_files() if f.endswith(".ipynb")]
    assert notebooks, "no notebook tracked"
    for name in notebooks:
        nb = json.loads((REPO / name).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{name} has outputs"
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), f"{name}: no parameters cell"
        for index, cell in enumerate(code):  # a syntax error is found here, not minutes into `make train`
            source = "".join(cell["source"])
            try:
                compile(source, f"{name} code cell {index}", "exec")
            except SyntaxError as exc:
                pytest.fail(f"{name}, code cell {index}: {exc}")


def test_locks_pin_the_same_versions_of_what_the_pickle_needs() -> None:
    """A model trained from train.lock must load where serve.lock is installed."""
    from intent_lib.card import PICKLE_LIBRARIES

    def pins(lock: str) -> dict[str, str]:
        lines = (REPO / "requirements" / lock).read_text().splitlines()
        return dict(line.split("#")[0].strip().split("==") for line in lines if "==" in line)

    locks = {name: pins(name) for name in ("dev.lock", "train.lock", "serve.lock")}
    for library in PICKLE_LIBRARIES:
        assert len({pinned[library] for pinned in locks.values()}) == 1, f"{library} differs between the locks"
