"""The scheduler that feeds the served model (api/service.py): ``MicroBatcher`` groups concurrent single questions
into one call of the model, within a budget of questions and characters per call, and cuts big batches into chunks
interleaved with them; a batch whose client has gone away stops at its next chunk. Each request's model time
(the calls it was part of) is told to ``on_model_time`` (metrics); each call's answers and the questions left
waiting go to api/metrics.py.
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec.structs

from api import metrics
from api.answers import Prediction
from api.errors import NotReady, Overloaded, ServiceError, ShuttingDown, TimedOut
from api.service import ModelService
from api.settings import CHUNK_CHARS, CHUNK_QUESTIONS, SINGLES_CHARS, SINGLES_PER_CALL, Settings


class ClientGone(ServiceError):
    """The client of a batch closed its connection: nobody reads the answer (499, as nginx logs it)."""

    status = 499
    retry_after = None

    def __init__(self) -> None:
        super().__init__("The client closed the connection: the batch was stopped.")


@dataclass
class _Request:
    """What a waiting request shares: its result, whether the model started on it, its model time so far."""

    k: int
    future: "asyncio.Future[Any]"
    started: asyncio.Event = field(default_factory=asyncio.Event)
    model_seconds: float = 0.0


@dataclass
class _Single(_Request):
    query: str = ""


@dataclass
class _Batch(_Request):
    """A batch request being predicted chunk by chunk; ``results`` so far; ``gone`` set when its client left."""

    queries: list[str] = field(default_factory=list)
    results: list[Prediction] = field(default_factory=list)
    gone: asyncio.Event | None = None

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
    to ``max_singles`` questions and ``singles_chars`` characters in one call, at least one question) and the next
    chunk of a batch request (at most ``chunk_questions`` questions or ``chunk_chars`` characters; batches take
    turns), so neither a big batch nor a flood of single questions starves the other, and a long question never
    makes many short ones wait for it.

    Grouping single questions into one call multiplies throughput under load; an idle server answers at once
    (nothing waits for a batch to fill). A request the model has not started on within ``request_timeout``
    seconds answers ``TimedOut``; once started it runs to the end (a full batch of long questions takes tens of
    seconds, and it gives way to single questions between its chunks), unless its client goes away
    (``ClientGone`` at the next chunk).
    """

    def __init__(self, service: ModelService, max_singles: int = SINGLES_PER_CALL,
                 singles_chars: int = SINGLES_CHARS, chunk_questions: int = CHUNK_QUESTIONS,
                 chunk_chars: int = CHUNK_CHARS, max_batch_requests: int = Settings.max_batch_requests,
                 request_timeout: float = Settings.request_timeout) -> None:
        self.service = service
        self.max_singles = max_singles
        self.singles_chars = singles_chars
        self.chunk_questions = chunk_questions
        self.chunk_chars = chunk_chars
        self.max_batch_requests = max_batch_requests
        self.request_timeout = request_timeout
        self.on_call: Callable[[int], None] | None = None  # told each model call's size (metrics)
        self.on_model_time: Callable[[float], None] | None = None  # told each request's model seconds (metrics)
        self._singles: deque[_Single] = deque()
        self._batches: deque[_Batch] = deque()
        self._active_batches = 0
        self._batch_turn = False  # singles and batch chunks alternate while both wait
        self._batch_rest = 0  # the questions after the chunk being predicted, of a batch out of the queue meanwhile
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
        item = _Single(k, asyncio.get_running_loop().create_future(), query=query)
        self._singles.append(item)
        self._observe_queue()
        self._wake.set()
        return await self._answer(item)

    async def predict_many(self, queries: list[str], k: int, gone: asyncio.Event | None = None) -> list[Prediction]:
        """A batch, in chunks; ``Overloaded`` when ``max_batch_requests`` batches are already running; ``ClientGone``
        at the first chunk after ``gone`` is set."""
        if self._wake is None:
            raise NotReady()
        if self._active_batches >= self.max_batch_requests:
            raise Overloaded(self.max_batch_requests)
        item = _Batch(k, asyncio.get_running_loop().create_future(), queries=queries, gone=gone)
        self._active_batches += 1
        try:
            self._batches.append(item)
            self._observe_queue()
            self._wake.set()
            return await self._answer(item)
        finally:
            self._active_batches -= 1

    async def _answer(self, item: _Request) -> Any:
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

    def _next_singles(self) -> list[_Single]:
        """The waiting single questions of the next call, in order, within the questions and characters budgets."""
        items: list[_Single] = []
        chars = 0
        while self._singles and len(items) < self.max_singles:
            item = self._singles[0]
            if item.future.done():  # a request that timed out while waiting is dropped
                self._singles.popleft()
                continue
            if items and chars + len(item.query) > self.singles_chars:
                break
            items.append(self._singles.popleft())
            chars += len(item.query)
        return items

    async def _predict_singles(self) -> None:
        items = self._next_singles()
        if not items:
            return
        self._observe_queue()
        k = max(item.k for item in items)
        try:
            predictions = await self._call(items, [item.query for item in items], k)
        except Exception as exc:  # noqa: BLE001 - handed to each waiting request
            for item in items:
                self._finish(item, exc=exc)
            return
        for item, prediction in zip(items, predictions):
            self._finish(item, prediction if item.k == k else _trim(prediction, item.k))

    async def _predict_chunk(self, batch: _Batch) -> None:
        if batch.future.done():  # timed out or cancelled: its remaining chunks are dropped
            return
        if batch.gone is not None and batch.gone.is_set():
            self._finish(batch, exc=ClientGone())
            return
        chunk = batch.next_chunk(self.chunk_questions, self.chunk_chars)
        self._batch_rest = len(batch.queries) - len(batch.results) - len(chunk)
        self._observe_queue()
        try:
            batch.results.extend(await self._call([batch], chunk, batch.k))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            self._finish(batch, exc=exc)
            return
        finally:
            self._batch_rest = 0
        if len(batch.results) == len(batch.queries):
            self._finish(batch, batch.results)
        else:
            self._batches.append(batch)  # back of the line: batches take turns

    async def _call(self, items: list[_Single] | list[_Batch], queries: list[str], k: int) -> list[Prediction]:
        """One model call in a worker thread, its time added to each of ``items``; if the batcher is stopped
        meanwhile, ``items`` get a 503."""
        if self.on_call is not None:
            self.on_call(len(queries))
        for item in items:
            item.started.set()
        encoded = metrics.cache_encoded()
        start = time.perf_counter()
        try:
            predictions = await anyio.to_thread.run_sync(self.service.predict, queries, k)
        except asyncio.CancelledError:
            for item in items:
                _settle(item.future, exc=ShuttingDown())
            raise
        finally:
            for item in items:
                item.model_seconds += time.perf_counter() - start
        metrics.observe_answers(predictions, encoded)
        return predictions

    def _observe_queue(self) -> None:
        """Tell the metrics how many questions are queued for the model: the single questions and the batches'
        questions not yet in a model call. A request that timed out stays queued until its turn drops it."""
        metrics.observe_queue(len(self._singles) + self._batch_rest
                              + sum(len(b.queries) - len(b.results) for b in self._batches))

    def _finish(self, item: _Request, result: Any = None, exc: BaseException | None = None) -> None:
        """Settle ``item`` and tell its model time."""
        if self.on_model_time is not None and item.model_seconds > 0 and not item.future.done():
            self.on_model_time(item.model_seconds)
        _settle(item.future, result, exc)

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
