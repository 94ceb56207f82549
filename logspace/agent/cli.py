"""`logspace agent os | controller ...`: run the OS monitor as a process, on its own or under
orders from HQ; `logspace agent` delegates here."""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from types import FrameType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..orders import is_controller_id
from .config import CONFIG_FILE_VARIABLE, AgentConfig, AgentConfigError
from .controller import Controller
from .diskqueue import QueueInUse
from .host import OS_AGENTS, os_agents
from .scheduler import Scheduler
from .sender import Sender

__all__ = ["main"]


class _Terminated(BaseException):
    """SIGTERM, turned into an exception like SIGINT's KeyboardInterrupt. Not an `Exception`:
    it may arrive inside an agent's collection, whose failures the scheduler logs and survives."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (default: LOGSPACE_AGENT_* variables)")
    group.add_argument(
        "--hq-url",
        action="append",
        help="base URL of HQ, e.g. http://127.0.0.1:4567; repeat it, or separate URLs by "
        "commas, for several HQs to fail over between",
    )
    group.add_argument("--token", help="space token with write access")
    group.add_argument("--queue-dir", help="directory of the durable queue")
    group.add_argument("--queue-name", help="file name of the queue in that directory")
    group.add_argument("--system", help="`system` of every event (default: the host name)")
    group.add_argument("--marker", help="`marker` of every event")
    group.add_argument(
        "--config", help=f"TOML file of agent settings (like {CONFIG_FILE_VARIABLE})"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logspace agent", description="Run a Logspace agent.")
    agents = parser.add_subparsers(dest="agent", required=True)
    monitor = agents.add_parser(
        "os", help="the OS monitor", description="Send the host's OS metrics to HQ."
    )
    monitor.add_argument(
        "--interval", type=float, default=10.0, help="seconds between runs (default: 10)"
    )
    _agents_argument(monitor)
    monitor.add_argument(
        "--cycles", type=int, help="stop after running each agent this often (default: never)"
    )
    _connection_arguments(monitor)
    controller = agents.add_parser(
        "controller",
        help="the OS monitor under orders from HQ",
        description="Run the OS agents as HQ orders for a controller id (see docs/agents.md).",
    )
    controller.add_argument(
        "--id", required=True, help="controller id, the name of its order on HQ, e.g. monitor"
    )
    _agents_argument(controller)
    controller.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        help="seconds between asking HQ for the order (default: 60)",
    )
    controller.add_argument(
        "--unordered",
        choices=("off", "on"),
        default="off",
        help="agents the order does not name, or all without an order: off (default) or on",
    )
    controller.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="seconds between runs of agents that are on without an order (default: 10)",
    )
    controller.add_argument(
        "--time-zone", default="UTC", help="time zone of the orders' cron expressions (UTC)"
    )
    _connection_arguments(controller)
    return parser


def _agents_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agents",
        default=",".join(OS_AGENTS),
        help=f"comma-separated agents to run (default: {','.join(OS_AGENTS)})",
    )


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--time-zone {name!r} is not a known time zone") from None


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    environ = dict(environ)
    if args.config:
        environ[CONFIG_FILE_VARIABLE] = args.config
    if not args.interval > 0:
        parser.error(f"--interval must be greater than zero, found {args.interval}")
    if args.agent == "controller":
        if not is_controller_id(args.id):
            parser.error(
                f"--id {args.id!r} is not a controller id (letters, digits, '_', '-', '.')"
            )
        if not args.poll_interval > 0:
            parser.error(f"--poll-interval must be greater than zero, found {args.poll_interval}")
    queue_name = "os" if args.agent == "os" else f"controller-{args.id}"
    try:
        config = AgentConfig.from_env(
            environ,
            defaults={"LOGSPACE_AGENT_QUEUE_NAME": queue_name},
            hq_url=",".join(args.hq_url) if args.hq_url else None,
            token=args.token,
            queue_dir=args.queue_dir,
            queue_name=args.queue_name,
            system=args.system,
            marker=args.marker,
        )
        collectors = os_agents(name.strip() for name in args.agents.split(",") if name.strip())
        zone = _zone(args.time_zone) if args.agent == "controller" else UTC
    except (AgentConfigError, ValueError) as error:
        print(f"logspace agent: {error}", file=sys.stderr)
        return 2
    try:
        sender = Sender(config).start()
    except (QueueInUse, OSError, sqlite3.Error) as error:
        print(
            f"logspace agent: cannot open the queue {config.queue_path}: {error}", file=sys.stderr
        )
        return 1
    previous = signal.signal(signal.SIGTERM, _terminate)
    controller = None
    try:
        if args.agent == "controller":
            controller = Controller(
                sender,
                args.id,
                agents=collectors,
                poll_interval=args.poll_interval,
                unordered=args.unordered,
                default_interval=args.interval,
                zone=zone,
            )
            controller.run()
        else:
            scheduler = Scheduler(sender)
            for collector in collectors:
                scheduler.add(collector, args.interval)
            scheduler.run(cycles=args.cycles)
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if controller is not None:
            controller.stop(timeout=5.0)
        sender.close()
    stats = sender.stats
    print(
        f"logspace agent: sent {stats.sent}, dropped {stats.dropped}, queued {stats.queued} "
        f"(in {config.queue_path})",
        file=sys.stderr,
    )
    return 0
