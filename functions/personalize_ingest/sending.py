"""One Personalize call and the halves it is split into: send, classify the answer, fill a :class:`CallResult`.

A call the service refuses is split in halves until the refused records stand alone; a configuration error
stops every later call to the target in this invocation (:attr:`CallSender.stop_reason`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

from personalize_ingest.batching import Batch
from personalize_ingest.clients import CallScope, DeadlineReached, call_scope
from personalize_ingest.config import Settings
from personalize_ingest.deadline import Deadline
from personalize_ingest.delivery_results import CallResult
from personalize_ingest.service_errors import ErrorKind, classify
from personalize_ingest.settling import Refusals
from personalize_ingest.throttle import TokenBucket

logger = Logger(child=True)


class CallSender:
    """Sends one batch per :meth:`send` (thread-safe; one instance per deliverer).

    Parameters
    ----------
    settings
        The function's settings (entity, target).
    deadline
        The invocation's deadline, checked by the per-attempt hooks.
    send_call
        The client method (or direct call) of the entity's operation.
    bucket
        The target's rate bucket, or None.
    refusals
        Where acceptance and single-record refusals are counted.
    """

    def __init__(
        self,
        settings: Settings,
        deadline: Deadline,
        send_call: Callable[..., Any],
        bucket: TokenBucket | None,
        refusals: Refusals,
    ) -> None:
        self._settings = settings
        self._entity = settings.entity
        self._deadline = deadline
        self._send_call = send_call
        self._bucket = bucket
        self._refusals = refusals
        self._lock = threading.Lock()
        self._stop_reason: str | None = None

    @property
    def stop_reason(self) -> str | None:
        """Why the target gets no more calls in this invocation (a configuration error), or None."""
        return self._stop_reason

    def send(self, batch: Batch) -> CallResult:
        """Send ``batch`` (split on refusal) and say how each of its records ended."""
        result = CallResult()
        self._send_into(batch, result)
        return result

    def _send_into(self, batch: Batch, result: CallResult) -> None:
        operation = self._entity.operation
        if self._stop_reason is not None:
            result.fail(batch.prepared, f"not sent: {self._stop_reason}", retryable=False)
            return
        scope = CallScope(self._deadline, self._bucket)
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
            self._refusals.accepted()
            result.delivered.extend(batch.prepared)

    def _call(self, batch: Batch, scope: CallScope, result: CallResult) -> None:
        try:
            with call_scope(scope):
                self._send_call(**batch.request(self._entity, self._settings.target))
        finally:
            result.attempts += scope.attempts
            result.throttled += scope.throttled

    def _on_client_error(self, batch: Batch, exc: ClientError, attempts: int, result: CallResult) -> None:
        error = classify(exc)
        operation = self._entity.operation
        if error.kind is ErrorKind.REFUSED:
            self._on_refused(batch, f"{error.code}: {error.message}", result)
        elif error.kind is ErrorKind.CONFIGURATION:
            self._stop(
                f"{operation} to {self._settings.target} ({self._entity.target_variable}) failed with "
                f"{error.code}: {error.message}"
            )
            result.fail(batch.prepared, f"not sent: {self._stop_reason}", retryable=False)
        else:
            reason = (
                f"{operation} failed after {attempts} attempt(s): {error.code} (HTTP {error.status}): "
                f"{error.message}"
            )
            result.fail(batch.prepared, reason, retryable=True)

    def _on_refused(self, batch: Batch, message: str, result: CallResult) -> None:
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
        give_up = self._refusals.refused_alone()
        if give_up is not None:
            self._stop(give_up)

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._stop_reason is not None:
                return
            self._stop_reason = reason
        logger.error(
            f"configuration error, no more calls to this target in this invocation: {reason}",
            extra={"entity": self._entity.name},
        )
