"""How many Personalize calls to keep in flight: sized to the work instead of a fixed number.

The number of concurrent calls is the smallest of:

- the **independent lanes** of the delivery (PutEvents: sessions, whose calls run one after another; the other
  operations: calls) - a thread more than there are lanes has nothing to do;
- what the **rate limit** can use: ``ceil(calls_per_second x seconds_per_call) + 1`` (Little's law: calls in
  flight = arrival rate x time in the system; one more so a thread is ready when a token comes). At 10 calls/s and
  50 ms per call that is 2 threads, not 8 idle ones waiting for tokens. The time per call is the container's
  observed average attempt (:meth:`~personalize_ingest.latency.ServiceLatency.seconds_per_call`), an assumed
  time before the first call;
- the **memory** the function has (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``): :data:`MEMORY_MB_PER_CALL` per call in
  flight;
- the **ceiling**: ``MAX_CONCURRENT_CALLS`` when set, else :data:`DEFAULT_CEILING` - also the size of the client's
  connection pool, so no call waits for a connection.

``PutEvents`` has no client-side rate by default (its quota is 1,000 calls/s per dataset group), so a Kinesis batch
of 500 sessions runs on ``DEFAULT_CEILING`` threads when memory allows, and a batch of three sessions on three.
"""

from __future__ import annotations

import math
import os

from personalize_ingest.config import Settings
from personalize_ingest.latency import SERVICE_LATENCY, ServiceLatency

DEFAULT_CEILING = 32
"""Concurrent calls at most when ``MAX_CONCURRENT_CALLS`` is not set (and the connection pool's size)."""
MEMORY_MB_PER_CALL = 4
"""Memory budgeted per call in flight: a thread's touched stack, the request and response buffers and the
connection, with room to spare (the baselines benchmark grows by ~10 MiB with 32 calls in flight)."""


def concurrent_calls(
    lanes: int,
    *,
    ceiling: int,
    calls_per_second: float,
    seconds_per_call: float,
    memory_mb: int | None,
) -> int:
    """Calls to keep in flight for ``lanes`` independent lanes (at least 1 when there is work, else 0).

    Parameters
    ----------
    lanes
        Independent lanes of the delivery (sessions for PutEvents, calls otherwise).
    ceiling
        The configured or default maximum (also the connection pool's size).
    calls_per_second
        The client-side rate limit; 0 = none.
    seconds_per_call
        Expected duration of one call.
    memory_mb
        The function's memory, when known.
    """
    if lanes <= 0:
        return 0
    bounds = [lanes, ceiling]
    if calls_per_second > 0:
        bounds.append(math.ceil(calls_per_second * max(0.0, seconds_per_call)) + 1)
    if memory_mb:
        bounds.append(memory_mb // MEMORY_MB_PER_CALL)
    return max(1, min(bounds))


def ceiling(settings: Settings) -> int:
    """``MAX_CONCURRENT_CALLS`` when the function sets it, else :data:`DEFAULT_CEILING`."""
    return settings.max_concurrent_calls if settings.concurrency_configured else DEFAULT_CEILING


def concurrent_calls_for(settings: Settings, lanes: int, latency: ServiceLatency = SERVICE_LATENCY) -> int:
    """:func:`concurrent_calls` with the function's settings, memory and the observed time per call (``latency``:
    by default the container's)."""
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    return concurrent_calls(
        lanes,
        ceiling=ceiling(settings),
        calls_per_second=settings.calls_per_second,
        seconds_per_call=latency.seconds_per_call(),
        memory_mb=int(memory) if memory.isdigit() else None,
    )
