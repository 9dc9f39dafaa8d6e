"""Which call goes next (pure: no I/O, no clock, no threads).

The deliverer asks :meth:`Schedule.take` for the next call whenever a delivery thread is free and reports how
each call ended. The rules:

- **Earliest first.** Of the lanes ready to send, the one whose next call holds the earliest pending record of
  the source goes first. On Kinesis this advances the checkpoint: Lambda replays a batch from its lowest failed
  sequence number, so the records that come first in the shard are the ones worth sending first, and under a slow
  service every retry delivers a longer prefix than the one before.
- **Sessions in order.** A lane (PutEvents: one session) has at most one call in flight, and its next call waits
  until the previous one succeeded. Once a call of a lane has failed for good, the lane's later calls are not
  sent: they would otherwise be stored before the record that failed, which comes back with Lambda's retry.
- **Checkpointed sources** (``checkpointed=True``, Kinesis): once a record failed for good, no record after it
  in the source is sent in this invocation. Lambda replays them anyway; sending them now only duplicates them.
- **Later rounds.** A call that failed for a reason a later attempt may cure (throttling, 5xx, a dropped
  connection, a timeout) is *deferred*: its lane waits, and :meth:`next_round` offers it again once every other
  call is done. What is still deferred when the deliverer gives up is failed by :meth:`abandon`.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from personalize_ingest.batching import Batch
from personalize_ingest.model import Prepared

SESSION_STOPPED = "not sent: an earlier call of its session failed, and its order must hold"


@dataclass(slots=True)
class Unsent:
    """A record the schedule decided not to send, and why."""

    prepared: Prepared
    reason: str


@dataclass(slots=True)
class _Lane:
    index: int
    batches: deque[Batch]
    deferred: list[tuple[Prepared, str]] = field(default_factory=list)
    """Failures of the deferred head batch (record, reason), reported if no later round cures them."""


class Schedule:
    """The calls of one ``deliver()``, handed out earliest pending record first.

    Parameters
    ----------
    batches
        The calls in plan order; batches of the same lane keep their relative order.
    positions
        Position of each record in the source (``id(prepared)`` -> index); lower is earlier.
    checkpointed
        True when the source replays everything after the lowest failed record (Kinesis).
    """

    def __init__(self, batches: Sequence[Batch], positions: dict[int, int], checkpointed: bool) -> None:
        self._positions = positions
        self._checkpointed = checkpointed
        by_lane: dict[object, _Lane] = {}
        for number, batch in enumerate(batches):
            key = batch.lane if batch.lane is not None else ("independent", number)
            lane = by_lane.get(key)
            if lane is None:
                lane = by_lane[key] = _Lane(len(by_lane), deque())
            lane.batches.append(batch)
        self._lanes = list(by_lane.values())
        self._ready: list[tuple[int, int]] = [(self._head_position(lane), lane.index) for lane in self._lanes]
        heapq.heapify(self._ready)
        self._deferred: list[_Lane] = []
        self._unsent: list[Unsent] = []
        self.cutoff: int | None = None
        """Position of the earliest record failed for good (checkpointed sources only); nothing at or after it
        is sent any more."""
        self.cutoff_record: Prepared | None = None

    # ------------------------------------------------------------------------------------------------- handing out

    def take(self) -> tuple[int, Batch] | None:
        """The next call to send as (lane, batch), or None when no lane is ready.

        Records at or after the cutoff are not sent: they go to :meth:`pop_unsent` with the rest of their lane,
        and the batch holds only the records before the cutoff.
        """
        while self._ready:
            _, index = heapq.heappop(self._ready)
            lane = self._lanes[index]
            batch = lane.batches[0]
            if self.cutoff is None:
                return index, batch
            keep = [p for p in batch.prepared if self._positions[id(p)] < self.cutoff]
            if len(keep) == len(batch.prepared):
                return index, batch
            reason = self._cutoff_reason()
            lane.batches.popleft()
            self._unsent.extend(Unsent(p, reason) for p in batch.prepared[len(keep) :])
            self._drain(lane, reason)
            if keep:
                trimmed = Batch(keep, batch.lane, batch.session_id, batch.user_id)
                lane.batches.appendleft(trimmed)
                return index, trimmed
        return None

    def pop_unsent(self) -> list[Unsent]:
        """Records the schedule decided not to send since the last look, with the reason."""
        unsent, self._unsent = self._unsent, []
        return unsent

    def succeeded(self, lane_index: int) -> None:
        """The lane's call succeeded (delivered or refused record by record): its next call becomes ready."""
        lane = self._lanes[lane_index]
        lane.batches.popleft()
        lane.deferred = []
        if lane.batches:
            heapq.heappush(self._ready, (self._head_position(lane), lane.index))

    def defer(self, lane_index: int, records: list[Prepared], failures: list[tuple[Prepared, str]]) -> None:
        """The call failed for a reason a later round may cure; ``records`` are the ones still to send."""
        lane = self._lanes[lane_index]
        head = lane.batches.popleft()
        lane.batches.appendleft(Batch(records, head.lane, head.session_id, head.user_id))
        lane.deferred = failures
        self._deferred.append(lane)

    def failed_for_good(self, lane_index: int, failed: Sequence[Prepared]) -> None:
        """The call's ``failed`` records will not be retried in this invocation; the lane's later calls are not
        sent (see :meth:`pop_unsent`). On a checkpointed source the cutoff moves to the earliest of ``failed``."""
        lane = self._lanes[lane_index]
        lane.batches.popleft()
        if self._checkpointed and failed:
            earliest = min(failed, key=lambda p: self._positions[id(p)])
            position = self._positions[id(earliest)]
            if self.cutoff is None or position < self.cutoff:
                self.cutoff, self.cutoff_record = position, earliest
        self._drain(lane, SESSION_STOPPED)

    # ------------------------------------------------------------------------------------------------- rounds

    @property
    def has_deferred(self) -> bool:
        return bool(self._deferred)

    def next_round(self) -> int:
        """Offer every deferred call again; return how many."""
        lanes, self._deferred = self._deferred, []
        for lane in lanes:
            heapq.heappush(self._ready, (self._head_position(lane), lane.index))
        return len(lanes)

    def abandon(self) -> list[tuple[Prepared, str]]:
        """Give up on the deferred calls: return their last failures; their lanes' later calls go unsent."""
        failures: list[tuple[Prepared, str]] = []
        for lane in self._deferred:
            lane.batches.popleft()
            failures.extend(lane.deferred)
            self._drain(lane, SESSION_STOPPED)
        self._deferred = []
        return failures

    # ------------------------------------------------------------------------------------------------- helpers

    def _head_position(self, lane: _Lane) -> int:
        return min(self._positions[id(p)] for p in lane.batches[0].prepared)

    def _drain(self, lane: _Lane, reason: str) -> None:
        self._unsent.extend(Unsent(p, reason) for batch in lane.batches for p in batch.prepared)
        lane.batches.clear()

    def _cutoff_reason(self) -> str:
        source = self.cutoff_record.record.source if self.cutoff_record is not None else None
        where = f" (sequence number {source.sequence_number})" if source and source.sequence_number else ""
        return (
            f"not sent: an earlier record of the shard{where} failed, and the source replays everything after "
            "its lowest failed record"
        )
