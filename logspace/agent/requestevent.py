"""RequestEvent: the `http/request` event, built from what an ASGI or WSGI request leaves.

The middleware (`middleware.py`) only notes these values during the request; a sender's
thread builds the events from them, a group at a time (`asgi_events`, `wsgi_events`: the
`build` of a draft, see `draft.py`), or the middleware does at once for a sink without drafts.
Either way an event is what `EventBuilder` builds from the same values, set in this order:

    string   protocol, path, http_method, then where there is one: domain, query_string,
             request_id, ip_address, location
    integer  response_code, port (where known)
    long     duration (milliseconds, as the original), duration_us (microseconds)

The JSON of ASGI drafts is written by the C extension (`asgi_json`, in
`logspace/fastpath/_requestjson.h`) where it takes the group, else by `_encoded`, the Python
writer; tests hold both to the built events' encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .builder import Event, instant_from_ms
from .eventjson import head_fields, heads, stamp_json, tail_json

_asgi_json: Callable[..., list[bytes] | None] | None
try:
    from logspace.fastpath._transcode import asgi_json as _asgi_json
except ImportError:  # pragma: no cover - no C compiler: `_encoded` writes them all
    _asgi_json = None

__all__ = ["AsgiValues", "RequestEvents", "WsgiValues", "asgi_events", "wsgi_events"]

_DEFAULT_PORTS = {"http": 80, "https": 443}

# What an ASGI request leaves: type, agent id, arrival (ns since the epoch), duration (ns), and
# of the scope its scheme, server, path, query string, method, client, `Host` header and
# request id header (`X-Request-ID`, else `Request-ID`), then the response's status and
# `Location`. Header values as the scope has them, bytes.
AsgiValues = tuple[str, str, int, int, str, Any, str, bytes, str, Any, Any, Any, Any, Any]

# What a WSGI request leaves: type, agent id, arrival, duration, and of the environ (taken
# during the request: the server may reuse it) the URL scheme, `HTTP_HOST`, `SERVER_NAME`,
# `SERVER_PORT`, `SCRIPT_NAME`, `PATH_INFO`, `QUERY_STRING`, `REQUEST_METHOD`, the request id
# and `REMOTE_ADDR`, then the status line and the `Location`.
WsgiValues = tuple[str, str, int, int, str, Any, Any, Any, str, str, str, str, Any, Any, str, Any]

# The values every event is built from, whichever the server:
# type, agent id, arrival, duration, protocol, host, server (name, port) or None, path,
# query string, method, request id, client address, status, location.
_Row = tuple[str, str, int, int, str, Any, Any, str, str, str, Any, Any, int, Any]


def _asgi_rows(drafts: Sequence[AsgiValues]) -> list[_Row]:
    return [
        (
            event_type,
            agent_id,
            arrived_ns,
            elapsed_ns,
            scheme,
            None if host is None else host.decode("latin-1"),
            server,
            # The ASGI spec has `path` include any `root_path` the app is mounted at.
            path,
            query_string.decode("latin-1"),
            method,
            None if request_id is None else request_id.decode("latin-1"),
            client[0] if client else None,
            int(status),
            None if location is None else location.decode("latin-1"),
        )
        for (
            event_type,
            agent_id,
            arrived_ns,
            elapsed_ns,
            scheme,
            server,
            path,
            query_string,
            method,
            client,
            host,
            request_id,
            status,
            location,
        ) in drafts
    ]


def _wsgi_rows(drafts: Sequence[WsgiValues]) -> list[_Row]:
    rows: list[_Row] = []
    for (
        event_type,
        agent_id,
        arrived_ns,
        elapsed_ns,
        scheme,
        host,
        server_name,
        server_port,
        script_name,
        path_info,
        query_string,
        method,
        request_id,
        ip_address,
        status,
        location,
    ) in drafts:
        server = None
        if server_name:
            port = str(server_port)
            server = (server_name, int(port) if port.isascii() and port.isdigit() else None)
        rows.append(
            (
                event_type,
                agent_id,
                arrived_ns,
                elapsed_ns,
                scheme,
                host,
                server,
                # WSGI hands over the raw bytes of the path as latin-1; most clients sent UTF-8.
                (script_name + path_info).encode("latin-1", "replace").decode("utf-8", "replace"),
                query_string,
                method,
                request_id,
                ip_address,
                int(status.split(" ", 1)[0]),
                location,
            )
        )
    return rows


def _events(rows: Sequence[_Row], ids: Sequence[str]) -> list[Event]:
    # Requests of a group mostly share their agent, host and millisecond: each is worked out
    # once per group.
    heads: dict[tuple[str, str], tuple[str, str, str]] = {}
    places: dict[tuple[Any, ...], tuple[str | None, int | None]] = {}
    stamped_ms: int | None = None  # none yet (-1 is a millisecond of 1969)
    stamp = ""
    events: list[Event] = []
    for (
        event_type,
        agent_id,
        arrived_ns,
        elapsed_ns,
        protocol,
        host,
        server,
        path,
        query_string,
        method,
        request_id,
        ip_address,
        status,
        location,
    ), event_id in zip(rows, ids, strict=True):
        head = heads.get((event_type, agent_id))
        if head is None:
            head = heads[event_type, agent_id] = head_fields(event_type, agent_id)
        milliseconds = arrived_ns // 1_000_000
        if milliseconds != stamped_ms:
            stamped_ms, stamp = milliseconds, instant_from_ms(milliseconds)
        place = (host, *server, protocol) if server else (host, protocol)
        domain_port = places.get(place)
        if domain_port is None:
            domain_port = places[place] = _host_and_port(host, server, protocol)
        domain, port = domain_port
        strings = {"protocol": protocol, "path": path, "http_method": method}
        if domain:
            strings["domain"] = domain
        if query_string:
            strings["query_string"] = query_string
        if request_id:
            strings["request_id"] = request_id
        if ip_address:
            strings["ip_address"] = ip_address
        if location:
            strings["location"] = location
        integers = {"response_code": status}
        if port is not None:
            integers["port"] = port
        microseconds = elapsed_ns // 1000
        events.append(
            {
                "id": event_id,
                "type": head[0],
                "system": head[1],
                "agent-id": head[2],
                "timestamp": stamp,
                "string-properties": strings,
                "integer-properties": integers,
                "long-properties": {"duration": microseconds // 1000, "duration_us": microseconds},
            }
        )
    return events


def _encoded(
    rows: Sequence[_Row], ids: Sequence[str], system: str | None, marker: str | None
) -> list[bytes]:
    """The JSON of `_events(rows, ids)` stamped with `system` and `marker` (see
    `draft.Stamp`), as `orjson.dumps` writes it, written straight from the values: no dict
    per event. Strings are written by orjson itself; the tests hold the two paths equal."""
    texts: dict[str, bytes] = {}

    def text(value: str) -> bytes:
        found = texts.get(value)
        if found is None:
            found = texts[value] = orjson.dumps(value)
        return found

    known = texts.get
    head_of = heads(system)
    places: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
    stamped_ms: int | None = None  # none yet (-1 is a millisecond of 1969)
    stamp = b""
    tail = tail_json(marker)
    events: list[bytes] = []
    for (
        event_type,
        agent_id,
        arrived_ns,
        elapsed_ns,
        protocol,
        host,
        server,
        path,
        query_string,
        method,
        request_id,
        ip_address,
        status,
        location,
    ), event_id in zip(rows, ids, strict=True):
        head = head_of(event_type, agent_id)
        milliseconds = arrived_ns // 1_000_000
        if milliseconds != stamped_ms:
            stamped_ms, stamp = milliseconds, stamp_json(milliseconds)
        place = (host, *server, protocol) if server else (host, protocol)
        where = places.get(place)
        if where is None:
            where = places[place] = _where(host, server, protocol)
        microseconds = elapsed_ns // 1000
        events.append(
            b"".join(
                [
                    b'{"id":"',
                    event_id.encode(),
                    head,
                    stamp,
                    b'","string-properties":{"protocol":',
                    (known(protocol) or text(protocol)),
                    b',"path":',
                    (known(path) or text(path)),
                    b',"http_method":',
                    (known(method) or text(method)),
                    where[0],
                    b',"query_string":' + (known(query_string) or text(query_string))
                    if query_string
                    else b"",
                    b',"request_id":' + (known(request_id) or text(request_id))
                    if request_id
                    else b"",
                    b',"ip_address":' + (known(ip_address) or text(ip_address))
                    if ip_address
                    else b"",
                    b',"location":' + (known(location) or text(location)) if location else b"",
                    b'},"integer-properties":{"response_code":%d' % status,
                    where[1],
                    b'},"long-properties":{"duration":%d,"duration_us":%d}'
                    % (microseconds // 1000, microseconds),
                    tail,
                ]
            )
        )
    return events


def _where(host: str | None, server: Sequence[Any] | None, protocol: str) -> tuple[bytes, bytes]:
    """The `domain` member (or nothing) and the `port` one (or nothing) of a request's event."""
    domain, port = _host_and_port(host, server, protocol)
    return (
        b',"domain":' + orjson.dumps(domain) if domain else b"",
        b"" if port is None else b',"port":%d' % port,
    )


