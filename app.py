#!/usr/bin/env python3
"""CDK app: ``cdk synth`` (through the npm CLI) or ``python app.py``; no AWS call is made at synth.

Configuration: a JSON file named by ``-c personalizeConfig=path/to/file.json``, else the ``personalize`` context
(cdk.json, or ``-c personalize='{...}'`` on one line); docs/deploy.md. The stack name defaults to
``PersonalizeIngest`` and can be changed with ``-c stackName=...``. Each synth prints, on stderr, every function's
concurrency and rate arithmetic and what the account must allow (reserved concurrency).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# The shared entity table lives with the function code (functions/personalize_ingest), imported without prefix.
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "functions"))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infrastructure.concurrency import account_requirement  # noqa: E402
from infrastructure.config import CONTEXT_KEY, IngestConfig  # noqa: E402
from infrastructure.config_loader import FILE_CONTEXT_KEY, ConfigError, load  # noqa: E402
from infrastructure.stack import DEFAULT_STACK_NAME, PersonalizeIngestStack, RegionError  # noqa: E402


def build_app(app: cdk.App | None = None) -> tuple[cdk.App, PersonalizeIngestStack]:
    """Build the app and its one stack from the app's context, with cdk-nag's AwsSolutions checks.

    Raises
    ------
    ConfigError
        when the configuration is invalid (the message names the key, the expected form and what was received).
    RegionError
        when the stack's region is known at synth and a target is of another one.
    """
    app = app or cdk.App()
    config = load(
        app.node.try_get_context(CONTEXT_KEY), app.node.try_get_context(FILE_CONTEXT_KEY), base=Path.cwd()
    )
    stack_name = app.node.try_get_context("stackName") or DEFAULT_STACK_NAME
    stack = PersonalizeIngestStack(
        app,
        stack_name,
        config=config,
        description="Streams interactions, items, users and actions into Amazon Personalize",
    )
    # NOTE: cdk-nag 3.x is a validation plugin: it runs at every synth and fails it on unacknowledged findings.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
    return app, stack


def synth_report(config: IngestConfig) -> str:
    """What an operator should read before deploying: each function's concurrency and rate, and the account's
    requirement."""
    lines = [e.budget.summary(e.function.calls_per_second) for e in config.entities]
    return "\n".join(["Concurrency (docs/deploy.md, 'Concurrency'):", *(f"  {line}" for line in lines),
                      account_requirement(config.reserved_concurrency_total)])  # fmt: skip


def main() -> None:
    # NOTE: the CDK CLI hands cdk.json's context (and -c values) over in CDK_CONTEXT_JSON; `python app.py` run
    # alone gets none, so it reads cdk.json itself.
    standalone = "CDK_CONTEXT_JSON" not in os.environ
    context = json.loads((ROOT / "cdk.json").read_text())["context"] if standalone else None
    try:
        app, stack = build_app(cdk.App(context=context, outdir=str(ROOT / "cdk.out") if standalone else None))
    except (ConfigError, RegionError) as exc:
        sys.exit(f"Invalid configuration: {exc}")
    print(synth_report(stack.config), file=sys.stderr)
    assembly = app.synth()
    if standalone:
        print(f"Template: {Path(assembly.directory) / stack.template_file}")


if __name__ == "__main__":
    main()
