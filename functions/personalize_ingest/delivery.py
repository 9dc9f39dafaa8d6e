"""Send prepared records to Personalize: batched, concurrent, retried, and accounted for one by one.

Every record handed to :meth:`Deliverer.deliver` gets exactly one
:class:`~personalize_ingest.model.RecordOutcome` in the returned :class:`Delivery`:

- ``delivered``: its call returned 200.
- ``superseded``: an upsert replaced by a later record of the same id in the same ``deliver()`` call, which was
  delivered. An older version shares its successor's fate: rejected with it when the service refused it, failed
  with it when it failed.
- ``rejected`` (code ``service_rejected``): the service refused it on its own *and* the same target accepted
  other records in this invocation, which shows the configuration is sound.
- ``failed``: anything a retry may cure - throttling or 5xx after every attempt and every later round, timeouts,
  connection errors, configuration errors (unknown tracker or dataset, access denied), a refusal while the target
  accepted nothing, the deadline reached before the call could start, an earlier call of its session that failed,
  or (Kinesis) an earlier record of the shard that failed.

Which call goes next is :mod:`personalize_ingest.schedule`'s decision.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

from personalize_ingest.batching import Batch, Plan, max_per_call, plan, upsert_id
from personalize_ingest.calls import call_for, direct_calls
from personalize_ingest.clients import CallScope as _CallScope
from personalize_ingest.clients import DeadlineReached, call_scope
from personalize_ingest.clients import install_hooks as _install_hooks
from personalize_ingest.clients import personalize_events_client as client_for
from personalize_ingest.concurrency import concurrent_calls_for
from personalize_ingest.config import Settings
from personalize_ingest.deadline import Deadline
from personalize_ingest.model import Fate, Prepared, RecordOutcome, Rejection
from personalize_ingest.schedule import Schedule
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

MAX_EXTRA_ROUNDS = 3
"""Later rounds for calls that failed for a retryable reason, after every other call of ``deliver()`` is done."""
ROUND_PAUSE_S = (0.2, 0.5, 1.0)
"""Pause before each later round (a throttled target gets a moment), bounded by a quarter of the budget."""
MIN_ROUND_BUDGET_S = 1.0
"""A later round starts only with at least this much time before the margin (and twice what a call has needed)."""


@dataclass(slots=True)
class Delivery:
    """What :meth:`Deliverer.deliver` did: one outcome per record handed in (same order), and the calls it took.

    ``delivered``, ``superseded``, ``rejected`` and ``failed`` are views of ``outcomes``: every record is in
    exactly one of them.
    """

    prepared: list[Prepared] = field(default_factory=list)
    outcomes: list[RecordOutcome] = field(default_factory=list)
    api_calls: int = 0
    throttled_calls: int = 0
    retries: int = 0
    rounds: int = 1
    """Rounds of sending: 1, plus one per later round of retryable failures."""

    def _with(self, fate: Fate) -> list[tuple[Prepared, RecordOutcome]]:
        return [(p, o) for p, o in zip(self.prepared, self.outcomes, strict=True) if o.fate is fate]

    @property
    def delivered(self) -> list[Prepared]:
        return [p for p, _ in self._with(Fate.DELIVERED)]

    @property
    def superseded(self) -> list[Prepared]:
        return [p for p, _ in self._with(Fate.SUPERSEDED)]

    @property
    def rejected(self) -> list[tuple[Prepared, Rejection]]:
        return [(p, o.rejection) for p, o in self._with(Fate.REJECTED)]

    @property
    def failed(self) -> list[tuple[Prepared, str]]:
        return [(p, o.reason) for p, o in self._with(Fate.FAILED)]


@dataclass(slots=True)
class _CallResult:
    """How one call (and the halves it was split into) ended; filled on a delivery thread."""

    delivered: list[Prepared] = field(default_factory=list)
    refused: list[tuple[Prepared, str]] = field(default_factory=list)
    """Refused alone by the service (message); rejected or failed once the whole deliver() call is known."""
    failed: list[tuple[Prepared, str]] = field(default_factory=list)
    retryable: bool = True
    """All of ``failed`` may succeed on a later attempt in this invocation."""
    attempts: int = 0
    throttled: int = 0

    def fail(self, prepared: Sequence[Prepared], reason: str, *, retryable: bool) -> None:
        self.failed.extend((p, reason) for p in prepared)
        self.retryable = self.retryable and retryable


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

    def deliver(self, prepared: Sequence[Prepared], *, checkpointed: bool = False) -> Delivery:
        """Send ``prepared`` (in source order) and say what happened to each record.

        Calls go out on at most ``max_concurrent_calls`` threads, earliest pending record first; a lane
        (PutEvents: one session) has one call in flight at a time, in source order, and stops at its first call
        that fails for good. Calls that failed for a retryable reason are tried again in later rounds while the
        budget allows. ``checkpointed`` (Kinesis): nothing after the earliest record that failed for good is
        sent (see :mod:`personalize_ingest.schedule`). Returns when every record is accounted for.
        """
        delivery = Delivery(prepared=list(prepared))
        if not prepared:
            return delivery
        positions = {id(p): index for index, p in enumerate(prepared)}
        calls = plan(self._entity, prepared)
        schedule = Schedule(calls.batches, positions, checkpointed)
        ends: dict[int, RecordOutcome] = {}
        refused: list[tuple[Prepared, str]] = []
        # NOTE: independent lanes: a session's calls run one after another, every other call is a lane of its own.
        lanes = len({batch.lane if batch.lane is not None else id(batch) for batch in calls.batches})
        workers = max(1, concurrent_calls_for(self._settings, lanes))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="personalize-call") as pool:
            running: dict[Future[_CallResult], int] = {}
            while True:
                while len(running) < workers and (taken := schedule.take()) is not None:
                    lane, batch = taken
                    not_now = self._why_not_start()
                    if not_now is None:
                        running[pool.submit(self._send, batch)] = lane
                        continue
                    _fail(ends, batch.prepared, not_now)
                    schedule.failed_for_good(lane, batch.prepared)
                for unsent in schedule.pop_unsent():
                    _fail(ends, [unsent.prepared], unsent.reason)
                if running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        lane = running.pop(future)
                        self._settle_call(future.result(), lane, schedule, ends, refused, delivery)
                    continue
                if schedule.has_deferred and self._another_round(delivery.rounds):
                    delivery.rounds += 1
                    schedule.next_round()
                    continue
                for p, reason in schedule.abandon():
                    ends[id(p)] = RecordOutcome.failed(p.record, reason, retryable=True)
                for unsent in schedule.pop_unsent():
                    _fail(ends, [unsent.prepared], unsent.reason)
                break
        self._settle_refusals(refused, ends)
        self._share_fate_with_successor(calls, ends)
        delivery.outcomes = [ends.get(id(p)) or self._unaccounted(p) for p in prepared]
        self._log_finished(delivery)
        return delivery

    # ---------------------------------------------------------------------------------------------------------

    def _why_not_start(self) -> str | None:
        """Why no call may start now (configuration error, deadline), or None."""
        if self._stop_reason is not None:
            return f"not sent: {self._stop_reason}"
        if self._deadline.exhausted():
            return f"not sent: less than {self._deadline.margin_ms} ms left of the invocation"
        if not self._deadline.leaves_time_for_a_call():
            return (
                f"not sent: {self._deadline.budget_s():.1f} s left before the last {self._deadline.margin_ms} ms "
                f"of the invocation, less than the {self._deadline.latency.need_s():.1f} s a call has needed"
            )
        return None

    def _another_round(self, rounds: int) -> bool:
        """Whether a later round may start; pauses before it (throttling needs a moment)."""
        if rounds > MAX_EXTRA_ROUNDS or self._stop_reason is not None:
            return False
        budget = self._deadline.budget_s()
        if budget < max(MIN_ROUND_BUDGET_S, 2 * self._deadline.latency.need_s()):
            return False
        time.sleep(min(ROUND_PAUSE_S[min(rounds, len(ROUND_PAUSE_S)) - 1], budget / 4))
        return True

    def _settle_call(
        self,
        result: _CallResult,
        lane: int,
        schedule: Schedule,
        ends: dict[int, RecordOutcome],
        refused: list[tuple[Prepared, str]],
        delivery: Delivery,
    ) -> None:
        delivery.api_calls += result.attempts
        delivery.retries += max(0, result.attempts - 1)
        delivery.throttled_calls += result.throttled
        for p in result.delivered:
            ends[id(p)] = RecordOutcome.delivered(p.record)
        refused.extend(result.refused)
        if not result.failed:
            schedule.succeeded(lane)
        elif result.retryable and self._stop_reason is None:
            schedule.defer(lane, [p for p, _ in result.failed], result.failed)
        else:
            for p, reason in result.failed:
                ends[id(p)] = RecordOutcome.failed(p.record, reason, retryable=result.retryable)
            schedule.failed_for_good(lane, [p for p, _ in result.failed])

    def _send(self, batch: Batch) -> _CallResult:
        result = _CallResult()
        self._send_into(batch, result)
        return result

    def _send_into(self, batch: Batch, result: _CallResult) -> None:
        operation = self._entity.operation
        if self._stop_reason is not None:
            result.fail(batch.prepared, f"not sent: {self._stop_reason}", retryable=False)
            return
        scope = _CallScope(self._deadline, self._bucket)
        started = time.monotonic()
        try:
            self._call(batch, scope, result)
        except DeadlineReached as exc:
            result.fail(batch.prepared, f"{operation} not completed: {exc}", retryable=False)
        except ClientError as exc:
            self._on_client_error(batch, exc, scope.attempts, result)
        except ParamValidationError as exc:
            # NOTE: only possible if a record escaped validation; treated like the service refusing it.
            self._on_refused(batch, str(exc), result)
        except NoCredentialsError as exc:
            self._stop(f"{operation} cannot be signed: {exc}")
            result.fail(batch.prepared, f"not sent: {self._stop_reason}", retryable=False)
        except BotoCoreError as exc:
            # NOTE: connection errors and timeouts were already retried by botocore up to max_attempts; a later
            # round may still find the connection back.
            reason = f"{operation} failed after {scope.attempts} attempt(s): {exc}"
            result.fail(batch.prepared, reason, retryable=True)
        except Exception as exc:
            # NOTE: a defect, not a service answer. The records fail (Lambda retries them) instead of the whole
            # invocation crashing, and the traceback is logged once per call (it carries no record values).
            logger.exception(f"{operation} call raised unexpectedly", extra={"entity": self._entity.name})
            result.fail(
                batch.prepared, f"{operation} not completed: unexpected {type(exc).__name__}", retryable=False
            )
        else:
            self._accepted.set()
            if scope.attempts == 1:
                self._deadline.latency.observe(time.monotonic() - started)
            result.delivered.extend(batch.prepared)

    def _call(self, batch: Batch, scope: _CallScope, result: _CallResult) -> None:
        try:
            with call_scope(scope):
                self._send_call(**batch.request(self._entity, self._settings.target))
        finally:
            result.attempts += scope.attempts
            result.throttled += scope.throttled

    def _on_client_error(self, batch: Batch, exc: ClientError, attempts: int, result: _CallResult) -> None:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")) or code
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        operation = self._entity.operation
        if code in INVALID_INPUT_CODES:
            self._on_refused(batch, f"{code}: {message}", result)
        elif code in CONFIGURATION_ERROR_CODES or status in (401, 403):
            self._stop(
                f"{operation} to {self._settings.target} ({self._entity.target_variable}) failed with {code}: "
                f"{message}"
            )
            result.fail(batch.prepared, f"not sent: {self._stop_reason}", retryable=False)
        else:
            # NOTE: throttling and 5xx after every attempt botocore allowed: a later round may succeed.
            reason = f"{operation} failed after {attempts} attempt(s): {code} (HTTP {status}): {message}"
            result.fail(batch.prepared, reason, retryable=True)

    def _on_refused(self, batch: Batch, message: str, result: _CallResult) -> None:
        if len(batch.prepared) > 1:
            # NOTE: a refusal carries no per-record status (the API returns none), so the call is split in
            # halves, first half first (source order within a lane), until the refused records stand alone. When
            # the first half fails, the second is not sent: it would overtake it.
            first, second = batch.halves()
            self._send_into(first, result)
            if result.failed:
                reason = f"not sent: the first half of a split call failed ({result.failed[0][1]})"
                result.failed.extend((p, reason) for p in second.prepared)
                return
            self._send_into(second, result)
            return
        result.refused.append((batch.prepared[0], message))
        with self._lock:
            self._refused_alone += 1
            give_up = not self._accepted.is_set() and self._refused_alone >= self._refusals_before_stop
        if give_up:
            self._stop(
                f"{self._entity.operation} refused {self._refused_alone} records one by one and "
                f"{self._entity.target_variable} {self._settings.target} accepted none in this invocation; "
                "check the target (a wrong tracking id is refused like an invalid record)"
            )

    def _settle_refusals(self, refused: list[tuple[Prepared, str]], ends: dict[int, RecordOutcome]) -> None:
        if not refused:
            return
        operation = self._entity.operation
        if self._accepted.is_set():
            for p, message in refused:
                rejection = Rejection(SERVICE_REJECTED, f"{operation} refused the record: {message}")
                ends[id(p)] = RecordOutcome.rejected(p.record, rejection)
            return
        for p, message in refused:
            ends[id(p)] = RecordOutcome.failed(
                p.record,
                f"{operation} refused the record ({message}) but {self._entity.target_variable} accepted nothing "
                "in this invocation: treated as a configuration problem, not a bad record",
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

    def _share_fate_with_successor(self, calls: Plan, ends: dict[int, RecordOutcome]) -> None:
        """An older version shares the fate of the version that replaced it: superseded (handled) when that one
        was delivered, set aside with it when the service refused it (neither is stored), failed with it when
        it failed; so no record is acknowledged on the strength of a call that did not store its successor."""
        if not calls.superseded:
            return
        successors = {upsert_id(self._entity, p): ends[id(p)] for batch in calls.batches for p in batch.prepared}
        for older in calls.superseded:
            successor = successors[upsert_id(self._entity, older)]
            if successor.fate is Fate.DELIVERED:
                ends[id(older)] = RecordOutcome(older.record, Fate.SUPERSEDED)
            elif successor.fate is Fate.REJECTED:
                ends[id(older)] = RecordOutcome(
                    older.record,
                    Fate.REJECTED,
                    f"superseded by a later record of the same id that was refused: {successor.reason}",
                    successor.code,
                )
            else:
                ends[id(older)] = RecordOutcome.failed(
                    older.record,
                    f"superseded by a later record of the same id that failed: {successor.reason}",
                    retryable=successor.retryable,
                )

    def _unaccounted(self, prepared: Prepared) -> RecordOutcome:
        # NOTE: a defect guard: every record must end with an outcome; one that did not is failed (Lambda retries
        # it), never acknowledged.
        logger.error("a record ended without an outcome: reported failed", extra={"entity": self._entity.name})
        return RecordOutcome.failed(prepared.record, "not accounted for by delivery (a defect)")

    def _log_finished(self, delivery: Delivery) -> None:
        counts = Counter(outcome.fate for outcome in delivery.outcomes)
        logger.info(
            "delivery finished",
            extra={
                "entity": self._entity.name,
                "records": len(delivery.outcomes),
                **{fate.value: counts[fate] for fate in Fate},
                "api_calls": delivery.api_calls,
                "throttled_calls": delivery.throttled_calls,
                "retries": delivery.retries,
                "rounds": delivery.rounds,
            },
        )

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._stop_reason is not None:
                return
            self._stop_reason = reason
        logger.error(
            f"configuration error, no more calls to this target in this invocation: {reason}",
            extra={"entity": self._entity.name},
        )


def _fail(ends: dict[int, RecordOutcome], prepared: Sequence[Prepared], reason: str) -> None:
    for p in prepared:
        ends[id(p)] = RecordOutcome.failed(p.record, reason)
