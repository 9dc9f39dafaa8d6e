"""How much of the invocation is left, and when to stop starting work.

The function never times out mid-batch: it stops starting Personalize calls once less than the safety margin is
left, so every record not sent can still be reported as failed in the batch response.
"""

from __future__ import annotations

import math
from typing import Protocol

from personalize_ingest.latency import SERVICE_LATENCY, ServiceLatency

MAX_ATTEMPT_TIMEOUT_S = 10.0
MIN_ATTEMPT_TIMEOUT_S = 1.0
MAX_CONNECT_TIMEOUT_S = 2.0
SUPPORT_ATTEMPT_STEPS_S = (10.0, 5.0, 2.5, 1.0)
"""Per-attempt timeouts of the supporting calls (a short ladder, so a container caches a handful of clients)."""


class RemainingTime(Protocol):
    """The one part of the Lambda context the deadline needs."""

    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    """The invocation's deadline minus a safety margin.

    Parameters
    ----------
    context
        The Lambda context (anything with ``get_remaining_time_in_millis()``).
    margin_ms
        Time kept in reserve to report the outcome after the last call.
    latency
        What the service has been observed to take (default: the container's
        :data:`~personalize_ingest.latency.SERVICE_LATENCY`); the per-attempt hook feeds it.
    """

    def __init__(self, context: RemainingTime, margin_ms: int, latency: ServiceLatency | None = None) -> None:
        if margin_ms < 0:
            raise ValueError(f"margin_ms must not be negative, got {margin_ms}")
        self._context = context
        self.margin_ms = margin_ms
        self.latency = latency if latency is not None else SERVICE_LATENCY

    def remaining_ms(self) -> int:
        """Milliseconds left before Lambda stops the invocation."""
        return int(self._context.get_remaining_time_in_millis())

    def exhausted(self) -> bool:
        """True when less than the margin is left: no new call may start."""
        return self.remaining_ms() < self.margin_ms

    def budget_s(self) -> float:
        """Seconds left before the margin (0.0 once it is reached)."""
        return max(0, self.remaining_ms() - self.margin_ms) / 1000.0

    def attempt_timeouts(self, max_attempts: int) -> tuple[float, float]:
        """Connect and read timeouts (seconds) of one call attempt.

        With a margin, an attempt may use the whole margin (at most 10 s, at least 1 s, rounded down to half
        seconds): one started just before the margin still ends before Lambda's deadline (connect + read <=
        margin), and no attempt is cut shorter because little budget is left. The per-attempt hook stops starting
        attempts at the margin, so dividing the budget among attempts would only make a slow service time out on
        every attempt of every invocation and the same records be sent again and again. Without a margin, the
        budget is shared among ``max_attempts``. Never botocore's 60 s defaults. The connect timeout is a quarter
        of the attempt (at most 2 s): connecting is quick, answering is what a slow service takes time for.
        """
        if self.margin_ms > 0:
            per_attempt = min(MAX_ATTEMPT_TIMEOUT_S, self.margin_ms / 1000.0)
        else:
            per_attempt = min(MAX_ATTEMPT_TIMEOUT_S, self.budget_s() / max(1, max_attempts))
        per_attempt = max(MIN_ATTEMPT_TIMEOUT_S, math.floor(per_attempt * 2) / 2)
        connect = min(MAX_CONNECT_TIMEOUT_S, per_attempt / 4)
        return connect, per_attempt - connect

    def leaves_time_for_a_call(self) -> bool:
        """True when a call may start: the time before the margin covers what the service has needed."""
        budget = self.budget_s()
        return budget > 0 and budget >= self.latency.need_s()

    def support_call_timeouts(self, max_attempts: int) -> tuple[float, float]:
        """Connect and read timeouts (seconds) of one attempt of the invocation's supporting AWS calls.

        Rejects, continuation messages, S3 reads and result files are sent also after the margin is reached (the
        rejects of the last chunk, the continuation itself), so they are bounded by the time left, not by the
        budget: every attempt of one call fits in ``remaining / (max_attempts + 1)``, which leaves a share for
        returning the batch response. The per-attempt value is the largest of 10, 5, 2.5 and 1 s that fits (1 s
        when none does), never botocore's 60 s defaults.
        """
        share_s = self.remaining_ms() / 1000.0 / (max(1, max_attempts) + 1)
        per_attempt = next((step for step in SUPPORT_ATTEMPT_STEPS_S if step <= share_s), MIN_ATTEMPT_TIMEOUT_S)
        connect = min(MAX_CONNECT_TIMEOUT_S, per_attempt / 2)
        return connect, per_attempt - connect
