"""Per batch item accounting, turned into Lambda's partial batch response.

Every record ends with one :class:`~personalize_ingest.model.RecordOutcome` (delivered, superseded, rejected - it
reached the rejects queue - or failed); :meth:`Outcome.record` takes them, derives the invocation's
:class:`Tally` from them, and one failed record marks its whole batch item (SQS message, Kinesis record) failed.
On an SQS FIFO queue the first failure in a message group also fails every later message of that group without
sending it, so the group's order holds; other groups go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

from personalize_ingest.model import Fate, RecordOutcome
from personalize_ingest.sources import BatchItem


class PartialItemFailure(TypedDict):
    itemIdentifier: str


class PartialItemFailureResponse(TypedDict):
    batchItemFailures: list[PartialItemFailure]


@dataclass(slots=True)
class Tally:
    """Counts of one invocation, emitted as metrics: the record counts are derived from the record outcomes
    (:meth:`count`), the call counts from the deliverer."""

    received: int = 0
    delivered: int = 0
    superseded: int = 0
    """Upserts not sent because a later record of the same id was delivered; counted as delivered in metrics."""
    rejected: int = 0
    failed: int = 0
    api_calls: int = 0
    throttled_calls: int = 0
    retries: int = 0

    def count(self, outcomes: Iterable[RecordOutcome]) -> None:
        """Add one received record, and one of its fate, per outcome."""
        for outcome in outcomes:
            self.received += 1
            if outcome.fate is Fate.DELIVERED:
                self.delivered += 1
            elif outcome.fate is Fate.SUPERSEDED:
                self.superseded += 1
            elif outcome.fate is Fate.REJECTED:
                self.rejected += 1
            else:
                self.failed += 1

    @classmethod
    def of(cls, outcomes: Iterable[RecordOutcome]) -> Tally:
        """The counts of ``outcomes`` alone (no calls)."""
        tally = cls()
        tally.count(outcomes)
        return tally


class Outcome:
    """What happened to each batch item of one invocation.

    Parameters
    ----------
    items
        The batch items in event order.
    fifo
        True for an SQS FIFO source: a failure stops the rest of its message group.
    """

    def __init__(self, items: Sequence[BatchItem], fifo: bool = False) -> None:
        self._order = [item.item_id for item in items]
        self._group_of = {item.item_id: item.group_id for item in items}
        self._failed: dict[str, str] = {}
        self._stopped_groups: set[str] = set()
        self.fifo = fifo
        self.tally = Tally()

    def mark_failed(self, item_id: str, reason: str) -> None:
        """Report ``item_id`` failed (the first reason is kept); on FIFO, stop the rest of its group."""
        self._failed.setdefault(item_id, reason)
        group = self._group_of.get(item_id)
        if self.fifo and group is not None:
            self._stopped_groups.add(group)

    def withdraw_failure(self, item_id: str, records: int) -> None:
        """Take back the failure of ``records`` records of ``item_id`` that a continuation message reads again.

        They were never sent (the deadline came first), so here they count as neither received nor failed, and
        the item is no longer reported failed; on FIFO its group goes on unless another of its items failed.
        """
        self._failed.pop(item_id, None)
        self.tally.received -= records
        self.tally.failed -= records
        group = self._group_of.get(item_id)
        if group is not None and not any(self._group_of.get(other) == group for other in self._failed):
            self._stopped_groups.discard(group)

    def is_failed(self, item_id: str) -> bool:
        return item_id in self._failed

    def group_stopped(self, item: BatchItem) -> bool:
        """True when an earlier message of the item's FIFO group failed: the item must not be sent."""
        return self.fifo and item.group_id is not None and item.group_id in self._stopped_groups

    def record(self, outcomes: Iterable[RecordOutcome]) -> None:
        """Take the final outcome of each of ``outcomes``' records: count it, and mark the item of a failed one."""
        outcomes = list(outcomes)
        self.tally.count(outcomes)
        for outcome in outcomes:
            if outcome.fate is Fate.FAILED:
                self.mark_failed(outcome.record.item_id, outcome.reason)

    def failed_items(self) -> list[str]:
        """Failed item ids in event order."""
        return [item_id for item_id in self._order if item_id in self._failed]

    def failure_reasons(self) -> dict[str, str]:
        return dict(self._failed)

    def response(self) -> PartialItemFailureResponse:
        """The partial batch response: every item not fully handled, in event order."""
        return {"batchItemFailures": [{"itemIdentifier": item_id} for item_id in self.failed_items()]}
