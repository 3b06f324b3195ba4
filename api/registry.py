"""The model versions one server process holds, and which of them answers each request.

A worker holds its first version and, during a reload, the new one beside it, each with its own micro-batcher.
Every request takes the version the pointer (``api.versions.InService``) names when the request starts, or the
worker's own when there is no pointer (a server run without the supervisor, or before the first version is in
service), and keeps it to the end: a batch is never answered by two models. ``drop`` waits until the requests
holding a version have finished, then frees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from litestar.types import Message, Scope, Send

from api.batcher import MicroBatcher
from api.errors import NotReady
from api.service import ModelService
from api.settings import Settings
from api.versions import InService, sha12


@dataclass
class Slot:
    """One loaded version and the requests holding it."""

    name: str  # sha12
    service: ModelService
    batcher: MicroBatcher
    holders: int = 0

    @property
    def model_version(self) -> str:
        return str((self.service.card or {}).get("model_version"))


class Registry:
    def __init__(self, settings: Settings, pointer: InService | None = None,
                 on_call: Callable[[int], None] | None = None,
                 on_model_time: Callable[[float], None] | None = None) -> None:
        self.settings = settings
        self.pointer = pointer
        self.on_call = on_call  # told each model call's size (metrics)
        self.on_model_time = on_model_time  # told each request's model seconds (metrics)
        self.slots: dict[str, Slot] = {}
        self.own: str | None = None  # the version this process answers with when the pointer names none it holds
        self.loop: asyncio.AbstractEventLoop | None = None  # the one serving, once a version is added
        self._released: asyncio.Condition | None = None  # made in the event loop

    def add(self, service: ModelService) -> Slot:
        """Serve the loaded ``service`` (in the event loop); the first one added is this process's own."""
        batcher = MicroBatcher(service, max_batch_requests=self.settings.max_batch_requests,
                               request_timeout=self.settings.request_timeout)
        batcher.on_call = self.on_call
        batcher.on_model_time = self.on_model_time
        self.loop = asyncio.get_running_loop()
        batcher.start()
        slot = Slot(sha12(service.card or {}), service, batcher)
        self.slots[slot.name] = slot
        self.own = self.own or slot.name
        return slot

    def current(self) -> Slot | None:
        """The version a request starting now gets."""
        named = self.pointer.read() if self.pointer is not None else None
        if named in self.slots:
            self.own = named  # the pointer moved here: the old version may go
            return self.slots[named]
        return self.slots.get(self.own or "")

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[Slot]:
        """The current version, held (not freed) until the block ends; ``NotReady`` when none is loaded."""
        slot = self.current()
        if slot is None or not slot.service.loaded:
            raise NotReady()
        slot.holders += 1
        try:
            yield slot
        finally:
            slot.holders -= 1
            async with self._condition():
                self._condition().notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._released is None:
            self._released = asyncio.Condition()
        return self._released

    async def drop(self, name: str) -> None:
        """Free version ``name`` once no request holds it (no request can take it any more: the pointer moved)."""
        slot = self.slots.get(name)
        if slot is None:
            return
        async with self._condition():
            await self._condition().wait_for(lambda: slot.holders == 0)
        del self.slots[name]
        if self.own == name:
            self.own = next(iter(self.slots), None)
        await slot.batcher.stop()
        slot.service.unload()

    def naming_version(self, scope: Scope, send: Send) -> Send:
        """``send`` adding X-Model-Version to a response: the version that answered it, or the one in service."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered = scope.get("state", {}).get("model_version")
                slot = None if answered else self.current()
                version = answered or (slot.model_version if slot else "")
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-model-version", version.encode("ascii", "replace"))]}
            await send(message)

        return wrapped

    async def close(self) -> None:
        for slot in list(self.slots.values()):
            await slot.batcher.stop()
            slot.service.unload()
        self.slots.clear()
