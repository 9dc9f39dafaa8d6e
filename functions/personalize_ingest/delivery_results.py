"""What a delivery produced: :class:`Delivery` for the caller, :class:`CallResult` for one call and its halves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from personalize_ingest.model import Fate, Prepared, RecordOutcome, Rejection


@dataclass(slots=True)
class Delivery:
    """What :meth:`Deliverer.deliver` did: one outcome per record handed in (same order), and the calls it took.

    ``delivered``, ``superseded``, ``rejected`` and ``failed`` are views of ``outcomes``: every record is in
    exactly one of them.
    """

    prepared: list[Prepared] = field(default_factory=list)
    outcomes: list[RecordOutcome] = field(default_factory=list)
    api_calls: int = 0
    throttled_calls: int = 0
    retries: int = 0
    rounds: int = 1
    """Rounds of sending: 1, plus one per later round of retryable failures."""

    def _with(self, fate: Fate) -> list[tuple[Prepared, RecordOutcome]]:
        return [(p, o) for p, o in zip(self.prepared, self.outcomes, strict=True) if o.fate is fate]

    @property
    def delivered(self) -> list[Prepared]:
        return [p for p, _ in self._with(Fate.DELIVERED)]

    @property
    def superseded(self) -> list[Prepared]:
        return [p for p, _ in self._with(Fate.SUPERSEDED)]

    @property
    def rejected(self) -> list[tuple[Prepared, Rejection]]:
        return [(p, o.rejection) for p, o in self._with(Fate.REJECTED)]

    @property
    def failed(self) -> list[tuple[Prepared, str]]:
        return [(p, o.reason) for p, o in self._with(Fate.FAILED)]


@dataclass(slots=True)
class CallResult:
    """How one call (and the halves it was split into) ended; filled on a delivery thread."""

    delivered: list[Prepared] = field(default_factory=list)
    refused: list[tuple[Prepared, str]] = field(default_factory=list)
    """Refused alone by the service (message); rejected or failed once the whole deliver() call is known."""
    failed: list[tuple[Prepared, str]] = field(default_factory=list)
    retryable: bool = True
    """All of ``failed`` may succeed on a later attempt in this invocation."""
    attempts: int = 0
    throttled: int = 0

    def fail(self, prepared: Sequence[Prepared], reason: str, *, retryable: bool) -> None:
        self.failed.extend((p, reason) for p in prepared)
        self.retryable = self.retryable and retryable
