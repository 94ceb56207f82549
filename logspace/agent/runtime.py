"""The runtime agent: a Python process reports its start, its statistics and its stop.

The Python counterpart of the original JVM agent: `python/start` and `python/stop` events and
periodic `python/statistics`, all of one run sharing a `gid`, with agent id
`python/<identifier>`. `monitor_runtime(sink)` does all of it in one call.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import locale
import os
import platform
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import psutil

from .builder import Event, EventBuilder
from .scheduler import Scheduler
from .sink import Sink

__all__ = ["RuntimeAgent", "RuntimeMonitor", "monitor_runtime"]


def _default_identifier() -> str:
    name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return name or "python"


class RuntimeAgent:
    """Events about this Python process; `gid` is one UUID per `RuntimeAgent` (per run)."""

    def __init__(self, identifier: str | None = None) -> None:
        self.identifier = identifier or _default_identifier()
        self.agent_id = f"python/{self.identifier}"
        self.gid = str(uuid.uuid4())
        self._process = psutil.Process()
        self._process.cpu_percent(interval=None)  # start the first cpu interval now

    def _builder(self, type_: str) -> EventBuilder:
        return EventBuilder(type_, self.agent_id, gid=self.gid)

    def start_event(self) -> Event:
        """`python/start`: what runs where, like the JVM agent's `jvm/start`."""
        language, encoding = locale.getlocale()
        builder = (
            self._builder("python/start")
            .integer("available_processors", os.cpu_count() or 1)
            .long("process_id", os.getpid())
            .string("cpu_endian", sys.byteorder)
            .string("python_implementation", platform.python_implementation())
            .string("python_version", platform.python_version())
            .string("python_executable", sys.executable or "unknown")
            .string("os_name", platform.system() or "unknown")
            .string("os_architecture", platform.machine() or "unknown")
            .string("os_version", platform.release() or "unknown")
            .string("user_directory", os.getcwd())
            .string("user_home", str(Path.home()))
            .string("user_timezone", time.strftime("%Z") or "unknown")
            .date("started", _started(self._process))
        )
        if language:
            builder.string("user_language", language)
        if encoding:
            builder.string("user_encoding", encoding)
        # A uid without a name, as in some containers, has no user_name.
        with contextlib.suppress(psutil.Error, KeyError):
            builder.string("user_name", self._process.username())
        return builder.build()

    def stop_event(self) -> Event:
        """`python/stop`: no properties, the same `gid` as the start."""
        return self._builder("python/stop").build()

    def collect(self) -> Iterable[Event]:
        """`python/statistics`: cpu, memory, threads, garbage collection, open files."""
        process = self._process
        with process.oneshot():
            cpu = process.cpu_times()
            memory = process.memory_info()
            builder = (
                self._builder("python/statistics")
                .double("process_cpu_load", process.cpu_percent(interval=None) / 100)
                .double("process_cpu_time", cpu.user + cpu.system)
                .long("resident_memory", memory.rss)
                .long("virtual_memory", memory.vms)
                .integer("thread_count", threading.active_count())
                .integer("daemon_thread_count", sum(t.daemon for t in threading.enumerate()))
                .integer("os_thread_count", process.num_threads())
            )
            if hasattr(process, "num_fds"):
                builder.long("open_file_descriptor_count", process.num_fds())
        max_files = _max_file_descriptors()
        if max_files is not None:
            builder.long("max_file_descriptor_count", max_files)
        for generation, stats in enumerate(gc.get_stats()):
            builder.long(f"gc_generation{generation}_collections", stats["collections"])
            builder.long(f"gc_generation{generation}_collected", stats["collected"])
            builder.long(f"gc_generation{generation}_uncollectable", stats["uncollectable"])
        for generation, count in enumerate(gc.get_count()):
            builder.long(f"gc_generation{generation}_pending", count)
        return [builder.build()]


def _started(process: psutil.Process) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(process.create_time()))


def _max_file_descriptors() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


class RuntimeMonitor:
    """A running runtime agent: start event sent, statistics scheduled, stop on `stop()`."""

    def __init__(
        self, agent: RuntimeAgent, sink: Sink, scheduler: Scheduler, *, own_scheduler: bool
    ) -> None:
        self.agent = agent
        self.sink = sink
        self.scheduler = scheduler
        self._own_scheduler = own_scheduler
        self._stopped = False

    def stop(self) -> None:
        """Send `python/stop` and stop the statistics; also runs at interpreter exit."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self._own_scheduler:
            self.scheduler.stop()
        else:
            self.scheduler.remove(self.agent.agent_id)
        self.sink.send(self.agent.stop_event())


def monitor_runtime(
    sink: Sink,
    *,
    interval: float = 30.0,
    identifier: str | None = None,
    scheduler: Scheduler | None = None,
) -> RuntimeMonitor:
    """Send `python/start` now, `python/statistics` every `interval` s, `python/stop` at exit.

    Call `stop()` before closing the sender. If the sender is closed by `atexit` instead, call
    this after registering that, since atexit runs the last registered function first.
    """
    agent = RuntimeAgent(identifier)
    sink.send(agent.start_event())
    own = scheduler is None
    scheduler = scheduler or Scheduler(sink)
    scheduler.add(agent, interval)
    if own:
        scheduler.start()
    monitor = RuntimeMonitor(agent, sink, scheduler, own_scheduler=own)
    atexit.register(monitor.stop)
    return monitor
