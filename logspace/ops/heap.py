"""The C heap of a serving HQ process.

What Python allocates in large pieces (a request's body, its `_bulk` lines, a shared bulk's
body, Elasticsearch's answer: hundreds of KiB each with big batches) comes from the C
library's `malloc`. glibc's gives the top of its heap back to the system as soon as a little
more than the largest piece lately freed lies free there, and serves pieces above its mmap
threshold from mappings of their own, unmapped when freed. A process that takes and frees a
few hundred KiB for every request so keeps shrinking and growing its heap, and every page it
touches again faults in anew: cleared, mapped, unmapped, with the processors told to forget it
(bench/optimisations.md, "3 Dec 2026, late morning": with 1000-event batches HQ took 2.9 µs
of CPU per event as glibc has it, 2.1 with these settings).

Once started, HQ has glibc keep up to `keep` bytes of freed heap for the next requests and
serve pieces up to 32 MiB from the heap. HQ's memory stays bounded as before (its in-flight
budget bounds what requests hold at once); what changes is that the heap stays at the size
the busiest moment gave it, up to `keep` above what is in use, rather than going back to
the system between requests. Elsewhere (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging
import platform
from typing import Final

__all__ = ["MMAP_THRESHOLD", "tune"]

log = logging.getLogger(__name__)

# `mallopt` parameters (malloc.h).
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3

# glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD: Final = 32 * 1024 * 1024


def tune(keep: int) -> bool:
    """Keep up to `keep` bytes of freed heap, and serve pieces of up to `MMAP_THRESHOLD`
    from the heap; True if the C library is glibc and took both settings."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc always has it
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    limit = 2**31 - 1  # an int in C
    mapped: int = mallopt(_M_MMAP_THRESHOLD, min(MMAP_THRESHOLD, limit))
    trimmed: int = mallopt(_M_TRIM_THRESHOLD, min(keep, limit))
    taken = mapped == 1 and trimmed == 1
    if not taken:  # pragma: no cover - glibc takes values in these ranges
        log.warning("the C library did not take HQ's heap settings; its defaults stay")
    return taken
