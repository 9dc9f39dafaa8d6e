"""Send rejected records to the rejects queue (``REJECTS_QUEUE_URL``), ten per SendMessageBatch.

A rejected record counts as handled only once it reached the queue: when the variable is unset or a send fails,
the record is returned as not sent and the caller reports it failed, so nothing is ever dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from personalize_ingest.contract import REJECTS_QUEUE_URL
from personalize_ingest.model import Record, Rejection

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# NOTE: SQS caps one message and one SendMessageBatch payload at 262,144 bytes (256 KiB).
MAX_MESSAGE_BYTES = 262_144
MAX_BATCH_ENTRIES = 10
logger = Logger(child=True)
_SAFETY_BYTES = 1_024
"""Room kept for message attributes SQS counts into the size and for rounding."""
UNSERIALISABLE_RECORD = "(the record is nested too deeply to be serialised)"


@dataclass(frozen=True, slots=True)
class NotSent:
    """A rejected record that did not reach the rejects queue, and why."""

    record: Record
    rejection: Rejection
    reason: str


def reject_message(entity_name: str, record: Record, rejection: Rejection) -> str:
    """JSON body of the reject message of one record, cut with ``"truncated": true`` when too large.

    The body is ASCII (non-ASCII escaped), so its length in characters is its size in bytes, and characters
    SQS refuses in a message body cannot occur.
    """
    message: dict[str, Any] = {
        "entity": entity_name,
        "code": rejection.code,
        "reason": rejection.reason,
        "source": record.source.as_reject_source(),
        "record": record.value,
    }
    try:
        body = _dumps(message)
    except (ValueError, RecursionError):
        # NOTE: a value nested almost as deep as json.loads allows may not serialise again from deeper in the
        # stack; the message still reaches the queue, with the record marked as cut.
        message["record"] = UNSERIALISABLE_RECORD
        message["truncated"] = True
        return _dumps(message)
    limit = MAX_MESSAGE_BYTES - _SAFETY_BYTES
    if len(body) <= limit:
        return body
    text = record.value if isinstance(record.value, str) else _dumps(record.value)
    message["record"] = ""
    message["truncated"] = True
    room = limit - len(_dumps(message))
    message["record"] = _longest_prefix(text, room)
    return _dumps(message)


class RejectsSender:
    """Sends reject messages for one function.

    Parameters
    ----------
    queue_url
        ``REJECTS_QUEUE_URL``; None when unset (every rejected record is then returned as not sent).
    entity_name
        The function's entity (the messages' ``entity`` and, on a FIFO queue, their message group).
    client_factory
        Called before each SendMessageBatch for the client to use (the pipeline hands out one whose timeouts fit
        the time left).
    """

    def __init__(
        self,
        queue_url: str | None,
        entity_name: str,
        *,
        client_factory: Callable[[], SQSClient],
    ) -> None:
        self.queue_url = queue_url
        self.entity_name = entity_name
        self._client_factory = client_factory

    def send(self, rejected: Sequence[tuple[Record, Rejection]]) -> list[NotSent]:
        """Send one message per rejected record; return those that did not reach the queue."""
        if not rejected:
            return []
        if self.queue_url is None:
            return [self._not_set_aside(record, rejection) for record, rejection in rejected]
        not_sent: list[NotSent] = []
        for batch in _batches([(r, j, reject_message(self.entity_name, r, j)) for r, j in rejected]):
            not_sent.extend(self._send_batch(batch))
        return not_sent

    def _not_set_aside(self, record: Record, rejection: Rejection) -> NotSent:
        """A rejected record with no queue to go to: its reason stays visible in the log and the failure reason.

        The rejection's code and reason name the field and the rule, never a value, so they are logged at
        WARNING; the record's values are not (only its place: line, sequence number or message id).
        """
        logger.warning(
            f"record rejected, and not set aside: {REJECTS_QUEUE_URL} is not set",
            extra={"source": record.source.as_reject_source(), "code": rejection.code, "reason": rejection.reason},
        )
        reason = (
            f"rejected ({rejection.code}: {rejection.reason}), "
            f"but {REJECTS_QUEUE_URL} is not set, so the record cannot be set aside"
        )
        return NotSent(record, rejection, reason)

    def _send_batch(self, batch: list[tuple[Record, Rejection, str]]) -> list[NotSent]:
        assert self.queue_url is not None
        entries = [self._entry(str(index), record, body) for index, (record, _, body) in enumerate(batch)]
        try:
            response = self._client_factory().send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            reason = f"SendMessageBatch to the rejects queue failed: {exc}"
            return [NotSent(record, rejection, reason) for record, rejection, _ in batch]
        failures = {failure["Id"]: failure for failure in response.get("Failed", [])}
        return [
            NotSent(record, rejection, f"the rejects queue refused the message: {failures[str(index)]['Code']}")
            for index, (record, rejection, _) in enumerate(batch)
            if str(index) in failures
        ]

    def _entry(self, entry_id: str, record: Record, body: str) -> SendMessageBatchRequestEntryTypeDef:
        entry: SendMessageBatchRequestEntryTypeDef = {"Id": entry_id, "MessageBody": body}
        if self.queue_url is not None and self.queue_url.endswith(".fifo"):
            # NOTE: FIFO queues require a group id; the record's source identity makes a redelivered reject a
            # duplicate SQS drops within its 5-minute deduplication interval.
            entry["MessageGroupId"] = self.entity_name
            entry["MessageDeduplicationId"] = hashlib.sha256(record.source.identity().encode()).hexdigest()
        return entry


def _batches(messages: list[tuple[Record, Rejection, str]]) -> list[list[tuple[Record, Rejection, str]]]:
    """Up to ten messages per batch and at most MAX_MESSAGE_BYTES of bodies per batch."""
    batches: list[list[tuple[Record, Rejection, str]]] = []
    current: list[tuple[Record, Rejection, str]] = []
    size = 0
    for message in messages:
        body_size = len(message[2])
        if current and (len(current) == MAX_BATCH_ENTRIES or size + body_size > MAX_MESSAGE_BYTES - _SAFETY_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(message)
        size += body_size
    if current:
        batches.append(current)
    return batches


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)


def _longest_prefix(text: str, room: int) -> str:
    """Longest prefix of ``text`` whose JSON string encoding fits in ``room`` bytes (less its quotes)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if len(_dumps(text[:middle])) - 2 <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low]
