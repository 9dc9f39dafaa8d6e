"""How much of the invocation is left, and when to stop starting work.

The function never times out mid-batch: it stops starting Personalize calls once less than the safety margin is
left, so every record not sent can still be reported as failed in the batch response.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Protocol

MAX_ATTEMPT_TIMEOUT_S = 10.0
MIN_ATTEMPT_TIMEOUT_S = 1.0
MAX_CONNECT_TIMEOUT_S = 2.0
SUPPORT_ATTEMPT_STEPS_S = (10.0, 5.0, 2.5, 1.0)
"""Per-attempt timeouts of the supporting calls (a short ladder, so a container caches a handful of clients)."""


LATENCY_WINDOW = 32
"""Successful attempts remembered per container to estimate what the service needs."""
LATENCY_HEADROOM = 1.5
"""An attempt gets this multiple of the slowest remembered successful attempt."""


class ServiceLatency:
    """What the service has been observed to need per attempt, in one container (thread-safe).

    The deliverer reports the duration of every call that succeeded on its first attempt; the slowest of the last
    :data:`LATENCY_WINDOW` (times :data:`LATENCY_HEADROOM`) is the floor of the per-attempt timeout and the least
    time a call may start with. A slow service therefore keeps being given the time it needs, instead of every
    attempt timing out a little before it would have answered (which sends the same records again on every retry
    and never moves a Kinesis shard).
    """

    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self._lock = threading.Lock()
        self._durations: deque[float] = deque(maxlen=window)

    def observe(self, seconds: float) -> None:
        """Remember one successful attempt's duration (seconds)."""
        with self._lock:
            self._durations.append(max(0.0, seconds))

    def need_s(self) -> float:
        """Seconds an attempt should be given (0.0 before any observation)."""
        with self._lock:
            slowest = max(self._durations, default=0.0)
        return slowest * LATENCY_HEADROOM

    def clear(self) -> None:
        with self._lock:
            self._durations.clear()


SERVICE_LATENCY = ServiceLatency()
"""The container's observation of the Personalize Events service, kept across warm invocations."""


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
        What the service has been observed to need (default: the container's :data:`SERVICE_LATENCY`).
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
        """Connect and read timeouts (seconds) of one call attempt, derived from the time left.

        An attempt that starts just before the margin must end before Lambda's deadline
        (connect + read <= margin), and every attempt of one call should fit in the budget
        (attempts x (connect + read) <= budget); at most 10 s, at least 1 s per attempt, never botocore's 60 s
        defaults. Values are rounded down to half seconds so a warm container reuses a handful of clients.

        Dividing a small budget by the attempts must not cut an attempt below what the service has been observed
        to need (:class:`ServiceLatency`): while time is left, the attempt gets that much (rounded up to half
        seconds), still within the margin, so a slow service answers instead of timing out on every attempt.
        """
        per_attempt = min(MAX_ATTEMPT_TIMEOUT_S, self.budget_s() / max(1, max_attempts))
        if self.margin_ms > 0:
            per_attempt = min(per_attempt, self.margin_ms / 1000.0)
        per_attempt = max(MIN_ATTEMPT_TIMEOUT_S, math.floor(per_attempt * 2) / 2)
        need = math.ceil(self.latency.need_s() * 2) / 2
        if need > per_attempt and self.budget_s() > 0:
            ceiling = self.margin_ms / 1000.0 if self.margin_ms > 0 else MAX_ATTEMPT_TIMEOUT_S
            per_attempt = max(per_attempt, min(need, ceiling, MAX_ATTEMPT_TIMEOUT_S))
        connect = min(MAX_CONNECT_TIMEOUT_S, per_attempt / 2)
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
