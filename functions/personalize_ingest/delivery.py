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

The flow, module by module: :mod:`~personalize_ingest.batching` plans the calls,
:mod:`~personalize_ingest.schedule` decides which goes next, this module's :class:`Deliverer` runs them on threads
and in later rounds, :mod:`~personalize_ingest.sending` sends one call (splitting refused ones) and classifies
errors with :mod:`~personalize_ingest.service_errors`, and :mod:`~personalize_ingest.settling` settles the fates
that depend on the whole ``deliver()`` call. The results are :mod:`~personalize_ingest.delivery_results`' types.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from personalize_ingest.batching import plan
from personalize_ingest.calls import call_for, direct_calls
from personalize_ingest.clients import install_hooks as _install_hooks
from personalize_ingest.clients import personalize_events_client as client_for
from personalize_ingest.concurrency import concurrent_calls_for
from personalize_ingest.config import Settings
from personalize_ingest.deadline import Deadline
from personalize_ingest.delivery_results import CallResult, Delivery
from personalize_ingest.model import Fate, Prepared, RecordOutcome
from personalize_ingest.schedule import Schedule
from personalize_ingest.sending import CallSender
from personalize_ingest.settling import Refusals, share_fate_with_successor
from personalize_ingest.throttle import bucket_for

if TYPE_CHECKING:
    from mypy_boto3_personalize_events import PersonalizeEventsClient

__all__ = ["MAX_EXTRA_ROUNDS", "MIN_ROUND_BUDGET_S", "ROUND_PAUSE_S", "Deliverer", "Delivery"]

logger = Logger(child=True)

MAX_EXTRA_ROUNDS = 3
"""Later rounds for calls that failed for a retryable reason, after every other call of ``deliver()`` is done."""
ROUND_PAUSE_S = (0.2, 0.5, 1.0)
"""Pause before each later round (a throttled target gets a moment), bounded by a quarter of the budget."""
MIN_ROUND_BUDGET_S = 1.0
"""A later round starts only with at least this much time before the margin (and twice what a call has needed)."""


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
        self._refusals = Refusals(self._entity, settings.target)
        self._sender = CallSender(
            settings,
            deadline,
            call_for(self._client, self._entity, direct=direct_calls(settings, client)),
            bucket_for(settings.target, settings.calls_per_second),
            self._refusals,
        )

    @property
    def stop_reason(self) -> str | None:
        """Why the target gets no more calls in this invocation (a configuration error), or None.

        Once set, every later record fails unsent: a caller reading a large file may stop reading early.
        """
        return self._sender.stop_reason

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
        workers = max(1, concurrent_calls_for(self._settings, lanes, self._deadline.latency))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="personalize-call") as pool:
            running: dict[Future[CallResult], int] = {}
            while True:
                while len(running) < workers and (taken := schedule.take()) is not None:
                    lane, batch = taken
                    not_now = self._why_not_start()
                    if not_now is None:
                        running[pool.submit(self._sender.send, batch)] = lane
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
        self._refusals.settle(refused, ends, stopped=self.stop_reason is not None)
        share_fate_with_successor(self._entity, calls, ends)
        delivery.outcomes = [ends.get(id(p)) or self._unaccounted(p) for p in prepared]
        self._log_finished(delivery)
        return delivery

    # ---------------------------------------------------------------------------------------------------------

    def _why_not_start(self) -> str | None:
        """Why no call may start now (configuration error, deadline), or None."""
        if self.stop_reason is not None:
            return f"not sent: {self.stop_reason}"
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
        if rounds > MAX_EXTRA_ROUNDS or self.stop_reason is not None:
            return False
        budget = self._deadline.budget_s()
        if budget < max(MIN_ROUND_BUDGET_S, 2 * self._deadline.latency.need_s()):
            return False
        time.sleep(min(ROUND_PAUSE_S[min(rounds, len(ROUND_PAUSE_S)) - 1], budget / 4))
        return True

    def _settle_call(
        self,
        result: CallResult,
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
        elif result.retryable and self.stop_reason is None:
            schedule.defer(lane, [p for p, _ in result.failed], result.failed)
        else:
            for p, reason in result.failed:
                ends[id(p)] = RecordOutcome.failed(p.record, reason, retryable=result.retryable)
            schedule.failed_for_good(lane, [p for p, _ in result.failed])

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


def _fail(ends: dict[int, RecordOutcome], prepared: Sequence[Prepared], reason: str) -> None:
    for p in prepared:
        ends[id(p)] = RecordOutcome.failed(p.record, reason)
