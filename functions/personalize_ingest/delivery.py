"""Send prepared records to Personalize: batched, concurrent, retried, and accounted for one by one.

Every record handed to :meth:`Deliverer.deliver` ends in exactly one list of the returned
:class:`~personalize_ingest.model.DeliveryReport`:

- ``delivered``: its call returned 200.
- ``superseded``: an upsert replaced by a later record of the same id in the same ``deliver()`` call (when that
  later record fails, the older ones are ``failed`` with it).
- ``rejected`` (code ``service_rejected``): the service refused it on its own *and* the same target accepted
  other records in this invocation, which shows the configuration is sound.
- ``failed``: anything a retry may cure - throttling or 5xx after every attempt, timeouts, connection errors,
  configuration errors (unknown tracker or dataset, access denied), a refusal while the target accepted nothing,
  or the deadline reached before the call could start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

from personalize_ingest.batching import Batch, max_per_call, plan, upsert_id
from personalize_ingest.calls import call_for, direct_calls
from personalize_ingest.clients import CallScope as _CallScope
from personalize_ingest.clients import DeadlineReached, call_scope
from personalize_ingest.clients import install_hooks as _install_hooks
from personalize_ingest.clients import personalize_events_client as client_for
from personalize_ingest.concurrency import concurrent_calls_for
from personalize_ingest.config import Settings
from personalize_ingest.deadline import Deadline
from personalize_ingest.model import DeliveryReport, Prepared, Rejection
from personalize_ingest.throttle import bucket_for

if TYPE_CHECKING:
    from mypy_boto3_personalize_events import PersonalizeEventsClient

logger = Logger(child=True)

SERVICE_REJECTED = "service_rejected"

INVALID_INPUT_CODES = frozenset({"InvalidInputException", "ValidationException", "SerializationException"})
"""The service refused the content of the call: split it to find the records it refuses."""

CONFIGURATION_ERROR_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "ResourceInUseException",
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "NotAuthorized",
    }
)
"""No record can succeed until someone fixes the function's target, role or credentials."""


# --------------------------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _LaneOutcome:
    delivered: list[Prepared] = field(default_factory=list)
    failed: list[tuple[Prepared, str]] = field(default_factory=list)
    refused: list[tuple[Prepared, str]] = field(default_factory=list)
    """Refused alone by the service (message); rejected or failed once the whole deliver() call is known."""
    api_calls: int = 0
    throttled_calls: int = 0
    retries: int = 0


