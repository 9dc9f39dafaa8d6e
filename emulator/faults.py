"""Fault injection: added latency and spikes, 500/503 errors, throttling, dropped connections and lost
responses, from a seeded RNG.

Each request to an operation draws once: with probability ``dropRate`` its connection is dropped, else with
``lostResponseRate`` the request is stored and then its connection dropped (the caller cannot know it succeeded),
else with ``throttleRate`` it is throttled, else with ``errorRate`` it fails with a 5xx; the outcomes exclude each
other so every observed rate tracks its setting. Latency is drawn separately and added to every answer; with
probability ``spikeRate`` an answer is ``spikeMs`` later still (a latency spike).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_DISTRIBUTIONS = ("fixed", "uniform", "normal", "exponential")


class FaultSettingsError(ValueError):
    """Fault settings that cannot be applied."""


@dataclass(frozen=True)
class Latency:
    """Added latency in milliseconds: ``fixed`` (ms), ``uniform`` (minMs..maxMs), ``normal`` (meanMs,
    stddevMs; clipped at 0) or ``exponential`` (meanMs)."""

    distribution: str = "fixed"
    ms: float = 0.0
    min_ms: float = 0.0
    max_ms: float = 0.0
    mean_ms: float = 0.0
    stddev_ms: float = 0.0

    def draw_ms(self, rng: random.Random) -> float:
        if self.distribution == "uniform":
            return rng.uniform(self.min_ms, self.max_ms)
        if self.distribution == "normal":
            return max(0.0, rng.gauss(self.mean_ms, self.stddev_ms))
        if self.distribution == "exponential":
            return rng.expovariate(1.0 / self.mean_ms) if self.mean_ms > 0 else 0.0
        return self.ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution,
            "ms": self.ms,
            "minMs": self.min_ms,
            "maxMs": self.max_ms,
            "meanMs": self.mean_ms,
            "stddevMs": self.stddev_ms,
        }


@dataclass(frozen=True)
class FaultSettings:
    """What to inject; every rate is a probability per request in [0, 1]."""

    latency: Latency = field(default_factory=Latency)
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    drop_after_store: bool = False
    """Drop the connection after storing the request (the client retries: duplicates) instead of before."""
    lost_response_rate: float = 0.0
    """Store the request, then drop the connection without an answer (on top of ``drop_rate``'s drops)."""
    spike_rate: float = 0.0
    spike_ms: float = 0.0
    """With probability ``spike_rate``, ``spike_ms`` more latency (a latency spike)."""
    operations: tuple[str, ...] | None = None
    """Operations the faults apply to; None = all five."""
    seed: int | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FaultSettings:
        """Build from the admin API / config form (camelCase keys, see docs/emulator.md)."""
        known = {
            "latencyMs",
            "latency",
            "errorRate",
            "errorStatuses",
            "throttleRate",
            "dropRate",
            "dropAfterStore",
            "lostResponseRate",
            "spikeRate",
            "spikeMs",
            "operations",
            "seed",
        }
        unknown = set(raw) - known
        if unknown:
            raise FaultSettingsError(f"unknown fault settings {sorted(unknown)}; known: {sorted(known)}")
        latency = Latency(ms=float(raw.get("latencyMs", 0.0)))
        if "latency" in raw:
            spec = dict(raw["latency"])
            distribution = spec.pop("distribution", "fixed")
            if distribution not in _DISTRIBUTIONS:
                raise FaultSettingsError(f"latency distribution must be one of {_DISTRIBUTIONS}")
            names = {
                "ms": "ms",
                "minMs": "min_ms",
                "maxMs": "max_ms",
                "meanMs": "mean_ms",
                "stddevMs": "stddev_ms",
            }
            if set(spec) - set(names):
                raise FaultSettingsError(f"unknown latency settings {sorted(set(spec) - set(names))}")
            latency = Latency(distribution, **{names[key]: float(value) for key, value in spec.items()})
        settings = cls(
            latency=latency,
            error_rate=float(raw.get("errorRate", 0.0)),
            error_statuses=tuple(int(status) for status in raw.get("errorStatuses", (500, 503))),
            throttle_rate=float(raw.get("throttleRate", 0.0)),
            drop_rate=float(raw.get("dropRate", 0.0)),
            drop_after_store=bool(raw.get("dropAfterStore", False)),
            lost_response_rate=float(raw.get("lostResponseRate", 0.0)),
            spike_rate=float(raw.get("spikeRate", 0.0)),
            spike_ms=float(raw.get("spikeMs", 0.0)),
            operations=tuple(raw["operations"]) if raw.get("operations") is not None else None,
            seed=int(raw["seed"]) if raw.get("seed") is not None else None,
        )
        settings.check()
        return settings

    def check(self) -> None:
        rates = (self.error_rate, self.throttle_rate, self.drop_rate, self.lost_response_rate)
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0:
            raise FaultSettingsError(
                "errorRate, throttleRate, dropRate and lostResponseRate must be in [0, 1] and sum to <= 1"
            )
        if not 0.0 <= self.spike_rate <= 1.0 or self.spike_ms < 0:
            raise FaultSettingsError("spikeRate must be in [0, 1] and spikeMs must not be negative")
        if not self.error_statuses or any(not 500 <= status <= 599 for status in self.error_statuses):
            raise FaultSettingsError("errorStatuses must be a non-empty list of 5xx statuses")

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency": self.latency.as_dict(),
            "errorRate": self.error_rate,
            "errorStatuses": list(self.error_statuses),
            "throttleRate": self.throttle_rate,
            "dropRate": self.drop_rate,
            "dropAfterStore": self.drop_after_store,
            "lostResponseRate": self.lost_response_rate,
            "spikeRate": self.spike_rate,
            "spikeMs": self.spike_ms,
            "operations": list(self.operations) if self.operations is not None else None,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request."""

    latency_s: float = 0.0
    drop: bool = False
    drop_after_store: bool = False
    throttle: bool = False
    error_status: int | None = None


NO_FAULT = FaultDecision()


class Faults:
    """Current fault settings and their random source; thread-safe."""

    def __init__(self, initial: FaultSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._initial = initial or FaultSettings()
        self._settings = self._initial
        self._rng = random.Random(self._initial.seed)

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def set(self, settings: FaultSettings) -> None:
        """Replace the settings; a seed restarts the random sequence."""
        with self._lock:
            self._settings = settings
            self._rng = random.Random(settings.seed)

    def reset(self) -> None:
        """Back to the settings given at start."""
        self.set(self._initial)

    def decide(self, operation: str) -> FaultDecision:
        """Draw the faults for one request to ``operation``."""
        with self._lock:
            settings = self._settings
            if settings.operations is not None and operation not in settings.operations:
                return NO_FAULT
            latency_s = settings.latency.draw_ms(self._rng) / 1000.0
            if settings.spike_rate and self._rng.random() < settings.spike_rate:
                latency_s += settings.spike_ms / 1000.0
            if not (
                settings.drop_rate or settings.throttle_rate or settings.error_rate or settings.lost_response_rate
            ):
                return FaultDecision(latency_s=latency_s)
            draw = self._rng.random()
            if draw < settings.drop_rate:
                return FaultDecision(latency_s=latency_s, drop=True, drop_after_store=settings.drop_after_store)
            draw -= settings.drop_rate
            if draw < settings.lost_response_rate:
                return FaultDecision(latency_s=latency_s, drop=True, drop_after_store=True)
            draw -= settings.lost_response_rate
            if draw < settings.throttle_rate:
                return FaultDecision(latency_s=latency_s, throttle=True)
            draw -= settings.throttle_rate
            if draw < settings.error_rate:
                return FaultDecision(latency_s=latency_s, error_status=self._rng.choice(settings.error_statuses))
            return FaultDecision(latency_s=latency_s)
