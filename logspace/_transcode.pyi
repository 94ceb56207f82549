# The C extension's signature (logspace/_transcode.c), for type checkers.
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
