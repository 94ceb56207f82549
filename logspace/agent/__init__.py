"""The Logspace agent library: build events, queue them durably, deliver them to HQ.

Imports neither starlette nor elasticsearch; needs `pip install 'logspace[agent]'` (httpx,
psutil). See `docs/agents.md`.
"""

from ..cron import Cron, CronError
from .asyncsender import AsyncSender
from .builder import Event, EventBuilder, InvalidEvent, Kind, encode_event
from .config import AgentConfig, AgentConfigError
from .controller import Controller
from .diskqueue import DiskQueue, QueueInUse, QueueStats
from .host import (
    CpuAgent,
    DiskAgent,
    LoadAgent,
    MemoryAgent,
    NetworkAgent,
    SwapAgent,
    os_agents,
)
from .loghandler import LogHandler
from .middleware import ASGIMiddleware, WSGIMiddleware
from .runtime import RuntimeAgent, RuntimeMonitor, monitor_runtime
from .scheduler import Collector, Scheduler
from .sender import DropCallback, Sender
from .shipper import Dropped
from .sink import MemorySink, Sink

__all__ = [
    "ASGIMiddleware",
    "AgentConfig",
    "AgentConfigError",
    "AsyncSender",
    "Collector",
    "Controller",
    "CpuAgent",
    "Cron",
    "CronError",
    "DiskAgent",
    "DiskQueue",
    "DropCallback",
    "Dropped",
    "Event",
    "EventBuilder",
    "InvalidEvent",
    "Kind",
    "LoadAgent",
    "LogHandler",
    "MemoryAgent",
    "MemorySink",
    "NetworkAgent",
    "QueueInUse",
    "QueueStats",
    "RuntimeAgent",
    "RuntimeMonitor",
    "Scheduler",
    "Sender",
    "Sink",
    "SwapAgent",
    "WSGIMiddleware",
    "encode_event",
    "monitor_runtime",
    "os_agents",
]
