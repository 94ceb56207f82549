"""A serving HQ keeps freed heap for its next requests rather than giving it back at once."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the heap settings are glibc's"
)

# In a process of its own (the settings are the process's): a piece of 4 MiB taken and freed,
# then what the heap holds free and what is mapped apart from it, by `mallinfo2`.
_PROBE = """
import ctypes, sys
from logspace.ops import heap
if sys.argv[1] == "tuned":
    assert heap.tune(64 * 1024 * 1024)
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
piece = bytes(4 * 1024 * 1024)
held = mallinfo2()
del piece
freed = mallinfo2()
print(held.hblkhd, freed.fordblks)
"""


def _probe(how: str) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, how], capture_output=True, text=True, check=True
    )
    mapped, free = done.stdout.split()
    return int(mapped), int(free)


def test_a_large_piece_comes_from_the_heap_and_stays_there_once_freed() -> None:
    mapped, free = _probe("tuned")
    assert mapped < 4 * 1024 * 1024  # not a mapping of its own
    assert free >= 4 * 1024 * 1024  # kept for the next one


def test_by_default_glibc_maps_it_apart_and_gives_it_back() -> None:
    mapped, free = _probe("default")
    assert mapped >= 4 * 1024 * 1024
    assert free < 4 * 1024 * 1024
