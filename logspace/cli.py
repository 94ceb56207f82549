"""`logspace serve | templates install | agent ...`: a thin shell over the same functions."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from .errors import StoreUnavailable
from .settings import Settings, SettingsError
from .store import Store

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="logspace", description="Logspace HQ")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run HQ (settings from LOGSPACE_* variables)")
    serve.add_argument("--host", help="address to listen on (default: LOGSPACE_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: LOGSPACE_PORT)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    templates = commands.add_parser("templates", help="manage the Elasticsearch index templates")
    templates_commands = templates.add_subparsers(dest="action", required=True)
    templates_commands.add_parser("install", help="install or update the index templates")
    agent = commands.add_parser(
        "agent",
        help="run an agent, e.g. `logspace agent os` (see `logspace agent --help`)",
        add_help=False,
    )
    agent.add_argument("arguments", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else list(argv)
    environ = os.environ if environ is None else environ
    if argv[:1] == ["agent"]:
        # Before parsing, so `logspace agent --help` reaches the agent's own parser. The
        # agents need none of HQ's settings; they have their own (logspace.agent.config).
        from .agent.cli import main as agent_main

        return agent_main(argv[1:], environ)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # One line per Elasticsearch request is noise at INFO.
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env(environ)
    except SettingsError as error:
        print(f"logspace: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        try:
            settings.require_tokens()
        except SettingsError as error:
            print(f"logspace: {error}", file=sys.stderr)
            return 2
        return _serve(settings, args.host, args.port, args.workers)
    return asyncio.run(_install_templates(settings))


def _serve(settings: Settings, host: str | None, port: int | None, workers: int) -> int:
    import uvicorn

    uvicorn.run(
        "logspace.app:create_app_from_environ",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    return 0


async def _install_templates(settings: Settings) -> int:
    store = Store(settings)
    try:
        for line in await store.install_templates():
            print(line)
    except StoreUnavailable as error:
        print(f"logspace: {error.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0
