"""Fates that depend on the whole ``deliver()`` call, settled once every call has ended.

- A record the service **refused on its own** is rejected (set aside with its reason) only when the same target
  accepted other records in this invocation, which shows the configuration is sound; otherwise it is failed, since
  a wrong tracking id may be refused like a bad record (:class:`Refusals`).
- An **older version** of an upsert shares the fate of the later version that replaced it
  (:func:`share_fate_with_successor`).
"""

from __future__ import annotations

import threading

from aws_lambda_powertools import Logger

from personalize_ingest.batching import Plan, max_per_call, upsert_id
from personalize_ingest.entities import Entity
from personalize_ingest.model import Fate, Prepared, RecordOutcome, Rejection

logger = Logger(child=True)

SERVICE_REJECTED = "service_rejected"


class Refusals:
    """Whether the target accepted anything in this invocation, and what that makes of the records it refused.

    One instance per deliverer (thread-safe): calls mark :meth:`accepted` and count :meth:`refused_alone`;
    :meth:`settle` decides every refused record's fate at the end of ``deliver()``.
    """

    def __init__(self, entity: Entity, target: str) -> None:
        self._entity = entity
        self._target = target
        self._accepted = threading.Event()
        """The target accepted at least one call in this invocation: its configuration is sound."""
        self._lock = threading.Lock()
        self._refused_alone = 0
        self._logged = False
        # NOTE: a wrong tracking id may be answered with InvalidInputException like a bad record (REFERENCE.md:
        # unverified). Splitting every call down to single records would then cost two calls per record; after
        # this many single-record refusals with nothing accepted, the target is treated as misconfigured.
        self._before_stop = 2 * max_per_call(entity)

    def accepted(self) -> None:
        """The target accepted a call."""
        self._accepted.set()

    def refused_alone(self) -> str | None:
        """Count one record refused on its own; returns why to stop calling the target, when it accepted none of
        too many such records, else None."""
        with self._lock:
            self._refused_alone += 1
            count = self._refused_alone
            give_up = not self._accepted.is_set() and count >= self._before_stop
        if not give_up:
            return None
        return (
            f"{self._entity.operation} refused {count} records one by one and "
            f"{self._entity.target_variable} {self._target} accepted none in this invocation; "
            "check the target (a wrong tracking id is refused like an invalid record)"
        )

    def settle(
        self, refused: list[tuple[Prepared, str]], ends: dict[int, RecordOutcome], *, stopped: bool
    ) -> None:
        """Give each refused record (with the service's message) its outcome in ``ends``: rejected when the target
        accepted something, else failed (logged once per deliverer unless ``stopped`` already said why)."""
        if not refused:
            return
        operation = self._entity.operation
        if self._accepted.is_set():
            for p, message in refused:
                rejection = Rejection(SERVICE_REJECTED, f"{operation} refused the record: {message}")
                ends[id(p)] = RecordOutcome.rejected(p.record, rejection)
            return
        for p, message in refused:
            ends[id(p)] = RecordOutcome.failed(
                p.record,
                f"{operation} refused the record ({message}) but {self._entity.target_variable} accepted nothing "
                "in this invocation: treated as a configuration problem, not a bad record",
            )
        with self._lock:
            first = not self._logged
            self._logged = True
        if first and not stopped:
            codes = sorted({message.split(":", 1)[0] for _, message in refused})
            logger.error(
                f"{operation} refused every record sent on its own and {self._entity.target_variable} "
                f"{self._target} accepted none in this invocation: check the target's configuration. "
                "The records are reported failed, not rejected",
                extra={"entity": self._entity.name, "refused": len(refused), "error_codes": codes},
            )


def share_fate_with_successor(entity: Entity, calls: Plan, ends: dict[int, RecordOutcome]) -> None:
    """An older version shares the fate of the version that replaced it: superseded (handled) when that one
    was delivered, set aside with it when the service refused it (neither is stored), failed with it when
    it failed; so no record is acknowledged on the strength of a call that did not store its successor."""
    if not calls.superseded:
        return
    successors = {upsert_id(entity, p): ends[id(p)] for batch in calls.batches for p in batch.prepared}
    for older in calls.superseded:
        successor = successors[upsert_id(entity, older)]
        if successor.fate is Fate.DELIVERED:
            ends[id(older)] = RecordOutcome(older.record, Fate.SUPERSEDED)
        elif successor.fate is Fate.REJECTED:
            ends[id(older)] = RecordOutcome(
                older.record,
                Fate.REJECTED,
                f"superseded by a later record of the same id that was refused: {successor.reason}",
                successor.code,
            )
        else:
            ends[id(older)] = RecordOutcome.failed(
                older.record,
                f"superseded by a later record of the same id that failed: {successor.reason}",
                retryable=successor.retryable,
            )
