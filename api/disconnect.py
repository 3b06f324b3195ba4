"""Noticing that a client has gone away while its request is answered: the ASGI ``http.disconnect`` message."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar.types import Receive


@contextlib.asynccontextmanager
async def disconnect_watch(receive: Receive) -> AsyncIterator[asyncio.Event]:
    """An event set once the client disconnects, watched until the block ends. Only for a request whose body has
    been read whole: what ``receive`` gives after it is the disconnect."""
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    task = asyncio.ensure_future(watch())
    try:
        yield gone
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
