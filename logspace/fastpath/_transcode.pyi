# The C extension's face (logspace/fastpath/_transcode.c), for type checkers.
from collections.abc import Callable, Sequence
from typing import Any

FIELD_NAMES: tuple[str, ...]
MAX_TEXT_BYTES: int
MAX_ID_BYTES: int
INDEXED_STRING_CHARS: int
INSTANT_LENGTH: int

def transcode(
    body: bytes,
    action: bytes,
    tail: bytes,
    max_events: int,
    max_properties: int,
    max_fields: int,
    max_name: int,
    max_string: int,
    oldest: bytes,
    newest: bytes,
) -> tuple[bytes, int, set[str], int, int, int] | None: ...
def verdicts(
    events: Sequence[object],  # each bytes-like: bytes, memoryview, msgspec.Raw
    max_events: int,
    max_properties: int,
    max_fields: int,
    max_name: int,
    max_string: int,
    oldest: bytes,
    newest: bytes,
    release: bool = False,
) -> list[bool]: ...
def asgi_json(
    drafts: list[Any],
    ids: list[str],
    head: Callable[[str, str], bytes],
    stamp: Callable[[int], bytes],
    where: Callable[[bytes | None, Any, str], tuple[bytes, bytes]],
    tail: bytes,
) -> list[bytes] | None: ...
def log_json(
    drafts: list[Any],
    ids: list[str],
    head: Callable[[str, str], bytes],
    stamp: Callable[[int], bytes],
    tail: bytes,
) -> list[bytes] | None: ...
def lean_request(
    data: bytes, limit: int
) -> tuple[bytes, list[tuple[bytes, bytes]], dict[str, str], bytes] | None: ...
