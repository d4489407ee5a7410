"""The `voicebridge` command: serve, and manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.exceptions import RedisError

from api.server import StartupError, describe_redis, open_redis, serve
from bridge import logs
from bridge.cluster import supervisor
from bridge.cluster.plan import PlanError
from bridge.cluster.supervisor import ClusterError
from bridge.embedded_redis import EmbeddedRedisError
from bridge.settings import Settings, SettingsError, load_settings
from bridge.store import Store


async def _with_store(
    settings: Settings, action: Callable[[Store], Awaitable[int]], *, create: bool
) -> int:
    # Said first, on stderr: a listing from the wrong place looks just like an empty one.
    print(f"API keys in {describe_redis(settings)}", file=sys.stderr)
    async with open_redis(settings, create=create) as redis:
        return await action(Store(redis, settings.redis_prefix))


def _keys_create(name: str) -> Callable[[Store], Awaitable[int]]:
    async def run(store: Store) -> int:
        record, key = await store.api_keys.create(name)
        print(f"created {record.key_id} ({record.name}); the key is shown only now:")
        print(key)
        return 0

    return run


async def _keys_list(store: Store) -> int:
    records = await store.api_keys.all()
    if not records:
        print("no API keys there", file=sys.stderr)
    for record in records:
        state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
        print(
            f"{record.key_id}\tvbk_{record.prefix}_…\t{record.name}\t{record.created_at}\t{state}"
        )
    return 0


def _keys_revoke(which: str) -> Callable[[Store], Awaitable[int]]:
    async def run(store: Store) -> int:
        record = await store.api_keys.revoke(which)
        if record is None:
            print(f"no API key {which!r}", file=sys.stderr)
            return 1
        print(f"revoked {record.key_id} ({record.name})")
        return 0

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicebridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="run the bridge (REST API and webhook delivery)"
    )
    serve_parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="run this many bridge nodes behind Kamailio on the SIP port (default 1: one "
        "process, no balancer)",
    )
    serve_parser.add_argument(
        "--balancer",
        action="store_true",
        help="put Kamailio in front even of one node (as the benchmarks compare)",
    )
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    keys.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"voicebridge: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return _run(args, settings)
    except (StartupError, EmbeddedRedisError, ClusterError, PlanError) as exc:
        print(f"voicebridge: {exc}", file=sys.stderr)
        return 1
    except RedisError as exc:
        where = "VOICEBRIDGE_REDIS_URL" if settings.redis_url else "the embedded Redis"
        print(f"voicebridge: cannot use Redis ({where}): {exc}", file=sys.stderr)
        return 1


def voicebridge_command() -> list[str]:
    """How to start this command again: the console script beside the interpreter, if any."""
    script = Path(sys.executable).with_name("voicebridge")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "api.cli"]


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        if args.nodes > 1 or args.balancer:
            asyncio.run(supervisor.run(settings, args.nodes, voicebridge_command()))
        else:
            asyncio.run(serve(settings))
        return 0
    actions: dict[str, Callable[[Store], Awaitable[int]]] = {
        "list": _keys_list,
    }
    if args.keys_command == "create":
        actions["create"] = _keys_create(args.name)
    elif args.keys_command == "revoke":
        actions["revoke"] = _keys_revoke(args.key)
    # Only `create` may start from nothing; listing or revoking in a place without data would
    # otherwise make an empty Redis there and report nothing wrong.
    creates = args.keys_command == "create"
    return asyncio.run(_with_store(settings, actions[args.keys_command], create=creates))


if __name__ == "__main__":
    sys.exit(main())