def _asgi_where(
    host: bytes | None, server: Sequence[Any] | None, scheme: str
) -> tuple[bytes, bytes]:
    return _where(None if host is None else host.decode("latin-1"), server, scheme)


def _asgi_encoded(
    drafts: Sequence[AsgiValues], ids: Sequence[str], system: str | None, marker: str | None
) -> list[bytes]:
    """`_encoded` of the ASGI drafts, written by the C extension where it takes the group (the
    common case: it writes the same bytes in a fraction of the time, holding the GIL that the
    application needs for less); else by `_encoded`."""
    if _asgi_json is not None and type(drafts) is list and type(ids) is list:
        written = _asgi_json(drafts, ids, heads(system), stamp_json, _asgi_where, tail_json(marker))
        if written is not None:
            return written
    return _encoded(_asgi_rows(drafts), ids, system, marker)


class RequestEvents:
    """The `build` of a request agent's drafts (see `draft.py`): their events, or (`encoded`)
    straight the JSON that those events stamped by a sender encode to."""

    def __init__(
        self,
        rows: Callable[[Sequence[Any]], list[_Row]],
        encoded: Callable[[Sequence[Any], Sequence[str], str | None, str | None], list[bytes]]
        | None = None,
    ) -> None:
        self._rows = rows
        self._encoded = encoded

    def __call__(self, drafts: Sequence[Any], ids: Sequence[str]) -> list[Event]:
        return _events(self._rows(drafts), ids)

    def encoded(
        self, drafts: Sequence[Any], ids: Sequence[str], system: str | None, marker: str | None
    ) -> list[bytes]:
        if self._encoded is not None:
            return self._encoded(drafts, ids, system, marker)
        return _encoded(self._rows(drafts), ids, system, marker)

    def encoded_in_python(
        self, drafts: Sequence[Any], ids: Sequence[str], system: str | None, marker: str | None
    ) -> list[bytes]:
        """`encoded` without the C extension (for the tests that hold the two equal)."""
        return _encoded(self._rows(drafts), ids, system, marker)


# The events of ASGI requests, and of WSGI requests, with the given ids.
asgi_events = RequestEvents(_asgi_rows, _asgi_encoded)
wsgi_events = RequestEvents(_wsgi_rows)


def _host_and_port(
    host: str | None, server: Sequence[Any] | None, protocol: str
) -> tuple[str | None, int | None]:
    default = server[1] if server and server[1] is not None else _DEFAULT_PORTS.get(protocol)
    if host:
        name, colon, port = host.rpartition(":")
        # "[::1]:8000" and "example.com:8000" carry a port; "[::1]" and "example.com" do not.
        if (
            colon
            and port.isascii()
            and port.isdigit()
            and (not name.startswith("[") or name.endswith("]"))
        ):
            return name, int(port)
        return host, default
    return (server[0] if server else None), default
