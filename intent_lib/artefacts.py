"""The trained model on disk: save the pickle, and load it back only after checking it against its card.

``model_bytes`` is the one pickle of a model: canonical, so that two fits with equal values give equal bytes.

``load_checked`` is the one way anything loads a saved model (the API's workers, notebook 03's out-of-scope
figures, notebook 04): card present and well-formed, pickle sha256 as recorded, pickle libraries at the recorded
versions, then unpickle and check it is an intent model. ``check_file`` is those checks without the unpickling
(the API checks the private copy of a version before keeping it). Each refusal is a one-line
``ModelIntegrityError`` saying what to do. Unpickling runs code: whoever can write ``models/`` can run code in
what loads it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

from intent_lib.card import version_mismatches
from intent_lib.files import sha256_of
from intent_lib.paths import card_path

RETRAIN = "retrain with `make train`"


class ModelIntegrityError(RuntimeError):
    """The model or its card is missing, malformed or does not match; the message is one line."""


def model_bytes(model: Any) -> bytes:
    """The model's pickle, written without the pickler's memo: its bytes depend on the values alone, not on which
    equal strings and dtypes happen to be one object. That sharing differs between runs: a block fitted in a joblib
    worker comes back through a pickle round trip, with its own copies of the strings (``'l2'``) and numpy dtypes an
    in-process fit shares with the rest of the model. Memo-less pickling (``Pickler.fast``) refuses a cyclic
    object with ``ValueError``; a fitted pipeline has none."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    pickler.dump(model)
    return buffer.getvalue()


def save_model(model: Any, path: Path) -> str:
    """Pickle the model (``model_bytes``) to ``path`` atomically; return the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(model_bytes(model))
    tmp.replace(path)
    return sha256_of(path)


def read_checked_card(model_path: Path) -> dict[str, Any]:
    """The card beside ``model_path``, refused unless it is a JSON object recording the pickle's sha256."""
    path = card_path(model_path)
    if not path.is_file():
        raise ModelIntegrityError(f"No model card at {path}: run `make train` first.")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelIntegrityError(f"{path} is not valid JSON: {RETRAIN}.") from None
    if not isinstance(card, dict):
        raise ModelIntegrityError(f"{path} is not a model card (a JSON {type(card).__name__}): {RETRAIN}.")
    if not isinstance(card.get("model_sha256"), str) or not card["model_sha256"]:
        raise ModelIntegrityError(f"{path} records no model_sha256: {RETRAIN}.")
    return card


def check_file(model_path: Path) -> dict[str, Any]:
    """The card of the pickle at ``model_path`` once the file passes every check short of unpickling it."""
    if not model_path.is_file():
        raise ModelIntegrityError(f"No model at {model_path}: run `make train` first (or set MODEL_PATH).")
    card = read_checked_card(model_path)
    if sha256_of(model_path) != card["model_sha256"]:
        raise ModelIntegrityError(f"{model_path} does not match the sha256 in its model card: {RETRAIN}.")
    mismatches = version_mismatches(card)
    if mismatches:
        raise ModelIntegrityError(f"{model_path} was trained with other library versions "
                                  f"({'; '.join(mismatches)}): {RETRAIN}, or use the versions of requirements/*.lock.")
    return card


def load_checked(model_path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """The model at ``model_path`` and its card, after every check; ``ModelIntegrityError`` when one fails."""
    path = Path(model_path)
    card = check_file(path)
    try:
        with path.open("rb") as fh:
            model = pickle.load(fh)  # noqa: S301 - the file's hash was checked against the card we wrote
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the same refusal
        raise ModelIntegrityError(f"{path} cannot be unpickled ({type(exc).__name__}): {RETRAIN}.") from None
    if not (callable(getattr(model, "predict_proba", None)) and hasattr(model, "classes_")):
        raise ModelIntegrityError(f"{path} holds a {type(model).__name__}, not a fitted intent model: {RETRAIN}.")
    return model, card
