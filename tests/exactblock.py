"""Bytes in a malloc'd block of just their size, for the C fast paths' differential checks.

A bytes object ends in a hidden NUL, which would hide a read of one byte too many from
AddressSanitizer (the sanitizer step of `make test`, and `make fuzz`); a block of its own does
not. The extension takes any buffer, though HQ itself only ever passes bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

__all__ = ["exact_block"]

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]


@contextlib.contextmanager
def exact_block(data: bytes) -> Iterator[memoryview]:
    """A view of a copy of `data` in a block of its own, freed on leaving."""
    address = _libc.malloc(len(data))
    if address is None:
        raise MemoryError
    try:
        ctypes.memmove(address, data, len(data))
        with memoryview((ctypes.c_char * len(data)).from_address(address)).cast("B") as view:
            yield view
    finally:
        _libc.free(address)
