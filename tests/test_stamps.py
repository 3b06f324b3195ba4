"""What a step's stamp hashes: content without times, the modules a notebook imports, resolved parameters."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from intent_lib import paths
from intent_lib.stamps import content_hash, imported_modules, resolved_parameters


def test_json_is_hashed_without_times_durations_and_commit(tmp_path: Path) -> None:
    card = {"model_sha256": "ab", "trained_at": "2026-12-02T10:00:00+00:00", "git_commit": "d53ed72",
            "training": {"fit_seconds": 12.5, "rows": 10}, "runs": [{"seed": 0, "seconds": 3.1}]}
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    first = content_hash(path)
    later = card | {"trained_at": "2026-12-03T11:00:00+00:00", "git_commit": "e9ab278",
                    "training": {"fit_seconds": 14.0, "rows": 10}, "runs": [{"seed": 0, "seconds": 2.7}]}
    path.write_text(json.dumps(later, indent=2))
    assert content_hash(path) == first
    path.write_text(json.dumps(later | {"training": {"fit_seconds": 14.0, "rows": 11}}))
    assert content_hash(path) != first
    assert content_hash(tmp_path / "absent.json") is None


def _npz(path: Path, arrays: dict[str, np.ndarray], date_time: tuple[int, ...]) -> Path:
    """An .npz as numpy writes one, with the zip entries dated ``date_time``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=date_time), buffer.getvalue())
    return path


def test_npz_is_hashed_by_its_arrays_not_the_time_it_was_written(tmp_path: Path) -> None:
    arrays = {"ids": np.arange(4), "proba": np.full((4, 2), 0.5, dtype=np.float32)}
    monday = _npz(tmp_path / "a.npz", arrays, (2026, 11, 30, 9, 0, 0))
    tuesday = _npz(tmp_path / "b.npz", arrays, (2026, 12, 1, 17, 30, 0))
    assert monday.read_bytes() != tuesday.read_bytes()
    assert content_hash(monday) == content_hash(tuesday)
    changed = _npz(tmp_path / "c.npz", arrays | {"proba": np.full((4, 2), 0.25, dtype=np.float32)}, (2026, 12, 1, 0, 0, 0))
    assert content_hash(changed) != content_hash(monday)


def test_imported_modules_follow_the_package_import_graph(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {"__init__.py": "", "a.py": "import os\ndef f():\n    from pkg.b import g\n", "b.py": "from . import c\n",
             "c.py": "", "unused.py": "import pkg.a\n", "sub/__init__.py": "", "sub/d.py": "import numpy\nfrom ..b import g\n"}
    for name, text in files.items():
        (package / name).write_text(text)
    found = imported_modules(["from pkg import a, paths_not_a_module", "import pkg.sub.d as d"], package)
    assert [str(p.relative_to(package)) for p in found] == ["__init__.py", "a.py", "b.py", "c.py", "sub/__init__.py",
                                                            "sub/d.py"]


def test_the_real_notebooks_stamp_the_modules_they_run() -> None:
    """06_data_quality runs intent_lib.data_quality and what it imports (predictions); 01_split does not (editing it
    reruns 06 only)."""
    from intent_lib.stamps import step_inputs

    root = Path(__file__).resolve().parents[1]
    quality = step_inputs(root, "06_data_quality", {})["code"]
    split = step_inputs(root, "01_split", {})["code"]
    assert {"intent_lib/__init__.py", "intent_lib/data_quality.py", "intent_lib/predictions.py"} <= set(quality)
    assert "intent_lib/data_quality.py" not in split and "intent_lib/split.py" in split


def test_resolved_parameters_are_the_defaults_with_the_overrides() -> None:
    declared = {"processed_dir": {"default": "str(paths.PROCESSED_DIR)"}, "n_examples": {"default": "25"},
                "alpha": {"default": "0.1"}}
    assert resolved_parameters(declared, {"alpha": 0.2}) == {"processed_dir": "str(paths.PROCESSED_DIR)",
                                                              "n_examples": 25, "alpha": 0.2}
    assert resolved_parameters(declared, {"n_examples": 25}) == resolved_parameters(declared, {})


def test_every_training_step_declares_what_it_reads_and_writes() -> None:
    assert tuple(paths.STEP_FILES) == paths.TRAIN_NOTEBOOKS
    written = [path for _, writes in paths.STEP_FILES.values() for path in writes]
    assert len(written) == len(set(written)), "one step writes each file"
    assert paths.TEST_INPUTS_PATH in paths.STEP_FILES["06_data_quality"][0]
    assert paths.BEST_PARAMS_PATH in paths.STEP_FILES["02_train"][0]
