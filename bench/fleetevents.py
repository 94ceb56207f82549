"""The events of figure (f): what a fleet of OS monitors sends, defined once as data.

An agent's batch is six events, one per OS collector (`os/cpu`, `os/memory`, `os/disk`,
`os/swap`, `os/network`, `os/load`, with the property names of `logspace.agent.host`), about
280 bytes each, from one host into one space. Each event is a printf-style format (without its
closing brace) and the values that fill it. Two generators fill them: `fleet.lua` inside wrk
(closed loop) and `batches` here (the open-loop arms), with the same formats, the same value
ranges and the same id scheme, so both arms of every comparison send the same kind of document.

Both forms of an event: HQ's `PUT /events` item is the format plus `}`; the `_bulk` document is
the format plus `,"space":"<space>"}`, exactly what HQ stores (its transcoder puts `space` in
place of the closing brace), under `_id` = the event's id in `<prefix>-<space>-<yyyy.mm>`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SPACES", "TEMPLATES", "Batch", "Fleet", "Template"]

SPACES = ("fleet1", "fleet2", "fleet3", "fleet4")
HOSTS = 5000
SYSTEM_FORMAT = "host-%05d"
# Unique across runs: a random 32-bit nonce per generator run, then the generator's number (a
# wrk thread, or the open-loop arm), the event's collector, the space and a batch counter.
ID_FORMAT = "%s-%04x-4%03x-8%03x-%012x"


@dataclass(frozen=True)
class Template:
    """One collector's event: `format` takes id, system, timestamp, then one value per spec."""

    type: str
    format: str
    # Per value: ("choice", [values]) | ("int", low, high) | ("float", low, high).
    specs: tuple[tuple[object, ...], ...]


def _template(kind: str, properties: Sequence[tuple[str, str, tuple[object, ...]]]) -> Template:
    head = f'{{"id":"%s","type":"{kind}","system":"%s","agent-id":"{kind}","timestamp":"%s"'
    families: dict[str, list[str]] = {}
    specs = []
    for family, name, spec in properties:
        code = {"choice": "%d", "int": "%d", "float": "%.4f"}[str(spec[0])]
        if spec[0] == "choice" and isinstance(spec[1], list) and isinstance(spec[1][0], str):
            code = '"%s"'
        families.setdefault(family, []).append(f'"{name}":{code}')
        specs.append(spec)
    body = "".join(
        f',"{family}-properties":{{{",".join(members)}}}' for family, members in families.items()
    )
    return Template(kind, head + body, tuple(specs))


GiB = 2**30
TEMPLATES = (
    _template(
        "os/cpu",
        [
            ("integer", "processor_count", ("choice", [2, 4, 8, 16, 32])),
            ("double", "system_load_average", ("float", 0, 8)),
            ("double", "system_cpu_load", ("float", 0, 1)),
        ],
    ),
    _template(
        "os/memory",
        [
            ("long", "total_memory", ("int", 2 * GiB, 64 * GiB)),
            ("long", "free_memory", ("int", 0, 8 * GiB)),
            ("long", "used_memory", ("int", GiB, 56 * GiB)),
            ("long", "available_memory", ("int", 0, 16 * GiB)),
            ("long", "committed_virtual_memory", ("int", 10**7, 10**9)),
        ],
    ),
    _template(
        "os/disk",
        [
            ("string", "disk_path", ("choice", ["/", "/var", "/home", "/data"])),
            ("long", "disk_total_space", ("int", 100 * GiB, 2000 * GiB)),
            ("long", "disk_usable_space", ("int", 0, 1000 * GiB)),
            ("long", "disk_unallocated_space", ("int", 0, 1000 * GiB)),
            ("long", "disk_used_space", ("int", 0, 1000 * GiB)),
        ],
    ),
    _template(
        "os/swap",
        [
            ("long", "swap_total_space", ("choice", [0, 2 * GiB, 4 * GiB, 8 * GiB])),
            ("long", "swap_free_space", ("int", 0, 2 * GiB)),
            ("long", "swap_used_space", ("int", 0, 10**8)),
        ],
    ),
    _template(
        "os/network",
        [
            ("string", "interface", ("choice", ["eth0", "ens3", "ens5", "bond0"])),
            ("long", "bytes_sent", ("int", 0, 10**12)),
            ("long", "bytes_received", ("int", 0, 10**12)),
            ("long", "packets_sent", ("int", 0, 10**9)),
            ("long", "packets_received", ("int", 0, 10**9)),
            ("long", "errors_in", ("choice", [0, 0, 0, 1])),
        ],
    ),
    _template(
        "os/load",
        [
            ("double", "load_average_1m", ("float", 0, 8)),
            ("double", "load_average_5m", ("float", 0, 8)),
            ("double", "load_average_15m", ("float", 0, 8)),
            ("integer", "processor_count", ("choice", [2, 4, 8, 16, 32])),
        ],
    ),
)


