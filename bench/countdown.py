"""Countdown: wakes a waiting coroutine once a known number of things have happened (the
answers of a round, in the in-process diagnostics `bench.standin` and `bench.taskcost`)."""

from __future__ import annotations

import asyncio

__all__ = ["Countdown"]


class Countdown:
    def __init__(self) -> None:
        self.waiting = 0
        self.done = asyncio.Event()

    def expect(self, count: int) -> None:
        """Start a round of `count`."""
        self.waiting = count
        self.done.clear()

    def one(self) -> None:
        self.waiting -= 1
        if self.waiting <= 0:
            self.done.set()
