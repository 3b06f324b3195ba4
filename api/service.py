"""The served model: ``ModelService`` loads it once, checked against its card, and predicts (api/batcher.py is the
scheduler that feeds it; api/answers.py builds each answer). It refuses to start with a one-line
``StartupError`` and answers ``ShuttingDown`` once unloaded (api/errors.py). BLAS runs on one thread per process:
scale with workers.
"""

import logging
import os
import threading
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from api.answers import Prediction, answers
from api.errors import ShuttingDown, StartupError
from intent_lib.artefacts import ModelIntegrityError, load_checked
from intent_lib.intents import intent_name
from intent_lib.predictor import Predictor
from intent_lib.paths import MODEL_PATH, resolve
from intent_lib.scope import ScopeRule, embed, served_rule
from intent_lib.uncertainty import Uncertainty

log = logging.getLogger("api")


class ModelService:
    """The loaded model and its card; predictions are serialised (the pipeline is not proven thread-safe)."""

    def __init__(self, model_path: Path | None = None) -> None:
        self._configured_path = model_path
        self.predictor: Predictor | None = None
        self.card: dict[str, Any] | None = None
        self.uncertainty: Uncertainty | None = None
        self.scope: ScopeRule | None = None
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._configured_path or resolve(os.environ.get("MODEL_PATH") or MODEL_PATH)

    @property
    def loaded(self) -> bool:
        return self.predictor is not None

    def load(self) -> None:
        """Load the checked model and its card (``load_checked``), warm up; ``StartupError`` when it can't."""
        path = self.path
        try:
            threadpool_limits(1)  # one BLAS thread per process: scale with workers, never oversubscribe the cores
            model, card = load_checked(path)
            names = {int(k): str(v) for k, v in (card.get("names") or {}).items()}
            if not card.get("uncertainty"):
                raise ModelIntegrityError(f"{path}'s card records no unsure threshold: retrain with `make train`.")
            scope = served_rule(model, card)
            predictor = Predictor(model)
            predictor.predict_proba(["warm-up"])  # builds lazy lookups (and loads the encoder) before the first request
        except ModelIntegrityError as exc:
            raise StartupError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a pickle or card that loads but cannot serve: one-line refusal
            raise StartupError(f"{path} loads but cannot predict ({type(exc).__name__}): "
                               "retrain with `make train`.") from None
        self._names = names
        self.card = card
        self.uncertainty = Uncertainty.from_dict(card["uncertainty"])
        self.scope = scope
        self.predictor = predictor
        log.info("model %s loaded from %s", card.get("model_version"), path)

    def unload(self) -> None:
        with self._lock:
            self.predictor = None

    def name(self, intent: int) -> str:
        return self._names.get(intent) or intent_name(intent)

    def predict(self, queries: list[str], k: int) -> list[Prediction]:
        with self._lock:
            predictor = self.predictor
            if predictor is None:
                raise ShuttingDown()
            cleaned = predictor.clean_texts(queries)
            proba = predictor.proba_of_cleaned(cleaned)
            outside = self.scope.flag(embed(cleaned)) if self.scope else [False] * len(cleaned)  # cached embeddings
        return answers(queries, cleaned, proba, outside, predictor.classes_, k, self.uncertainty, self.name)
