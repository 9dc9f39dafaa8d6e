"""Progress markers: how an S3 object announced on an SQS FIFO queue resumes at the head of its message group.

A continuation message would go to the BACK of the announcing message's group, so a later message of that group
would be applied before the rest of the object; failing the rest of the group does not help either (those messages
were sent before the continuation and come back first). So on a FIFO queue the stage sends no continuation when
the deadline stops reading: it

1. writes the position a continuation would carry (byte offset, line, lines to skip, counts, hop count, the
   version or ETag read) to a marker, ``results/<key>.progress/<version>-<message id>.json``;
2. reports the announcing message failed: it stays at the head of its group, and the outcome's FIFO rule already
   failed every later message of the group in the batch behind it;
3. as the last step of the invocation, makes those messages visible again at once (ChangeMessageVisibility 0):
   SQS FIFO returns no message of a group while one of them is in flight, and the visibility timeout is six times
   the function's timeout.

The redelivered announcement finds its marker and reads on from it. The marker is named by the message id, not
by the object alone: only redeliveries of the same message resume (a later announcement of the same version, or
a re-upload with the same ETag, reads the object anew instead of inheriting a stale position or hop count).
The marker is deleted once the object is finished (complete, unreadable, changed); it is kept when the read ends
``incomplete`` (the retry resumes from it, as a continuation message would be retried from its own start) or
``stopped`` (after S3_MAX_HOPS, or a redelivery that handled no row: every further receive stops at once, so the
queue's maxReceiveCount and dead-letter queue apply).

Every redelivery counts toward the queue's maxReceiveCount: a FIFO object may take at most maxReceiveCount - 1
invocations before its message goes to the dead-letter queue.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from personalize_ingest.contract import PROGRESS_FOLDER, RESULTS_PREFIX
from personalize_ingest.observability import logger
from personalize_ingest.sources import continuation_body, continuation_ref

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from personalize_ingest.s3stage.reading import ObjectRead
    from personalize_ingest.sources import BatchItem, ObjectRef


def marker_key(item: BatchItem, ref: ObjectRef) -> str:
    """Where the progress of ``ref``, announced by ``item``, is kept (named by the announced version and the
    message id)."""
    version = hashlib.sha256(f"{ref.version_id or ''}|{ref.etag or ''}".encode()).hexdigest()[:16]
    return f"{RESULTS_PREFIX}{ref.key}{PROGRESS_FOLDER}{version}-{item.item_id}.json"


def read_marker(s3: S3Client, bucket: str, key: str) -> ObjectRef | None:
    """The position a marker holds, or None when there is none.

    Raises
    ------
    ClientError, BotoCoreError
        when S3 could not be asked (the message is then retried); ValueError / KeyError / TypeError when the
        marker cannot be read.
    """
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    document: dict[str, Any] = json.loads(body)
    return continuation_ref(document["continuation"])


def write_marker(s3: S3Client, key: str, item: BatchItem, following: ObjectRef) -> None:
    """Keep ``following`` (the position a continuation would carry) for the redelivery of ``item``."""
    document = json.loads(continuation_body(following))
    document["messageId"] = item.item_id
    document["receiveCount"] = item.receive_count
    s3.put_object(
        Bucket=following.bucket,
        Key=key,
        Body=json.dumps(document, indent=2).encode(),
        ContentType="application/json",
    )


def delete_marker(s3: S3Client, bucket: str, key: str) -> None:
    """Forget the marker (the object is finished); deleting a missing key succeeds."""
    s3.delete_object(Bucket=bucket, Key=key)


# ---------------------------------------------------------------------------------------------------- one read


def hold(read: ObjectRead, following: ObjectRef) -> bool:
    """Keep ``following`` in ``read``'s marker and report its message failed, so it stays at the head of its
    group and its redelivery resumes there (the stage makes it visible again last).

    False (the message reported failed too) when the marker could not be written: the redelivery then resumes
    from the previous marker, or from the object's start; rows are sent again, none is lost.
    """
    assert read.marker is not None
    item = read.item
    try:
        write_marker(read.stage.client("s3"), read.marker, item, following)
    except (ClientError, BotoCoreError) as exc:
        read.sink.outcome.mark_failed(item.item_id, f"the progress marker could not be written: {exc}")
        logger.error(
            "progress marker not written: the message is reported for retry",
            extra={**read.where, "error": str(exc)},
        )
        return False
    read.sink.outcome.mark_failed(
        item.item_id, f"held at the head of its FIFO group: its redelivery resumes at line {following.start_line}"
    )
    read.stage.hold(item)
    logger.info("deadline near: progress kept, the FIFO message is held for redelivery", extra=read.where)
    return True


def forget(read: ObjectRead) -> None:
    """Delete ``read``'s marker: its object is finished."""
    assert read.marker is not None
    try:
        delete_marker(read.stage.client("s3"), read.ref.bucket, read.marker)
    except (ClientError, BotoCoreError) as exc:
        # NOTE: a marker left behind is named by this message id: no other message resumes from it, and the
        # results lifecycle rule expires it.
        logger.warning("progress marker not deleted", extra={**read.where, "error": str(exc)})


def receive_note(read: ObjectRead) -> str:
    """What a stopped FIFO read's error adds: which receive of the message this was ("" when unknown)."""
    if read.marker is None or read.item.receive_count is None:
        return ""
    return (
        f"; this was receive {read.item.receive_count} of the FIFO message: it goes to the dead-letter queue once "
        "the queue's maxReceiveCount is reached"
    )
