"""Every AWS client the functions use, built in one place from one botocore session per container.

- :func:`personalize_events_client`: the data-plane client of the Personalize calls, its timeouts derived from
  the time left (:meth:`Deadline.attempt_timeouts`), with the per-attempt hooks installed (:func:`call_scope`).
- :func:`support_client`: ``sqs`` and ``s3`` for rejects, continuations, object reads and result files, its
  timeouts from :meth:`Deadline.support_call_timeouts`.
- :func:`control_plane_client`: the ``personalize`` control plane (schema look-up, import jobs).

The hook section runs each Personalize call inside a :func:`call_scope`: before every attempt the deadline is
checked and a token taken from the target's rate bucket; after every attempt throttling is counted.

One botocore session serves them all, so each service model is loaded once per container (~30 ms for
``personalize-events``) and the credential chain is resolved once. Clients are cached per configuration
(timeouts, attempts, pool size, endpoint), so a warm container reuses a handful of clients and their connection
pools across invocations. Endpoints come only from boto3's standard variables (``AWS_ENDPOINT_URL_<SERVICE>``,
``AWS_ENDPOINT_URL``), read when a client is created.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import boto3
import botocore.session
from botocore.config import Config
from botocore.retries import standard

from personalize_ingest.concurrency import ceiling
from personalize_ingest.config import Settings
from personalize_ingest.deadline import Deadline
from personalize_ingest.throttle import TokenBucket

if TYPE_CHECKING:
    from mypy_boto3_personalize_events import PersonalizeEventsClient

PERSONALIZE_EVENTS: Final = "personalize-events"
SUPPORT_CALL_ATTEMPTS = 3
"""Attempts (first try included) of the supporting SQS and S3 calls: rejects, continuations, reads, results."""
CONTROL_PLANE_ATTEMPTS = 3
CONTROL_PLANE_TIMEOUTS_S = (2.0, 5.0)


class DeadlineReached(Exception):
    """Raised before an attempt (first try or retry) that could not finish before the margin."""


# --------------------------------------------------------------------------------------------------------------
# One session per container; clients cached per configuration.
# --------------------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_session: boto3.session.Session | None = None
_clients: dict[tuple[Any, ...], Any] = {}


_botocore_session: botocore.session.Session | None = None


def botocore_session() -> botocore.session.Session:
    """The container's botocore session: its loader caches each service model, so every user of a model
    (clients, validation, batching) shares one parsed copy."""
    global _botocore_session
    with _lock:
        if _botocore_session is None:
            _botocore_session = botocore.session.get_session()
        return _botocore_session


def session() -> boto3.session.Session:
    """The container's boto3 session, on :func:`botocore_session`."""
    global _session
    core = botocore_session()
    with _lock:
        if _session is None:
            _session = boto3.session.Session(botocore_session=core)
        return _session


def endpoint_variables(service: str) -> tuple[str | None, str | None]:
    """The service's own endpoint variable and the generic one, as boto3 reads them when a client is created."""
    specific = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}")
    return specific, os.environ.get("AWS_ENDPOINT_URL")


def _cached(key: tuple[Any, ...], service: str, config: Config) -> Any:
    boto = session()
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = boto.client(service, config=config)  # type: ignore[call-overload]
        return client


def personalize_events_client(settings: Settings, deadline: Deadline) -> PersonalizeEventsClient:
    """The container's personalize-events client for these settings and the time left, hooks installed."""
    connect_s, read_s = deadline.attempt_timeouts(settings.max_attempts)
    # NOTE: standard mode, never adaptive: the client-side rate is the project's token bucket, which waits inside
    # the deadline check and slows down after throttling (throttle.py says why adaptive mode cannot).
    mode: Final = "standard"
    pool = max(10, ceiling(settings))
    key: tuple[Any, ...] = (PERSONALIZE_EVENTS, connect_s, read_s, mode, settings.max_attempts, pool)
    key += endpoint_variables(PERSONALIZE_EVENTS)
    config = Config(
        connect_timeout=connect_s,
        read_timeout=read_s,
        retries={"mode": mode, "total_max_attempts": settings.max_attempts},
        max_pool_connections=pool,
        # NOTE: records were validated against the same service model before delivery. Measured on a
        # 10-event PutEvents call (signing and serialising included, no network): 1.76 ms of CPU with
        # botocore's validation, 1.23 ms without (-30 %).
        parameter_validation=False,
        tcp_keepalive=True,
    )
    client = _cached(key, PERSONALIZE_EVENTS, config)
    install_hooks(client)
    return client


def support_client(service: str, deadline: Deadline) -> Any:
    """The container's ``sqs`` or ``s3`` client for the time left in the invocation.

    Timeouts come from :meth:`Deadline.support_call_timeouts` (never botocore's 60 s defaults), so the supporting
    calls - also those made after the margin - end before Lambda stops the invocation.
    """
    connect_s, read_s = deadline.support_call_timeouts(SUPPORT_CALL_ATTEMPTS)
    key = (service, connect_s, read_s, *endpoint_variables(service))
    config = Config(
        connect_timeout=connect_s,
        read_timeout=read_s,
        retries={"mode": "standard", "total_max_attempts": SUPPORT_CALL_ATTEMPTS},
    )
    return _cached(key, service, config)


