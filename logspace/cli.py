"""`logspace serve | templates install | retention | kibana setup | spaces ... | agent ...`: a
thin shell over the same functions HQ and the agents use."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from logspace.elastic import security, tls
from logspace.elastic.client import connect
from logspace.elastic.store import Store
from logspace.errors import StoreUnavailable
from logspace.ops import kibana, kibanaapi, kibanaspaces, logs, retention
from logspace.ops.metrics import MULTIPROCESS_VARIABLE
from logspace.settings import Settings, SettingsError
from logspace.spaces.analysts import SpaceAccess
from logspace.spaces.grants import is_space_name
from logspace.spaces.tokens import load_tokens
from logspace.textvalues import parse_keep

__all__ = ["main"]

# Analyst names go into URL paths of the security API: plain characters only.
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,100}")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    environ = os.environ if environ is None else environ
    if argv[:1] == ["agent"]:
        # Before parsing, so `logspace agent --help` reaches the agent's own parser. The
        # agents need none of HQ's settings; they have their own (logspace.agent.config).
        from logspace.agent.cli import main as agent_main

        return agent_main(argv[1:], environ)
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(environ)
        tls.context(settings)  # certificate files: fail here, with the setting named
        if args.command == "serve":
            load_tokens(settings)  # fail here, with the setting named, not in each worker
    except SettingsError as error:
        print(f"logspace: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format)
    if args.command == "serve":
        return _serve(settings, args.host, args.port, args.workers)
    if args.command == "retention":
        return asyncio.run(_retention(settings, args.keep, args.space, args.dry_run))
    if args.command == "kibana":
        spaces = list(dict.fromkeys(args.space or []))
        if args.all_spaces:
            try:
                spaces += sorted({g.space for g in load_tokens(settings).values()} - set(spaces))
            except SettingsError as error:
                print(f"logspace: --all-spaces: {error}", file=sys.stderr)
                return 2
        return asyncio.run(
            _kibana_setup(settings, args.url, args.wait, spaces, args.analyst_access)
        )
    if args.command == "spaces":
        return asyncio.run(_spaces(settings, args))
    return asyncio.run(_install_templates(settings))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logspace", description="Logspace HQ")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run HQ (settings from LOGSPACE_* variables)")
    serve.add_argument("--host", help="address to listen on (default: LOGSPACE_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: LOGSPACE_PORT)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    templates = commands.add_parser("templates", help="manage the Elasticsearch index templates")
    templates_commands = templates.add_subparsers(dest="action", required=True)
    templates_commands.add_parser("install", help="install or update the index templates")
    retain = commands.add_parser(
        "retention", help="delete whole event indices (months, quarters, years) older than a window"
    )
    retain.add_argument(
        "--keep", required=True, type=_keep, help="window to keep, in days, e.g. 90d"
    )
    retain.add_argument("--space", type=_space, help="only this space's indices")
    retain.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted, delete nothing"
    )
    kibana_command = commands.add_parser("kibana", help="set up Kibana for Logspace")
    kibana_commands = kibana_command.add_subparsers(dest="action", required=True)
    setup = kibana_commands.add_parser(
        "setup",
        help="import the data view and the overview dashboard (overwriting); with --space, "
        "also a Kibana space, its objects and a Kibana role per Logspace space",
    )
    setup.add_argument("--url", required=True, help="Kibana's base URL, e.g. http://kibana:5601")
    setup.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying this long while Kibana is unreachable or starting (default: 0)",
    )
    setup.add_argument(
        "--space",
        action="append",
        type=_space,
        metavar="SPACE",
        help="also set up a Kibana space for this Logspace space (repeatable)",
    )
    setup.add_argument(
        "--all-spaces",
        action="store_true",
        help="... for every space of LOGSPACE_SPACE_TOKENS and LOGSPACE_SPACE_TOKENS_FILE",
    )
    setup.add_argument(
        "--analyst-access",
        choices=["read", "all"],
        default="read",
        help="Kibana privilege of a space's analysts in its Kibana space (default: read)",
    )
    _spaces_parser(commands)
    agent = commands.add_parser(
        "agent",
        help="run an agent, e.g. `logspace agent os` (see `logspace agent --help`)",
        add_help=False,
    )
    agent.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser


def _spaces_parser(commands: Any) -> None:
    spaces = commands.add_parser(
        "spaces",
        help="who may read a space in Elasticsearch (as an administrator: LOGSPACE_ES_*)",
    )
    actions = spaces.add_subparsers(dest="action", required=True)
    grant = actions.add_parser("grant", help="create or update the role that reads the space")
    grant.add_argument("space", type=_space)
    analyst = actions.add_parser(
        "analyst", help="give native user NAME, or a new API key named NAME, the space to read"
    )
    analyst.add_argument("space", type=_space)
    analyst.add_argument("name", type=_name)
    analyst.add_argument(
        "--password-stdin", action="store_true", help="set the user's password from stdin"
    )
    analyst.add_argument(
        "--api-key", action="store_true", help="make a new API key instead of a user"
    )
    analyst.add_argument(
        "--expiration", type=_keep, metavar="Nd", help="the API key expires after N days"
    )
    analyst.add_argument(
        "--rotate",
        action="store_true",
        help="invalidate the space's other API keys of this name once the new one exists",
    )
    revoke = actions.add_parser(
        "revoke", help="take the space from analyst NAME, or from everyone without a NAME"
    )
    revoke.add_argument("space", type=_space)
    revoke.add_argument("name", type=_name, nargs="?")
    show = actions.add_parser("show", help="list the space's roles, users and API keys")
    show.add_argument("space", type=_space)


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an analyst name (1 to 100 of A-Z a-z 0-9 . _ @ -)"
        )
    return value


def _keep(value: str) -> int:
    try:
        return parse_keep(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _space(value: str) -> str:
    if not is_space_name(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a space name")
    return value


def _serve(settings: Settings, host: str | None, port: int | None, workers: int) -> int:
    import uvicorn

    shared_metrics = None
    if workers > 1 and not os.environ.get(MULTIPROCESS_VARIABLE):
        # Each worker counts for itself; files in a shared directory let /metrics sum them up.
        shared_metrics = tempfile.mkdtemp(prefix="logspace-metrics-")
        os.environ[MULTIPROCESS_VARIABLE] = shared_metrics
    try:
        uvicorn.run(
            "logspace.app:create_app_from_environ",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            **server_options(settings),
        )
    finally:
        if shared_metrics:
            shutil.rmtree(shared_metrics, ignore_errors=True)
    return 0


def server_options(settings: Settings) -> dict[str, Any]:
    """How `logspace serve` runs uvicorn, but for the app and its address (tests start
    servers the same way)."""
    from logspace.protocol import HQProtocol

    return {
        "loop": "uvloop",
        # httptools, answering a fleet's small PUT /events without the ASGI cycle.
        "http": HQProtocol.configured(settings),
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": 30,
        # Agents send every few seconds to a minute: a connection kept that long is
        # reused instead of opened again for each batch (uvicorn's default is 5 s).
        "timeout_keep_alive": settings.keep_alive_seconds,
        "log_config": logs.logging_config(settings.log_format),
        "access_log": False,
    }


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


async def _retention(settings: Settings, keep: int, space: str | None, dry_run: bool) -> int:
    store = Store(settings)
    try:
        plan = await retention.apply(
            store, settings.index_prefix, keep, space=space, dry_run=dry_run
        )
    except StoreUnavailable as error:
        print(f"logspace: {error.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    verb = "would delete" if dry_run else "deleted"
    for index in plan.expired:
        print(f"{verb} {index.name} ({_count(index.docs)} documents)")
    cutoff = plan.cutoff.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    print(
        f"{len(plan.expired)} {'to delete' if dry_run else 'deleted'}, {len(plan.kept)} kept: "
        f"periods that ended before {cutoff} ({keep}d ago)"
    )
    return 0


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


async def _kibana_setup(
    settings: Settings,
    url: str,
    wait: float,
    spaces: list[str],
    privilege: kibanaspaces.AnalystAccess,
) -> int:
    try:
        async with kibanaapi.Kibana(url, settings, wait=wait) as client:
            objects = kibana.load(settings.index_prefix)
            _print(kibana.imported(await client.send(kibanaapi.import_objects(objects))))
            for space in spaces:
                access = SpaceAccess(settings.index_prefix, space)
                _print(await kibanaspaces.setup_space(client, access, privilege))
    except kibana.KibanaError as error:
        print(f"logspace: {error}", file=sys.stderr)
        return 1
    return 0


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line, flush=True)


async def _spaces(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "analyst" and not args.api_key and (args.expiration or args.rotate):
        print("logspace: --expiration and --rotate are for --api-key", file=sys.stderr)
        return 2
    if args.action == "analyst" and args.api_key and args.password_stdin:
        print("logspace: an API key has no password", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n") if getattr(args, "password_stdin", False) else None
    if password is not None and len(password) < 6:
        print("logspace: the password needs 6 or more characters", file=sys.stderr)
        return 2
    access = SpaceAccess(settings.index_prefix, args.space)
    client = connect(settings)
    secret = None
    try:
        if args.action == "grant":
            lines = await security.grant(client, access)
        elif args.action == "analyst" and args.api_key:
            lines, key = await security.add_api_key(
                client, access, args.name, expiration_days=args.expiration, rotate=args.rotate
            )
            secret = (
                f"api key for {args.name} (shown only now; send it as "
                f"'Authorization: ApiKey <key>'): {key.encoded}"
            )
        elif args.action == "analyst":
            lines, generated = await security.add_user(client, access, args.name, password)
            if generated:
                secret = f"password of {args.name} (shown only now): {generated}"
        elif args.action == "revoke":
            lines = await security.revoke(client, access, args.name)
        else:
            lines = await security.show(client, access)
    except security.SecurityError as error:
        print(f"logspace: {error}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    for line in lines:
        print(line)
    if secret:
        print(secret)
    return 0
