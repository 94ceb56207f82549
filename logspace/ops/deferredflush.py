"""A flush deferred to the end of the event loop's current turn.

A fleet's requests end by the hundred in one turn of the loop (their shared bulk is
answered), and each asks for its access line to be written and its counts to be shown.
However often a turn asks, the flush runs once, after the turn's callbacks. Off a running
loop (start-up, tools, tests) it runs at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DeferredFlush:
    """`request()` runs `flush` once at the end of the running loop's turn, or at once."""

    __slots__ = ("_flush", "_on")

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        # The loop the flush is due on. One closed before it ran the flush holds nothing up.
        self._on: asyncio.AbstractEventLoop | None = None

    def request(self) -> None:
        on = self._on
        if on is not None and not on.is_closed():
            return  # due already
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop: at once
            self._on = None
            self._flush()
            return
        self._on = loop
        loop.call_soon(self._run, loop)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._on is loop:
            self._on = None
        self._flush()
