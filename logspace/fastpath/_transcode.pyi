# The C extension's face (logspace/fastpath/_transcode.c), for type checkers.
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
