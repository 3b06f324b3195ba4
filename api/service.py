"""The served model: loaded once and checked against its card, and the scheduler that feeds it.

``ModelService`` owns the model and its card; ``MicroBatcher`` groups concurrent single questions into one
call of the model and cuts big batches into chunks interleaved with them; ``Prediction`` (``api.answers``) is
what both endpoints return per question. Domain errors (``ServiceError``) carry their HTTP status; app.py maps
them. BLAS runs on one thread per process: scale with workers.
"""

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec.structs
from threadpoolctl import threadpool_limits

from api.answers import Prediction, Scored, answers
from api.settings import CHUNK_CHARS, CHUNK_QUESTIONS, RETRY_AFTER_SECONDS, SINGLES_PER_CALL, Settings
from intent_lib.artefacts import ModelIntegrityError, load_checked
from intent_lib.intents import intent_name
from intent_lib.predictor import Predictor
from intent_lib.paths import MODEL_PATH, resolve
from intent_lib.scope import ScopeRule, embed, served_rule
from intent_lib.uncertainty import Uncertainty

__all__ = ["MicroBatcher", "ModelService", "Prediction", "Scored", "ServiceError", "StartupError"]

log = logging.getLogger("api")


class StartupError(RuntimeError):
    """The model cannot be served; the message is one line that says what to do."""


class ServiceError(RuntimeError):
    """A request the service cannot answer now; ``status`` and ``retry_after`` say how to tell the client."""

    status = 503
    retry_after: int | None = RETRY_AFTER_SECONDS


class NotReady(ServiceError):
    def __init__(self) -> None:
        super().__init__("The model is not loaded yet.")


class ShuttingDown(ServiceError):
    def __init__(self) -> None:
        super().__init__("The server is shutting down: retry on another instance.")


class Overloaded(ServiceError):
    status = 429

    def __init__(self, limit: int) -> None:
        super().__init__(f"Too many batch requests at once (at most {limit} per worker): retry later.")


class TimedOut(ServiceError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request waited more than {seconds:g} s for the model: retry later.")


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


@dataclass
class _Single:
    query: str
    k: int
    future: "asyncio.Future[Prediction]"
    started: asyncio.Event = field(default_factory=asyncio.Event)  # the model is on it


@dataclass
class _Batch:
    """A batch request being predicted chunk by chunk; ``results`` so far."""

    queries: list[str]
    k: int
    future: "asyncio.Future[list[Prediction]]"
    results: list[Prediction] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)  # its first chunk went to the model

    def next_chunk(self, max_questions: int, max_chars: int) -> list[str]:
        start = len(self.results)
        end, chars = start, 0
        while end < len(self.queries) and end - start < max_questions:
            chars += len(self.queries[end])
            if chars > max_chars and end > start:
                break
            end += 1
        return self.queries[start:end]


