"""``personalize-ingest``: check files, replay rejects, redrive failures, backfill history, see what is stuck.

Every command talks to AWS through unmodified boto3 clients: credentials, region and endpoints come from the usual
places (``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` ...), so the same command works against a deployed
stack and against ``make up``'s local one. Exit codes are listed in :mod:`ingest_cli.output`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from ingest_cli import backfill, redrive, replay, runtime, status, validate
from ingest_cli.fixes import FixError
from ingest_cli.output import AWS_ERROR, BAD_INPUT, INTERRUPTED, OK, Output
from ingest_cli.stack import OUTPUTS_VARIABLE, STACK_VARIABLE, StackError

PROG = "personalize-ingest"
EXIT_CODES = """exit codes: 0 every record fine; 1 some records invalid, rejected or failed;
2 bad input (arguments, entity, file, fix); 3 nothing to do (empty queue or bucket);
4 AWS or configuration error; 130 interrupted"""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", help="print one JSON document (for scripts) instead of text"
    )
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=sys.stderr.isatty(),
        help="progress line on stderr (default: on a terminal only)",
    )
    common.add_argument(
        "--outputs",
        type=Path,
        help=f"the stack's outputs as JSON (`make up` writes one; env {OUTPUTS_VARIABLE})",
    )
    common.add_argument("--stack", help=f"read the outputs of this CloudFormation stack (env {STACK_VARIABLE})")
    common.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="level of the runtime's JSON logs on stderr (default WARNING; DEBUG shows record values)",
    )
    return common


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.splitlines()[0].replace("``", "") if __doc__ else None,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    original = commands.add_parser

    def add_parser(name: str, **kwargs: object) -> argparse.ArgumentParser:
        # NOTE: every command takes the common options, after its name (as people type them).
        kwargs.setdefault("parents", [common])
        if isinstance(kwargs.get("description"), str):
            # NOTE: the commands' descriptions are their module docstrings; reStructuredText quotes read badly.
            kwargs["description"] = str(kwargs["description"]).replace("``", "`")
        kwargs.setdefault("epilog", EXIT_CODES)
        return original(name, **kwargs)  # type: ignore[arg-type]

    commands.add_parser = add_parser  # type: ignore[method-assign]
    for command in (validate, replay, redrive, backfill, status):
        command.add_parser(commands)
    return root


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:
        # NOTE: the whole help (every command, the exit codes), not argparse's one-line "COMMAND is required".
        parser().print_help(sys.stderr)
        return BAD_INPUT
    args = parser().parse_args(arguments)
    out = Output(as_json=args.json)
    restore_logs = runtime.route_runtime_logs(args.log_level)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return int(args.run(args, out))
    except (runtime.InputError, FixError) as exc:
        out.error(str(exc))
        return BAD_INPUT
    except (StackError, runtime.ConfigurationError) as exc:
        out.error(str(exc))
        return AWS_ERROR
    except NoRegionError:
        out.error("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)")
        return AWS_ERROR
    except (ClientError, BotoCoreError) as exc:
        out.error(f"AWS call failed: {exc}")
        return AWS_ERROR
    except KeyboardInterrupt:
        out.error("interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # NOTE: the reader (`| head`) went away; nothing more can be said to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    finally:
        signal.signal(signal.SIGTERM, previous)
        restore_logs()


if __name__ == "__main__":
    sys.exit(main())