def _value(rng: random.Random, spec: tuple[object, ...]) -> object:
    # The same arithmetic as fleet.lua's `value`.
    if spec[0] == "choice":
        choices = spec[1]
        assert isinstance(choices, list)
        return choices[int(rng.random() * len(choices))]
    low, high = spec[1], spec[2]
    assert isinstance(low, int)
    assert isinstance(high, int)
    if spec[0] == "int":
        return low + int(rng.random() * (high - low + 1))
    return low + rng.random() * (high - low)


def timestamp(now: float) -> str:
    """The canonical UTC instant HQ's fast path takes, with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


@dataclass(frozen=True)
class Batch:
    """One agent's request: its space and its events (each without the closing brace)."""

    space: str
    events: list[str]
    ids: list[str]
    month: str  # yyyy.mm of the events' timestamp

    def hq_body(self) -> bytes:
        return ("[" + ",".join(e + "}" for e in self.events) + "]").encode()

    def bulk_body(self, prefix: str) -> bytes:
        index = f"{prefix}-{self.space}-{self.month}"
        end = f',"space":"{self.space}"}}\n'
        return "".join(
            f'{{"create":{{"_index":"{index}","_id":"{i}"}}}}\n{e}{end}'
            for i, e in zip(self.ids, self.events, strict=True)
        ).encode()


@dataclass
class Fleet:
    """The fleet's configuration: how many spaces (one token each) and the index prefix."""

    prefix: str
    spaces: Sequence[str] = SPACES

    @staticmethod
    def token(space: str) -> str:
        return f"{space}-token"

    def tokens_setting(self) -> str:
        """LOGSPACE_SPACE_TOKENS for an HQ that serves the fleet."""
        return ",".join(f"{space}:{self.token(space)}" for space in self.spaces)

    def index_pattern(self) -> str:
        return ",".join(f"{self.prefix}-{space}-*" for space in self.spaces)

    def batches(self, count: int, generator: int, seed: int | None = None) -> Iterator[Batch]:
        """`count` distinct batches of six events, timestamped now, spaces in turn."""
        rng = random.Random(seed)
        nonce = f"{rng.getrandbits(32):08x}"
        for number in range(1, count + 1):
            space_index = (number + generator) % len(self.spaces)
            space = self.spaces[space_index]
            system = SYSTEM_FORMAT % ((generator * 7919 + number) % HOSTS)
            now = time.time()
            stamp = timestamp(now)
            events, ids = [], []
            for k, template in enumerate(TEMPLATES, start=1):
                event_id = ID_FORMAT % (nonce, generator, k, space_index, number)
                values = tuple(_value(rng, spec) for spec in template.specs)
                events.append(template.format % (event_id, system, stamp, *values))
                ids.append(event_id)
            yield Batch(space, events, ids, stamp[:4] + "." + stamp[5:7])

    def lua_config(
        self, path: Path, mode: str, per_request: int, nonce: int, generator_base: int = 0
    ) -> Path:
        """Write the configuration `fleet.lua` reads (a Lua table) and return its path."""
        config = {
            "mode": mode,
            "per_request": per_request,
            "prefix": self.prefix,
            "nonce": f"{nonce:08x}",
            "generator_base": generator_base,
            "hosts": HOSTS,
            "system_format": SYSTEM_FORMAT,
            "id_format": ID_FORMAT,
            "spaces": [{"name": s, "token": self.token(s)} for s in self.spaces],
            "templates": [{"format": t.format, "specs": list(t.specs)} for t in TEMPLATES],
        }
        path.write_text("return " + _lua(config) + "\n")
        return path


def _lua(value: object) -> str:
    """A Lua literal for plain data (strings, numbers, lists, string-keyed dicts)."""
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, bool | None):
        raise TypeError("not used by the fleet configuration")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    raise TypeError(type(value).__name__)
