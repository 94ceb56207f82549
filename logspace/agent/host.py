"""The OS monitor: collectors for the host's cpu, memory, disks, swap, network and load.

The first four keep the original Logspace's event types and property names (`os/cpu` with
`system_cpu_load`, `os/disk` with `disk_total_space`, ...), so its dashboards and queries keep
working; `os/network` and `os/load` are new. Run them with `logspace agent os` or schedule them
yourself (`Scheduler.add(CpuAgent(), 10)`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import psutil

from .builder import Event, EventBuilder
from .scheduler import Collector

__all__ = [
    "OS_AGENTS",
    "CpuAgent",
    "DiskAgent",
    "LoadAgent",
    "MemoryAgent",
    "NetworkAgent",
    "SwapAgent",
    "os_agents",
]


def _load_average() -> tuple[float, float, float] | None:
    try:
        return psutil.getloadavg()
    except (AttributeError, OSError):  # pragma: no cover - every supported platform has it
        return None


class CpuAgent:
    """`os/cpu`: processor_count (int), system_load_average and system_cpu_load (double).

    `system_cpu_load` is the share of all CPUs busy since the previous run, 0 to 1, like the
    original; `system_load_average` is the 1-minute load average, -1 where there is none.
    """

    def __init__(self, agent_id: str = "os/cpu") -> None:
        self.agent_id = agent_id
        # psutil measures cpu use between two calls: start the first interval now.
        psutil.cpu_percent(interval=None)

    def collect(self) -> Iterable[Event]:
        load = _load_average()
        return [
            EventBuilder("os/cpu", self.agent_id)
            .integer("processor_count", psutil.cpu_count() or 1)
            .double("system_load_average", load[0] if load else -1.0)
            .double("system_cpu_load", psutil.cpu_percent(interval=None) / 100)
            .build()
        ]


class MemoryAgent:
    """`os/memory`: total_memory, free_memory, used_memory (= total - free),
    committed_virtual_memory (the monitor process's, as in the original) and the new
    available_memory, all long bytes."""

    def __init__(self, agent_id: str = "os/memory") -> None:
        self.agent_id = agent_id
        self._process = psutil.Process()

    def collect(self) -> Iterable[Event]:
        memory = psutil.virtual_memory()
        return [
            EventBuilder("os/memory", self.agent_id)
            .long("total_memory", memory.total)
            .long("free_memory", memory.free)
            .long("used_memory", memory.total - memory.free)
            .long("available_memory", memory.available)
            .long("committed_virtual_memory", self._process.memory_info().vms)
            .build()
        ]


class DiskAgent:
    """`os/disk`, one event per mounted file system: disk_path (string), disk_total_space,
    disk_usable_space, disk_unallocated_space, disk_used_space (= total - unallocated), long.

    `usable` is what unprivileged users may still write; `unallocated` also counts the blocks
    reserved for root, as Java's `File.getUnallocatedSpace`. Mounts that cannot be read, or
    that have no size (pseudo file systems), are left out.
    """

    def __init__(self, agent_id: str = "os/disk", paths: Sequence[str] | None = None) -> None:
        self.agent_id = agent_id
        self.paths = list(paths) if paths is not None else None

    def mounts(self) -> list[str]:
        if self.paths is not None:
            return self.paths
        seen: dict[str, None] = {}
        for partition in psutil.disk_partitions(all=False):
            seen.setdefault(partition.mountpoint, None)
        return list(seen)

    def collect(self) -> Iterable[Event]:
        events = []
        for path in self.mounts():
            try:
                total, usable, unallocated = _disk_space(path)
            except OSError:
                continue
            if total <= 0:
                continue
            events.append(
                EventBuilder("os/disk", self.agent_id)
                .string("disk_path", path)
                .long("disk_total_space", total)
                .long("disk_usable_space", usable)
                .long("disk_unallocated_space", unallocated)
                .long("disk_used_space", total - unallocated)
                .build()
            )
        return events


def _disk_space(path: str) -> tuple[int, int, int]:
    if hasattr(os, "statvfs"):
        stat = os.statvfs(path)
        return (
            stat.f_blocks * stat.f_frsize,
            stat.f_bavail * stat.f_frsize,
            stat.f_bfree * stat.f_frsize,
        )
    usage = psutil.disk_usage(path)  # pragma: no cover - Windows has no statvfs
    return usage.total, usage.free, usage.free  # pragma: no cover


class SwapAgent:
    """`os/swap`: swap_total_space, swap_free_space, swap_used_space (long bytes)."""

    def __init__(self, agent_id: str = "os/swap") -> None:
        self.agent_id = agent_id

    def collect(self) -> Iterable[Event]:
        swap = psutil.swap_memory()
        return [
            EventBuilder("os/swap", self.agent_id)
            .long("swap_total_space", swap.total)
            .long("swap_free_space", swap.free)
            .long("swap_used_space", swap.used)
            .build()
        ]


class NetworkAgent:
    """`os/network`, one event per interface: interface (string) and the counters since boot
    bytes_sent, bytes_received, packets_sent, packets_received, errors_in, errors_out,
    drops_in, drops_out (long)."""

    def __init__(self, agent_id: str = "os/network") -> None:
        self.agent_id = agent_id

    def collect(self) -> Iterable[Event]:
        return [
            EventBuilder("os/network", self.agent_id)
            .string("interface", name)
            .long("bytes_sent", counters.bytes_sent)
            .long("bytes_received", counters.bytes_recv)
            .long("packets_sent", counters.packets_sent)
            .long("packets_received", counters.packets_recv)
            .long("errors_in", counters.errin)
            .long("errors_out", counters.errout)
            .long("drops_in", counters.dropin)
            .long("drops_out", counters.dropout)
            .build()
            for name, counters in sorted(psutil.net_io_counters(pernic=True).items())
        ]


class LoadAgent:
    """`os/load`: load_average_1m, load_average_5m, load_average_15m (double) and
    processor_count (int), to read the averages against."""

    def __init__(self, agent_id: str = "os/load") -> None:
        self.agent_id = agent_id

    def collect(self) -> Iterable[Event]:
        load = _load_average()
        if load is None:  # pragma: no cover - every supported platform has it
            return []
        return [
            EventBuilder("os/load", self.agent_id)
            .double("load_average_1m", load[0])
            .double("load_average_5m", load[1])
            .double("load_average_15m", load[2])
            .integer("processor_count", psutil.cpu_count() or 1)
            .build()
        ]


OS_AGENTS: dict[str, Callable[[], Collector]] = {
    "cpu": CpuAgent,
    "memory": MemoryAgent,
    "disk": DiskAgent,
    "swap": SwapAgent,
    "network": NetworkAgent,
    "load": LoadAgent,
}


def os_agents(names: Iterable[str] | None = None) -> list[Collector]:
    """The named OS agents (all of them by default), ready to schedule."""
    chosen = list(OS_AGENTS) if names is None else list(names)
    unknown = [name for name in chosen if name not in OS_AGENTS]
    if unknown:
        raise ValueError(f"unknown OS agent(s) {', '.join(unknown)}; known: {', '.join(OS_AGENTS)}")
    return [OS_AGENTS[name]() for name in chosen]
