"""Client-side rate limit per Personalize target: a token bucket shared by threads and warm invocations.

# NOTE: PutItems and PutUsers accept 10 requests/s per dataset group (Personalize quotas; PutActions and
# PutActionInteractions are treated alike). botocore's adaptive retry mode only slows down *after* being
# throttled; the bucket keeps one container from exceeding the quota in the first place. Buckets live at module
# level so a warm container keeps its pace across invocations instead of bursting again on each one.

Why the bucket holds one token (no burst): the service's quota is itself a bucket whose burst is not documented
(the emulator's holds one second's worth, like ours used to). With a client burst equal to the quota, the client's
11th call is due 1/rate after its first, while the service's bucket was emptied by the burst and refills from the
moment the *first call arrived*: any jitter between sending and arrival makes that call early, and the service
throttles it (every benchmark run had exactly one throttled call, after which adaptive mode slowed the client for
seconds). Spacing every call 1/rate apart from the start leaves the service's own burst capacity unused, as
slack for jitter: a call can arrive up to (its burst - 1)/rate late or early without being throttled. The price is
at most (calls - 1)/rate of waiting for an invocation of fewer than `rate` calls (0.9 s for 10 calls at 10/s),
instead of one throttled call, a retry and a slowed-down client.

Why this bucket and not botocore's adaptive retry mode: adaptive mode's limiter waits in a ``before-send`` handler
with no deadline, after the project's deadline check (botocore calls the more specific handler first), so once it
had been throttled it sent attempts after the safety margin - measured with 50 % throttling, 8 s left and a 5 s
margin: up to 8 of 13 attempts after the margin, the invocation returning 6.2 s after it, i.e. past Lambda's
timeout. The bucket here is acquired inside the deadline check, waits at most until the margin, and adapts the same
way (x0.7 per throttled attempt, back up additively per accepted call), so functions use standard retry mode:
0 attempts after the margin in the same runs (docs/calls.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

PACED_CAPACITY = 1.0
"""Tokens a bucket holds at most unless told otherwise: one, so calls never go out faster than the rate."""
THROTTLED_RATE_FACTOR = 0.7
"""The rate is multiplied by this after a throttled attempt (botocore's adaptive mode uses the same beta)."""
RECOVERY_SHARE = 0.05
"""Share of the configured rate won back per accepted call (20 accepted calls in a row restore it from 0)."""
MIN_RATE_SHARE = 0.1
"""The rate never drops below this share of the configured rate."""


class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity`` (one by default: calls spaced 1/rate apart).

    Parameters
    ----------
    rate
        Tokens added per second; must be positive.
    capacity
        Largest burst; defaults to :data:`PACED_CAPACITY` (see the module docstring for why).
    clock, sleep
        Monotonic clock and sleep function, injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        self.configured_rate = self.rate
        self.min_rate = self.rate * MIN_RATE_SHARE
        self.capacity = float(capacity) if capacity is not None else PACED_CAPACITY
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self, max_wait_s: float) -> float | None:
        """Reserve one token.

        Returns
        -------
        float | None
            Seconds the caller must wait before using the token (0.0 = now), or None when that wait would
            exceed ``max_wait_s`` (then nothing is reserved).
        """
        with self._lock:
            self._refill()
            # NOTE: tokens may go negative: each waiting caller holds a place in line, so concurrent callers
            # are spaced 1/rate apart instead of all waking at once and racing for the same token.
            wait = max(0.0, (1.0 - self._tokens) / self.rate)
            if wait > max_wait_s:
                return None
            self._tokens -= 1.0
            return wait

    def on_throttled(self) -> None:
        """The service throttled a call: multiply the rate by :data:`THROTTLED_RATE_FACTOR` (down to
        :data:`MIN_RATE_SHARE` of the configured rate), so containers sharing one quota settle below it."""
        with self._lock:
            self._refill()
            self.rate = max(self.min_rate, self.rate * THROTTLED_RATE_FACTOR)

    def on_accepted(self) -> None:
        """The service accepted a call: win back :data:`RECOVERY_SHARE` of the configured rate."""
        if self.rate >= self.configured_rate:
            return
        with self._lock:
            self._refill()
            self.rate = min(self.configured_rate, self.rate + self.configured_rate * RECOVERY_SHARE)

    def _refill(self) -> None:
        # NOTE: tokens earned so far count at the old rate before the rate changes.
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def acquire(self, max_wait_s: float) -> bool:
        """Take one token, sleeping up to ``max_wait_s`` for it; False (nothing taken) if that is not enough."""
        wait = self.reserve(max_wait_s)
        if wait is None:
            return False
        if wait > 0:
            self._sleep(wait)
        return True


_buckets: dict[str, TokenBucket] = {}
_buckets_lock = threading.Lock()


def bucket_for(target: str, calls_per_second: float) -> TokenBucket | None:
    """The container-wide bucket of ``target`` at ``calls_per_second``; None when the rate is 0 (unlimited)."""
    if calls_per_second <= 0:
        return None
    with _buckets_lock:
        bucket = _buckets.get(target)
        if bucket is None or bucket.configured_rate != calls_per_second:
            bucket = _buckets[target] = TokenBucket(calls_per_second)
        return bucket
