"""Concurrency and request-rate arithmetic of one function, and what the stack asks of the account.

Lambda runs, at most at once, for one function:

- Kinesis: one poller per shard and parallelization factor, each invoking the function one batch at a time, so
  ``shards x parallelizationFactor`` invocations (for an on-demand stream, ``maxShards``: the bound the operator
  states, 4 by default, what such a stream starts with);
- SQS: each event source mapping's ``maxConcurrency`` (the producers' queue, and S3's own queue when it has one).

The sum is the most invocations that can run at once. With ``reservedConcurrency`` set, it must not exceed it:
above it, Lambda throttles the pollers, and a throttled SQS receive counts towards ``maxReceiveCount`` so messages
reach the DLQ without ever being processed. The runtime's token bucket (``callsPerSecond``) bounds each
invocation's Personalize calls (one invocation per container at a time), so ``callsPerSecond x invocations`` is
the function's rate, and it must stay within the dataset group's quota (``quotaPerSecond``). With reserved
concurrency the invocations are counted as the reserved number (a hard cap); without, as the sources' sum.

Lambda keeps 100 of an account's regional concurrency unreserved: a stack reserving R deploys only where the
regional quota is at least R + 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UNRESERVED_FLOOR = 100
"""Concurrency Lambda keeps unreserved in every account and region (Lambda developer guide, "Reserved
concurrency")."""


@dataclass(frozen=True, slots=True)
class ConcurrencyBudget:
    """What can run at once for one function, and the rate it may call Personalize at."""

    entity: str
    kinesis_shards: int | None
    kinesis_on_demand: bool
    parallelization_factor: int
    sqs_max_concurrency: int | None
    s3_max_concurrency: int | None
    """Only when S3 notifies a queue of its own (otherwise it shares the sqs mapping)."""
    reserved_concurrency: int | None
    quota_per_second: float

    @property
    def kinesis_pollers(self) -> int:
        return (self.kinesis_shards or 0) * self.parallelization_factor

    @property
    def from_sources(self) -> int:
        """Kinesis pollers + every SQS mapping's maximum concurrency."""
        return self.kinesis_pollers + (self.sqs_max_concurrency or 0) + (self.s3_max_concurrency or 0)

    @property
    def max_invocations(self) -> int:
        """The most invocations that can run at once: reserved concurrency when set (a hard cap), else the
        sources' sum."""
        return self.reserved_concurrency if self.reserved_concurrency is not None else self.from_sources

    @property
    def fits_reserved(self) -> bool:
        return self.reserved_concurrency is None or self.from_sources <= self.reserved_concurrency

    @property
    def default_calls_per_second(self) -> float:
        """The quota shared among the most invocations that can run at once, rounded down to 0.01."""
        return math.floor(self.quota_per_second / self.max_invocations * 100) / 100

    def within_quota(self, calls_per_second: float) -> bool:
        return calls_per_second * self.max_invocations <= self.quota_per_second + 1e-9

    def sources_sum(self) -> str:
        """``kinesis 4 shards x parallelizationFactor 1 = 4 + sqs maxConcurrency 2 = 6``."""
        terms = []
        if self.kinesis_shards is not None:
            plural = "" if self.kinesis_shards == 1 else "s"
            kind = f"on-demand shard{plural} (maxShards)" if self.kinesis_on_demand else f"shard{plural}"
            shards = f"{self.kinesis_shards} {kind}"
            terms.append(
                f"kinesis {shards} x parallelizationFactor {self.parallelization_factor} = {self.kinesis_pollers}"
            )
        if self.sqs_max_concurrency is not None:
            terms.append(f"sqs maxConcurrency {self.sqs_max_concurrency}")
        if self.s3_max_concurrency is not None:
            terms.append(f"s3 maxConcurrency {self.s3_max_concurrency} (S3's own queue)")
        return " + ".join(terms) + f" = {self.from_sources}"

    def reserved_shortfall(self) -> str:
        return (
            f"expected at least the invocations the sources can run at once ({self.sources_sum()}), got "
            f"{self.reserved_concurrency}; below it Lambda throttles the pollers and throttled SQS messages count "
            "receives towards the DLQ: raise reservedConcurrency, or lower the shards, parallelizationFactor or "
            "maxConcurrency"
        )

    def over_quota(self, calls_per_second: float) -> str:
        return (
            f"callsPerSecond ({calls_per_second:g}) x maximum concurrent invocations ({self.bound_text()}) = "
            f"{calls_per_second * self.max_invocations:g} requests/s exceeds quotaPerSecond "
            f"({self.quota_per_second:g}); lower callsPerSecond (at most "
            f"{self.quota_per_second / self.max_invocations:.4g}) or the sources' concurrency"
        )

    def bound_text(self) -> str:
        if self.reserved_concurrency is not None:
            return f"reservedConcurrency {self.reserved_concurrency}"
        return self.sources_sum()

    def summary(self, calls_per_second: float) -> str:
        """One line for the synth report: invocations, rate and quota."""
        return (
            f"{self.entity}: at most {self.max_invocations} invocations at once ({self.bound_text()}) x "
            f"{calls_per_second:g} calls/s = {calls_per_second * self.max_invocations:g} requests/s "
            f"<= quota {self.quota_per_second:g}"
        )


def account_requirement(reserved_total: int) -> str:
    """What the account must allow for the stack to deploy (printed at synth; docs/deploy.md)."""
    if reserved_total == 0:
        return (
            "Reserved concurrency: none. The functions share the account's unreserved concurrency, so the stack "
            f"deploys in any account (Lambda keeps {UNRESERVED_FLOOR} unreserved whatever the stack reserves); "
            "set reservedConcurrency where other functions could exhaust that pool."
        )
    return (
        f"Reserved concurrency: {reserved_total} in total. Lambda keeps {UNRESERVED_FLOOR} of the regional "
        f"concurrency unreserved, so the account's regional quota must be at least {reserved_total} + "
        f"{UNRESERVED_FLOOR} = {reserved_total + UNRESERVED_FLOOR} (Service Quotas: Lambda, 'Concurrent "
        "executions'), or the deploy fails."
    )


def fits_account(reserved_total: int, regional_quota: int) -> bool:
    """Whether reserving ``reserved_total`` leaves the unreserved floor in an account of ``regional_quota``."""
    return reserved_total == 0 or reserved_total + UNRESERVED_FLOOR <= regional_quota
