"""Scheduled: follow the started dataset import jobs and write their result files (import_tracking)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from personalize_ingest.deadline import Deadline
from personalize_ingest.import_jobs import client
from personalize_ingest.import_tracking import BUCKET_VARIABLE, ENTITIES_VARIABLE, entities_from, track
from personalize_ingest.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Advance every tracked job once; return the run's counts (in-flight, imported, failed, errors)."""
    # NOTE: no margin: the run stops on its own STOP_BEFORE_END_S before the timeout; the deadline sizes the
    # S3 calls' timeouts to the time left.
    deadline = Deadline(context, 0)
    run = track(
        client("s3", deadline),
        client("personalize", deadline),
        os.environ[BUCKET_VARIABLE],
        entities_from(os.environ[ENTITIES_VARIABLE]),
        time_left_s=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    logger.info("tracker run finished", extra=run.as_dict())
    return run.as_dict()
