"""Command line: ``python -m emulator [serve] --port 0 ...`` and ``python -m emulator dump ...``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from emulator.config import (
    ConfigError,
    EmulatorConfig,
    check_config,
    default_config,
    group_from_spec,
    load_config,
)
from emulator.faults import FaultSettings, FaultSettingsError
from emulator.server import make_server
from emulator.service import Emulator
from emulator.store import ENTITY_TABLES, Store
from emulator.testing import EmulatorHandle

logger = logging.getLogger("emulator")


def _serve_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
    parser.add_argument("--config", help="JSON or TOML configuration file (docs/emulator.md)")
    parser.add_argument(
        "--dataset-group",
        action="append",
        default=[],
        metavar="NAME[:TRACKING_ID[:ACTION_TRACKING_ID]]",
        help="add a dataset group with ITEMS, USERS and ACTIONS datasets (repeatable)",
    )
    parser.add_argument("--db", default=":memory:", help="SQLite file for the store (default: in memory)")
    parser.add_argument(
        "--credentials",
        action="append",
        default=[],
        metavar="ACCESS_KEY:SECRET",
        help="accepted credentials (repeatable; default testing:testing)",
    )
    parser.add_argument(
        "--no-verify-signature",
        action="store_true",
        help="accept any well-formed SigV4 header without checking the signature",
    )
    parser.add_argument(
        "--quota", action="append", default=[], metavar="OPERATION=PER_SECOND", help="requests/s (0 = unlimited)"
    )
    parser.add_argument(
        "--throttle-status",
        type=int,
        choices=[400, 429],
        help="throttling answer: 400 ThrottlingException (default) or 429 TooManyRequestsException",
    )
    parser.add_argument("--faults", help='starting faults as JSON, e.g. \'{"errorRate": 0.05, "seed": 1}\'')
    parser.add_argument(
        "--import-jobs",
        help='dataset import job settings as JSON, e.g. \'{"pendingSeconds": 1, "inProgressSeconds": 2}\'',
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr (default WARNING)")


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """Configuration from ``--config`` and the other serve flags (flags win)."""
    config = load_config(args.config) if args.config else default_config()
    config.groups.extend(group_from_spec(spec) for spec in args.dataset_group)
    if args.credentials:
        pairs = [spec.partition(":") for spec in args.credentials]
        if any(not key or not secret for key, _, secret in pairs):
            raise ConfigError("--credentials takes ACCESS_KEY:SECRET")
        config.credentials = {key: secret for key, _, secret in pairs}
    if args.no_verify_signature:
        config.verify_signatures = False
    for spec in args.quota:
        operation, _, rate = spec.partition("=")
        try:
            config.quotas[operation] = float(rate)
        except ValueError as exc:
            raise ConfigError(f"--quota takes OPERATION=PER_SECOND, got {spec!r}") from exc
    if args.throttle_status is not None:
        config.throttle_status = args.throttle_status
    if args.faults:
        config.faults = json.loads(args.faults)
    if args.import_jobs:
        config.import_jobs = json.loads(args.import_jobs)
    try:
        FaultSettings.from_dict(config.faults)
    except FaultSettingsError as exc:
        raise ConfigError(str(exc)) from exc

    check_config(config)
    return config


def serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; the first stdout line is the URL."""
    config = build_config(args)
    emulator = Emulator(config, Store(args.db))
    server = make_server(emulator, args.host, args.port)
    stop = threading.Event()

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    # NOTE: serve_forever runs on a thread because shutdown() blocks until the serving loop exits: calling it
    # from a signal handler on the serving thread would deadlock.
    thread = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    thread.start()
    print(server.url, flush=True)
    logger.info("serving %d dataset group(s) at %s", len(config.groups), server.url)
    while not stop.wait(0.5):
        pass
    server.stop()
    thread.join()
    emulator.store.close()
    logger.info("stopped")
    return 0


def dump(args: argparse.Namespace) -> int:
    """Print stored records (or the call log, or counts) as JSON lines."""
    if args.url:
        handle = EmulatorHandle(args.url)
        if args.what == "counts":
            rows = [handle.stats()]
        elif args.what == "calls":
            rows = handle.calls(args.operation)
        else:
            rows = handle.records(args.what, target=args.target)
    else:
        store = Store(args.db)
        try:
            if args.what == "counts":
                rows = [store.stats()]
            elif args.what == "calls":
                rows = store.calls(operation=args.operation)
            else:
                rows = store.records(args.what, target=args.target)
        finally:
            store.close()
    for row in rows[-args.tail :] if args.tail else rows:
        print(json.dumps(row, sort_keys=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Local Amazon Personalize Events")
    commands = parser.add_subparsers(dest="command")
    _serve_parser(commands.add_parser("serve", help="serve the API (the default command)"))
    dump_parser = commands.add_parser("dump", help="print what a store holds, as JSON lines")
    dump_parser.add_argument("what", choices=[*ENTITY_TABLES, "calls", "counts"])
    source = dump_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", help="SQLite file a server was started with (--db)")
    source.add_argument("--url", help="URL of a running emulator (reads its admin API)")
    dump_parser.add_argument("--target", help="only this tracking id / dataset ARN")
    dump_parser.add_argument("--operation", help="calls: only this operation")
    dump_parser.add_argument("--tail", type=int, help="only the last N rows")
    if not argv or argv[0] not in ("serve", "dump", "-h", "--help"):
        argv.insert(0, "serve")
    args = parser.parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return serve(args) if args.command == "serve" else dump(args)
    except ConfigError as exc:
        parser.error(str(exc))
    return 2