class MicroBatcher:
    """Feeds the model one call at a time, alternating while both wait between the waiting single questions (up
    to ``max_singles`` in one call) and the next chunk of a batch request (at most ``chunk_questions`` questions
    or ``chunk_chars`` characters; batches take turns), so neither a big batch nor a flood of single questions
    starves the other.

    Grouping single questions into one call multiplies throughput under load; an idle server answers at once
    (nothing waits for a batch to fill). A request the model has not started on within ``request_timeout``
    seconds answers ``TimedOut``; once started it runs to the end (a full batch of long questions takes tens of
    seconds, and it gives way to single questions between its chunks).
    """

    def __init__(self, service: ModelService, max_singles: int = SINGLES_PER_CALL,
                 chunk_questions: int = CHUNK_QUESTIONS, chunk_chars: int = CHUNK_CHARS,
                 max_batch_requests: int = Settings.max_batch_requests,
                 request_timeout: float = Settings.request_timeout) -> None:
        self.service = service
        self.max_singles = max_singles
        self.chunk_questions = chunk_questions
        self.chunk_chars = chunk_chars
        self.max_batch_requests = max_batch_requests
        self.request_timeout = request_timeout
        self.on_call: Callable[[int], None] | None = None  # told each model call's size (metrics)
        self._singles: deque[_Single] = deque()
        self._batches: deque[_Batch] = deque()
        self._active_batches = 0
        self._batch_turn = False  # singles and batch chunks alternate while both wait
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="intent-micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_all(ShuttingDown())
        self._task = self._wake = None

    async def predict(self, query: str, k: int) -> Prediction:
        """One question, grouped with the others waiting."""
        if self._wake is None:
            raise NotReady()
        item = _Single(query, k, asyncio.get_running_loop().create_future())
        self._singles.append(item)
        self._wake.set()
        return await self._answer(item)

    async def predict_many(self, queries: list[str], k: int) -> list[Prediction]:
        """A batch, in chunks; ``Overloaded`` when ``max_batch_requests`` batches are already running."""
        if self._wake is None:
            raise NotReady()
        if self._active_batches >= self.max_batch_requests:
            raise Overloaded(self.max_batch_requests)
        item = _Batch(queries, k, asyncio.get_running_loop().create_future())
        self._active_batches += 1
        try:
            self._batches.append(item)
            self._wake.set()
            return await self._answer(item)
        finally:
            self._active_batches -= 1

    async def _answer(self, item: _Single | _Batch) -> Any:
        """``item``'s result, or ``TimedOut`` when the model has not started on it within ``request_timeout``
        (the item is then dropped from the queue)."""
        started = asyncio.ensure_future(item.started.wait())
        try:
            await asyncio.wait([started, item.future], timeout=self.request_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if not item.started.is_set():
            _settle(item.future, exc=TimedOut(self.request_timeout))
        return await item.future

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            if self._batches and (self._batch_turn or not self._singles):
                self._batch_turn = False
                await self._predict_chunk(self._batches.popleft())
            elif self._singles:
                self._batch_turn = True
                await self._predict_singles()
            else:
                self._wake.clear()

    async def _predict_singles(self) -> None:
        items: list[_Single] = []
        while self._singles and len(items) < self.max_singles:
            item = self._singles.popleft()
            if not item.future.done():  # a request that timed out while waiting is dropped
                items.append(item)
        if not items:
            return
        for item in items:
            item.started.set()
        k = max(item.k for item in items)
        try:
            predictions = await self._call([item.future for item in items], [item.query for item in items], k)
        except Exception as exc:  # noqa: BLE001 - handed to each waiting request
            for item in items:
                _settle(item.future, exc=exc)
            return
        for item, prediction in zip(items, predictions):
            _settle(item.future, prediction if item.k == k else _trim(prediction, item.k))

    async def _predict_chunk(self, batch: _Batch) -> None:
        if batch.future.done():  # timed out or cancelled: its remaining chunks are dropped
            return
        chunk = batch.next_chunk(self.chunk_questions, self.chunk_chars)
        batch.started.set()
        try:
            batch.results.extend(await self._call([batch.future], chunk, batch.k))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            _settle(batch.future, exc=exc)
            return
        if len(batch.results) == len(batch.queries):
            _settle(batch.future, batch.results)
        else:
            self._batches.append(batch)  # back of the line: batches take turns

    async def _call(self, futures: list["asyncio.Future[Any]"], queries: list[str], k: int) -> list[Prediction]:
        """One model call in a worker thread; if the batcher is stopped meanwhile, ``futures`` get a 503."""
        if self.on_call is not None:
            self.on_call(len(queries))
        try:
            return await anyio.to_thread.run_sync(self.service.predict, queries, k)
        except asyncio.CancelledError:
            for future in futures:
                _settle(future, exc=ShuttingDown())
            raise

    def _fail_all(self, exc: ServiceError) -> None:
        while self._singles:
            _settle(self._singles.popleft().future, exc=exc)
        while self._batches:
            _settle(self._batches.popleft().future, exc=exc)


def _settle(future: "asyncio.Future[Any]", result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _trim(prediction: Prediction, k: int) -> Prediction:
    return msgspec.structs.replace(prediction, top_k=prediction.top_k[:k])