class Deliverer:
    """Delivers prepared records of one entity to its target; one instance per invocation.

    Parameters
    ----------
    settings
        The function's settings (entity, target, concurrency, attempts, rate).
    deadline
        The invocation's deadline; no attempt starts once it is exhausted.
    client
        A personalize-events client; default: the container's cached client for these settings.
    """

    def __init__(
        self, settings: Settings, deadline: Deadline, client: PersonalizeEventsClient | None = None
    ) -> None:
        self._settings = settings
        self._entity = settings.entity
        self._deadline = deadline
        self._client = client if client is not None else client_for(settings, deadline)
        _install_hooks(self._client)
        self._send_call: Callable[..., Any] = call_for(
            self._client, self._entity, direct=direct_calls(settings, client)
        )
        self._bucket = bucket_for(settings.target, settings.calls_per_second)
        self._accepted = threading.Event()
        """The target accepted at least one call in this invocation: its configuration is sound."""
        self._lock = threading.Lock()
        self._stop_reason: str | None = None
        """Set on a configuration error: nothing more is sent to the target in this invocation."""
        self._refused_alone = 0
        self._refusal_logged = False
        # NOTE: a wrong tracking id may be answered with InvalidInputException like a bad record (REFERENCE.md:
        # unverified). Splitting every call down to single records would then cost two calls per record; after
        # this many single-record refusals with nothing accepted, the target is treated as misconfigured.
        self._refusals_before_stop = 2 * max_per_call(self._entity)

    @property
    def stop_reason(self) -> str | None:
        """Why the target gets no more calls in this invocation (a configuration error), or None.

        Once set, every later record fails unsent: a caller reading a large file may stop reading early.
        """
        return self._stop_reason

    def deliver(self, prepared: Sequence[Prepared]) -> DeliveryReport:
        """Send ``prepared`` and say what happened to each record.

        Batches of one lane (PutEvents: one session) run one after another in source order; lanes run
        concurrently on at most ``max_concurrent_calls`` threads, longest first. Returns when every record is
        accounted for.
        """
        report = DeliveryReport()
        if not prepared:
            return report
        calls = plan(self._entity, prepared)
        report.superseded.extend(calls.superseded)
        lanes = _lanes(calls.batches)
        workers = concurrent_calls_for(self._settings, len(lanes))
        if workers <= 1:
            outcomes = [self._run_lane(lane) for lane in lanes]
        else:
            # NOTE: lanes are independent of each other (order holds only inside a lane), so the longest start
            # first: a long session picked up last would otherwise run alone after the others have finished.
            lanes.sort(key=len, reverse=True)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="personalize-call") as pool:
                outcomes = list(pool.map(self._run_lane, lanes))
        refused: list[tuple[Prepared, str]] = []
        for outcome in outcomes:
            report.delivered.extend(outcome.delivered)
            report.failed.extend(outcome.failed)
            refused.extend(outcome.refused)
            report.api_calls += outcome.api_calls
            report.throttled_calls += outcome.throttled_calls
            report.retries += outcome.retries
        self._settle_refusals(refused, report)
        self._fail_superseded_with_their_successor(report)
        logger.info(
            "delivery finished",
            extra={
                "entity": self._entity.name,
                "records": len(prepared),
                "delivered": len(report.delivered),
                "superseded": len(report.superseded),
                "rejected": len(report.rejected),
                "failed": len(report.failed),
                "api_calls": report.api_calls,
                "throttled_calls": report.throttled_calls,
                "retries": report.retries,
            },
        )
        return report

    # ---------------------------------------------------------------------------------------------------------

    def _run_lane(self, batches: list[Batch]) -> _LaneOutcome:
        outcome = _LaneOutcome()
        for batch in batches:
            self._send(batch, outcome)
        return outcome

    def _send(self, batch: Batch, outcome: _LaneOutcome) -> None:
        operation = self._entity.operation
        if self._stop_reason is not None:
            outcome.failed.extend((p, f"not sent: {self._stop_reason}") for p in batch.prepared)
            return
        if self._deadline.exhausted():
            reason = f"not sent: less than {self._deadline.margin_ms} ms left of the invocation"
            outcome.failed.extend((p, reason) for p in batch.prepared)
            return
        scope = _CallScope(self._deadline, self._bucket)
        try:
            self._call(batch, scope, outcome)
        except DeadlineReached as exc:
            outcome.failed.extend((p, f"{operation} not completed: {exc}") for p in batch.prepared)
        except ClientError as exc:
            self._on_client_error(batch, exc, scope.attempts, outcome)
        except ParamValidationError as exc:
            # NOTE: only possible if a record escaped validation; treated like the service refusing it.
            self._on_refused(batch, str(exc), outcome)
        except NoCredentialsError as exc:
            self._stop(f"{operation} cannot be signed: {exc}")
            outcome.failed.extend((p, f"not sent: {self._stop_reason}") for p in batch.prepared)
        except BotoCoreError as exc:
            # NOTE: connection errors and timeouts were already retried by botocore up to max_attempts.
            reason = f"{operation} failed after {scope.attempts} attempt(s): {exc}"
            outcome.failed.extend((p, reason) for p in batch.prepared)
        except Exception as exc:
            # NOTE: a defect, not a service answer. The records fail (Lambda retries them) instead of the whole
            # invocation crashing, and the traceback is logged once per call (it carries no record values).
            logger.exception(f"{operation} call raised unexpectedly", extra={"entity": self._entity.name})
            reason = f"{operation} not completed: unexpected {type(exc).__name__}"
            outcome.failed.extend((p, reason) for p in batch.prepared)
        else:
            self._accepted.set()
            outcome.delivered.extend(batch.prepared)

    def _call(self, batch: Batch, scope: _CallScope, outcome: _LaneOutcome) -> None:
        try:
            with call_scope(scope):
                self._send_call(**batch.request(self._entity, self._settings.target))
        finally:
            outcome.api_calls += scope.attempts
            outcome.retries += max(0, scope.attempts - 1)
            outcome.throttled_calls += scope.throttled

    def _on_client_error(self, batch: Batch, exc: ClientError, attempts: int, outcome: _LaneOutcome) -> None:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")) or code
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        operation = self._entity.operation
        if code in INVALID_INPUT_CODES:
            self._on_refused(batch, f"{code}: {message}", outcome)
        elif code in CONFIGURATION_ERROR_CODES or status in (401, 403):
            self._stop(
                f"{operation} to {self._settings.target} ({self._entity.target_variable}) failed with {code}: "
                f"{message}"
            )
            outcome.failed.extend((p, f"not sent: {self._stop_reason}") for p in batch.prepared)
        else:
            reason = f"{operation} failed after {attempts} attempt(s): {code} (HTTP {status}): {message}"
            outcome.failed.extend((p, reason) for p in batch.prepared)

    def _on_refused(self, batch: Batch, message: str, outcome: _LaneOutcome) -> None:
        if len(batch.prepared) > 1:
            # NOTE: a refusal carries no per-record status (the API returns none), so the call is split in
            # halves, first half first (source order within a lane), until the refused records stand alone.
            for half in batch.halves():
                self._send(half, outcome)
            return
        outcome.refused.append((batch.prepared[0], message))
        with self._lock:
            self._refused_alone += 1
            give_up = not self._accepted.is_set() and self._refused_alone >= self._refusals_before_stop
        if give_up:
            self._stop(
                f"{self._entity.operation} refused {self._refused_alone} records one by one and "
                f"{self._entity.target_variable} {self._settings.target} accepted none in this invocation; "
                "check the target (a wrong tracking id is refused like an invalid record)"
            )

    def _settle_refusals(self, refused: list[tuple[Prepared, str]], report: DeliveryReport) -> None:
        if not refused:
            return
        operation = self._entity.operation
        if self._accepted.is_set():
            report.rejected.extend(
                (p, Rejection(SERVICE_REJECTED, f"{operation} refused the record: {message}"))
                for p, message in refused
            )
            return
        report.failed.extend(
            (
                p,
                f"{operation} refused the record ({message}) but {self._entity.target_variable} accepted nothing "
                "in this invocation: treated as a configuration problem, not a bad record",
            )
            for p, message in refused
        )
        with self._lock:
            first = not self._refusal_logged
            self._refusal_logged = True
        if first and self._stop_reason is None:
            codes = sorted({message.split(":", 1)[0] for _, message in refused})
            logger.error(
                f"{operation} refused every record sent on its own and {self._entity.target_variable} "
                f"{self._settings.target} accepted none in this invocation: check the target's configuration. "
                "The records are reported failed, not rejected",
                extra={"entity": self._entity.name, "refused": len(refused), "error_codes": codes},
            )

    def _fail_superseded_with_their_successor(self, report: DeliveryReport) -> None:
        """An older version is handled only if the version that replaced it was sent: when that one failed, the
        older ones fail with it, so no record is acknowledged on the strength of a call that did not succeed."""
        if not report.superseded or not report.failed:
            return
        failed = {upsert_id(self._entity, p): reason for p, reason in report.failed}
        kept: list[Prepared] = []
        for older in report.superseded:
            reason = failed.get(upsert_id(self._entity, older))
            if reason is None:
                kept.append(older)
            else:
                report.failed.append((older, f"superseded by a later record of the same id that failed: {reason}"))
        report.superseded = kept

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._stop_reason is not None:
                return
            self._stop_reason = reason
        logger.error(
            f"configuration error, no more calls to this target in this invocation: {reason}",
            extra={"entity": self._entity.name},
        )


def _lanes(batches: list[Batch]) -> list[list[Batch]]:
    """Batches grouped by lane, lanes in the order of their first batch; lane None = a lane of its own."""
    lanes: dict[object, list[Batch]] = {}
    for index, batch in enumerate(batches):
        lanes.setdefault(batch.lane if batch.lane is not None else ("batch", index), []).append(batch)
    return list(lanes.values())
