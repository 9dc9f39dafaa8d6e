"""Request-rate quotas per dataset group and operation, as token buckets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping


class _Bucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        # NOTE: a bucket holds one second's worth of requests (at least one), so a burst up to the quota passes
        # and a sustained rate above it is throttled.
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = now


class Quotas:
    """Token buckets keyed by (dataset group, operation); a rate of 0 means unlimited."""

    def __init__(
        self,
        defaults: Mapping[str, float],
        group_overrides: Mapping[str, Mapping[str, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._configured_defaults = dict(defaults)
        self._configured_overrides = {group: dict(rates) for group, rates in (group_overrides or {}).items()}
        self._defaults: dict[str, float] = {}
        self._overrides: dict[str, dict[str, float]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the configured rates, with full buckets."""
        with self._lock:
            self._defaults = dict(self._configured_defaults)
            self._overrides = {group: dict(rates) for group, rates in self._configured_overrides.items()}
            self._buckets.clear()

    def set_rate(self, operation: str, per_second: float, group: str | None = None) -> None:
        """Change an operation's quota for every group (or only ``group``) and refill its buckets."""
        if per_second < 0:
            raise ValueError("a quota cannot be negative")
        with self._lock:
            if group is None:
                self._defaults[operation] = per_second
                for rates in self._overrides.values():
                    rates.pop(operation, None)
            else:
                self._overrides.setdefault(group, {})[operation] = per_second
            for key in [key for key in self._buckets if key[1] == operation and group in (None, key[0])]:
                del self._buckets[key]

    def rates(self) -> dict[str, object]:
        """Current rates: ``{"default": {op: rate}, "groups": {group: {op: rate}}}``."""
        with self._lock:
            return {"default": dict(self._defaults), "groups": {g: dict(r) for g, r in self._overrides.items()}}

    def acquire(self, group: str, operation: str) -> bool:
        """Take one request from the bucket; False when the quota is exceeded (the request is throttled)."""
        with self._lock:
            rate = self._overrides.get(group, {}).get(operation, self._defaults.get(operation, 0.0))
            if rate <= 0:
                return True
            now = self._clock()
            bucket = self._buckets.get((group, operation))
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[(group, operation)] = _Bucket(rate, now)
            bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens < 1.0:
                return False
            bucket.tokens -= 1.0
            return True