def control_plane_client(service: str = "personalize", attempts: int = CONTROL_PLANE_ATTEMPTS) -> Any:
    """The container's control-plane client (``personalize``): short timeouts, standard retries, ``attempts``
    tries in all (first one included)."""
    connect_s, read_s = CONTROL_PLANE_TIMEOUTS_S
    key = (service, "control", attempts, *endpoint_variables(service))
    config = Config(
        connect_timeout=connect_s,
        read_timeout=read_s,
        retries={"mode": "standard", "total_max_attempts": attempts},
    )
    return _cached(key, service, config)


# --------------------------------------------------------------------------------------------------------------
# Per-attempt deadline, pacing and accounting through botocore's event hooks.
# --------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class CallScope:
    """What the hooks need while one call runs on the current thread, and what they count."""

    deadline: Deadline
    bucket: TokenBucket | None
    attempts: int = 0
    throttled: int = 0
    started: float = 0.0
    """Monotonic time the current attempt started (for the deadline's latency tracker)."""


_current = threading.local()
_throttling = standard.ThrottlingErrorDetector(retry_event_adapter=standard.RetryEventAdapter())


@contextmanager
def call_scope(scope: CallScope) -> Iterator[CallScope]:
    """Run one client call on this thread under ``scope``'s deadline and bucket; the hooks count into it.

    Every attempt (first try and retries) first checks the time left and takes a token from the bucket, waiting
    at most until the margin: :class:`DeadlineReached` is raised out of the call otherwise.
    """
    _current.scope = scope
    try:
        yield scope
    finally:
        _current.scope = None


def before_attempt() -> None:
    """Before one attempt of the call running on this thread: check the deadline, take a rate-limit token.

    Raises
    ------
    DeadlineReached
        When less than the margin is left, or the token would come too late; no attempt is then made.
    """
    scope: CallScope | None = getattr(_current, "scope", None)
    if scope is None:
        return
    budget = scope.deadline.budget_s()
    if budget <= 0:
        raise DeadlineReached(f"less than {scope.deadline.margin_ms} ms left of the invocation")
    if scope.bucket is not None and not scope.bucket.acquire(budget):
        raise DeadlineReached(
            f"the rate limit of {scope.bucket.rate:g} calls/s left no slot before the last "
            f"{scope.deadline.margin_ms} ms of the invocation"
        )
    scope.attempts += 1
    scope.started = time.monotonic()


def _before_attempt(**_: Any) -> None:
    # NOTE: botocore emits before-send once per attempt (retries included), on the calling thread.
    before_attempt()


def _after_attempt(**kwargs: Any) -> None:
    # NOTE: botocore emits needs-retry after every attempt, the last one included, with the response or
    # exception; its own throttling detector classifies it (modelled throttling errors, known codes, 429).
    scope: CallScope | None = getattr(_current, "scope", None)
    if scope is None:
        return
    response = kwargs.get("response")
    if response is not None and scope.started:
        # NOTE: the one feed of the container's latency tracker: every answer sizes concurrency, successful ones
        # also how much time a call must start with.
        scope.deadline.latency.observe(time.monotonic() - scope.started, succeeded=_accepted(response))
    if _throttling.is_throttling_error(**kwargs):
        scope.throttled += 1
        if scope.bucket is not None:
            scope.bucket.on_throttled()
    elif scope.bucket is not None and _accepted(response):
        scope.bucket.on_accepted()


def _accepted(response: Any) -> bool:
    return response is not None and 200 <= getattr(response[0], "status_code", 0) < 300


def before_backoff(delay_s: float) -> None:
    """Before sleeping ``delay_s`` ahead of a retry of the call running on this thread (no-op outside a scope).

    Raises
    ------
    DeadlineReached
        When the margin is reached, or would be before the sleep ends: the retry could not start anyway.
    """
    scope: CallScope | None = getattr(_current, "scope", None)
    if scope is None:
        return
    budget = scope.deadline.budget_s()
    if budget <= 0:
        raise DeadlineReached(f"less than {scope.deadline.margin_ms} ms left of the invocation")
    if delay_s >= budget:
        raise DeadlineReached(
            f"the retry's backoff of {delay_s:.1f} s would end less than {scope.deadline.margin_ms} ms before the "
            "end of the invocation"
        )


def install_hooks(client: Any) -> None:
    """Install the per-attempt hooks on a personalize-events client (idempotent); :func:`call_scope` feeds them."""
    # NOTE: unique ids make a second registration on the same (cached) client a no-op.
    events = client.meta.events
    events.register(f"before-send.{PERSONALIZE_EVENTS}", _before_attempt, unique_id=f"{__name__}.before_attempt")
    events.register(f"needs-retry.{PERSONALIZE_EVENTS}", _after_attempt, unique_id=f"{__name__}.after_attempt")
