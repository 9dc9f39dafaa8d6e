"""How long the Personalize Events service takes per call attempt, as one container has observed it.

One tracker per container (:data:`SERVICE_LATENCY`, kept across warm invocations), fed from one place: the
per-attempt hook of :mod:`personalize_ingest.clients`, after every attempt that got an answer. It gives two
answers:

- :meth:`ServiceLatency.need_s`: the slowest of the last :data:`LATENCY_WINDOW` *successful* attempts times
  :data:`LATENCY_HEADROOM` - the least time a call may start with (:meth:`Deadline.leaves_time_for_a_call`) and a
  later round needs. A call that would not finish before the margin is not started: it would time out, and its
  records (stored or not) be sent again on the retry.
- :meth:`ServiceLatency.seconds_per_call`: the moving average of every answered attempt (throttled and refused
  ones take the service's time too), which sizes concurrency (:mod:`personalize_ingest.concurrency`);
  :data:`ASSUMED_SECONDS_PER_CALL` before the first answer.
"""

from __future__ import annotations

import threading
from collections import deque

LATENCY_WINDOW = 32
"""Successful attempts remembered per container to estimate what the service needs."""
LATENCY_HEADROOM = 1.5
"""An attempt gets this multiple of the slowest remembered successful attempt."""
ASSUMED_SECONDS_PER_CALL = 0.05
"""Time per call assumed before the container has observed one."""
LATENCY_WEIGHT = 0.2
"""Weight of the newest observation in the moving average of attempt durations."""


class ServiceLatency:
    """What the service has been observed to take per attempt, in one container (thread-safe).

    Parameters
    ----------
    window
        Successful attempts remembered for :meth:`need_s`.
    initial_s
        Seconds per call assumed by :meth:`seconds_per_call` until the first observation.
    """

    def __init__(self, window: int = LATENCY_WINDOW, initial_s: float = ASSUMED_SECONDS_PER_CALL) -> None:
        self._lock = threading.Lock()
        self._durations: deque[float] = deque(maxlen=window)
        self._initial_s = initial_s
        self._average = initial_s
        self._observed = False

    def observe(self, seconds: float, *, succeeded: bool) -> None:
        """Remember one answered attempt's duration (seconds); ``succeeded``: the service accepted it (2xx).

        Every answer moves the average (the first replaces the assumption); only successful ones count for
        :meth:`need_s`.
        """
        seconds = max(0.0, seconds)
        with self._lock:
            if succeeded:
                self._durations.append(seconds)
            if not self._observed:
                self._average, self._observed = seconds, True
            else:
                self._average += LATENCY_WEIGHT * (seconds - self._average)

    def need_s(self) -> float:
        """Seconds an attempt should be given (0.0 before any successful attempt)."""
        with self._lock:
            slowest = max(self._durations, default=0.0)
        return slowest * LATENCY_HEADROOM

    def seconds_per_call(self) -> float:
        """Average seconds of one attempt (the assumption before any observation)."""
        return self._average

    def clear(self) -> None:
        """Forget every observation: the tracker is as in a cold container."""
        with self._lock:
            self._durations.clear()
            self._average, self._observed = self._initial_s, False


SERVICE_LATENCY = ServiceLatency()
"""The container's observation of the Personalize Events service, kept across warm invocations."""
