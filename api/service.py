"""The served model: loaded once and checked against its card, and a micro-batcher for single questions.

``ModelService`` owns the model and its card; ``MicroBatcher`` groups concurrent single questions into one
call of the model; ``Prediction`` is what both endpoints return per question: the intent, whether the
model is unsure of it (confidence below the card's threshold), the top k intents and the conformal set of
candidate intents. BLAS runs on one thread per process: scale with workers, not threads.
"""

import asyncio
import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import msgspec
import msgspec.structs
from litestar.exceptions import HTTPException
from threadpoolctl import threadpool_limits

from intent_lib.artefacts import ModelIntegrityError, load_checked
from intent_lib.intents import intent_name
from intent_lib.model import rank, top_k
from intent_lib.paths import MODEL_PATH, resolve
from intent_lib.uncertainty import Uncertainty

log = logging.getLogger("api")



class StartupError(RuntimeError):
    """The model cannot be served; the message is one line that says what to do."""


class ModelService:
    """The loaded model and its card; predictions are serialised (the pipeline is not proven thread-safe)."""

    def __init__(self, model_path: Path | None = None) -> None:
        self._configured_path = model_path
        self.model: Any = None
        self.card: dict[str, Any] | None = None
        self.uncertainty: Uncertainty | None = None
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._configured_path or resolve(os.environ.get("MODEL_PATH") or MODEL_PATH)

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self) -> None:
        """Load the checked model and its card (``load_checked``), warm up; ``StartupError`` when it can't."""
        path = self.path
        try:
            threadpool_limits(1, user_api="blas")  # several BLAS threads per process oversubscribe the cores
            model, card = load_checked(path)
            if not card.get("uncertainty"):
                raise ModelIntegrityError(f"{path}'s card records no unsure threshold: retrain with `make train`.")
            top_k(model, ["warm-up"], 1)  # builds lazy lookups (and loads the encoder) before the first request
        except ModelIntegrityError as exc:
            raise StartupError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a pickle that loads but cannot predict: still a one-line refusal
            raise StartupError(f"{path} loads but cannot predict ({type(exc).__name__}: {exc}): "
                               "retrain with `make train`.") from None
        self._names = {int(k): v for k, v in (card.get("names") or {}).items()}
        self.card = card
        self.uncertainty = Uncertainty.from_dict(card["uncertainty"])
        self.model = model
        log.info("model %s loaded from %s", card.get("model_version"), path)

    def unload(self) -> None:
        self.model = None

    def name(self, intent: int) -> str:
        return self._names.get(intent) or intent_name(intent)

    def predict(self, queries: list[str], k: int) -> list["Prediction"]:
        with self._lock:
            proba = self.model.predict_proba(queries)
        classes = self.model.classes_
        sets = rank(proba, classes, k, members=self.uncertainty.sets(proba))
        out = []
        for query, pairs, candidates in zip(queries, rank(proba, classes, k), sets):
            scored = self._scored(pairs)
            out.append(Prediction(query=query, intent=scored[0].intent, name=scored[0].name,
                                  confidence=scored[0].score, unsure=bool(self.uncertainty.unsure(scored[0].score)),
                                  top_k=scored, candidates=self._scored(candidates)))
        return out

    def _scored(self, pairs: list[tuple[int, float]]) -> list["Scored"]:
        return [Scored(intent=i, name=self.name(i), score=p) for i, p in pairs]


class MicroBatcher:
    """Groups single questions that arrive while the model is busy into one call of the model.

    A call of the model costs ~1.4 ms for one question but ~2.5 ms for eight, so under concurrent load this
    multiplies throughput; an idle server answers at once (nothing waits for a batch to fill).
    """

    def __init__(self, service: ModelService, max_batch: int = 64) -> None:
        self.service = service
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[str, int, asyncio.Future[Prediction]]] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="intent-micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue is not None and not self._queue.empty():  # requests caught by the shutdown
            _fail([self._queue.get_nowait()], HTTPException(status_code=503, detail="The server is shutting down."))
        self._task = self._queue = None

    async def predict(self, query: str, k: int) -> "Prediction":
        if self._queue is None:  # not started (e.g. no lifespan): plain call
            return (await anyio.to_thread.run_sync(self.service.predict, [query], k))[0]
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((query, k, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            items = [await self._queue.get()]
            while len(items) < self.max_batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            k = max(k for _, k, _ in items)
            try:
                predictions = await anyio.to_thread.run_sync(self.service.predict, [q for q, _, _ in items], k)
            except asyncio.CancelledError:
                _fail(items, HTTPException(status_code=503, detail="The server is shutting down."))
                raise
            except Exception as exc:  # noqa: BLE001 - handed to each waiting request (a JSON 500 there)
                _fail(items, exc)
                continue
            for (_, k_wanted, future), prediction in zip(items, predictions):
                if not future.done():
                    future.set_result(prediction if k_wanted == k else _trim(prediction, k_wanted))


def _fail(items: list[tuple[str, int, "asyncio.Future[Prediction]"]], exc: BaseException) -> None:
    for _, _, future in items:
        if not future.done():
            future.set_exception(exc)


def _trim(prediction: "Prediction", k: int) -> "Prediction":
    return msgspec.structs.replace(prediction, top_k=prediction.top_k[:k])


class Scored(msgspec.Struct):
    intent: int
    name: str
    score: float


class Prediction(msgspec.Struct):
    query: str
    intent: int
    name: str
    confidence: float
    unsure: bool  # confidence below the threshold chosen on validation for the target accuracy
    top_k: list[Scored]
    candidates: list[Scored]  # the conformal prediction set: holds the true intent with probability >= 1 - alpha
