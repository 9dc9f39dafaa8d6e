"""The emulated service: one request to one of the five operations in, one answer out (no HTTP here).

Order of checks, chosen to resemble a real AWS front end: signature (403), injected faults, JSON body, the
target member's own shape, target lookup (404 / 409), quota (400 ThrottlingException), the full request against
the model and the documented rules (400 InvalidInputException), then storage (200, empty body). Throttling answers
400 ThrottlingException, or 429 TooManyRequestsException when configured.

Every reset starts a new generation. A request belongs to the generation in which the server read its request line;
one still in flight when a reset happens (a slow client, a latency fault, a client that timed out) draws no fault,
stores nothing and leaves no call in the new generation's log: it is answered 503 ServiceUnavailable, which SDKs
retry into the new generation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulator.config import THROTTLE_CODES, EmulatorConfig
from emulator.faults import NO_FAULT, FaultDecision, Faults, FaultSettings
from emulator.operations import Operation
from emulator.quotas import Quotas
from emulator.signing import AuthError, SignedRequest, access_key_of, verify
from emulator.store import Call, Store
from emulator.validation import RequestInvalid, check_shape, element_count, request_members, validate_request

if TYPE_CHECKING:
    from emulator.control_plane import ControlPlane

logger = logging.getLogger(__name__)

_STATUS_OF_ERROR = {
    "InvalidInputException": 400,
    "SerializationException": 400,
    "ResourceNotFoundException": 404,
    "ResourceInUseException": 409,
}
_FAULT_ERRORS = {500: ("InternalFailure", "Internal server error (injected)"), 503: ("ServiceUnavailable", "")}
_RESET_IN_FLIGHT = "The emulator was reset while this request was in flight; retry it."


@dataclass(frozen=True)
class Answer:
    """An HTTP answer; ``drop`` means close the connection without one."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False


def error_answer(status: int, code: str, message: str, request_id: str) -> Answer:
    """A rest-json error that botocore parses into ``code`` (header ``x-amzn-ErrorType`` and body ``__type``)."""
    body = json.dumps({"__type": code, "message": message}).encode()
    return Answer(
        status,
        body,
        {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id},
    )


class ServiceError(Exception):
    """An error answer with its code; raised inside ``Emulator.call``."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUS_OF_ERROR[code]


@dataclass(frozen=True)
class _Target:
    group: str
    schema: Mapping[str, Any] | None


class Emulator:
    """State of one emulator instance: resources, store, quotas and faults."""

    def __init__(self, config: EmulatorConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store or Store()
        self.quotas = Quotas(config.quotas, {group.name: group.quotas for group in config.groups})
        self.faults = Faults(FaultSettings.from_dict(config.faults))
        self._trackers = {g.tracking_id: g for g in config.groups if g.tracking_id}
        self._action_trackers = {g.action_tracking_id: g for g in config.groups if g.action_tracking_id}
        self._datasets = {arn: (g, kind) for g in config.groups for kind, arn in g.datasets.items()}
        # Guards the generation together with what a request does in it: its fault draw and its store writes.
        self._generation_lock = threading.Lock()
        self._idle = threading.Condition(self._generation_lock)
        self._generation = 0
        self._in_flight = 0
        self._refusing = False
        from emulator.control_plane import ControlPlane  # the control plane builds on this module's Answer

        self.control_plane: ControlPlane = ControlPlane(self)
        """The ``personalize`` control-plane calls of bulk imports (emulator/control_plane.py)."""

    @property
    def generation(self) -> int:
        """Number of resets so far; requests read before the latest one are stale."""
        return self._generation

    @property
    def in_flight(self) -> int:
        """Operation requests whose request line was read and whose answer is not written yet."""
        return self._in_flight

    def begin_request(self) -> int | None:
        """Count a request as in flight (its request line was just read); return its generation, or None when
        ``refuse_requests`` was called (the request must be turned away)."""
        with self._generation_lock:
            if self._refusing:
                return None
            self._in_flight += 1
            return self._generation

    def refuse_requests(self) -> None:
        """From now on ``begin_request`` turns requests away (the server is stopping)."""
        with self._generation_lock:
            self._refusing = True

    def end_request(self) -> None:
        """The request counted by ``begin_request`` was answered (or its client went away)."""
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no operation request is in flight (at most ``timeout`` seconds); return whether none is."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_flight, timeout)

    def reset(self, *, records: bool = True, faults: bool = True, quotas: bool = True) -> None:
        """Start a new generation: forget records and calls, restore the starting faults and quotas (each
        optional).

        Requests in flight from the previous generation can no longer draw faults or write to the store.
        """
        with self._generation_lock:
            self._generation += 1
            if records:
                self.store.reset()
                self.control_plane.reset()
            if faults:
                self.faults.reset()
            if quotas:
                self.quotas.reset()

    def resources(self) -> dict[str, Any]:
        """The configured dataset groups, as the admin API shows them."""
        return {
            "datasetGroups": [
                {
                    "name": g.name,
                    "trackingId": g.tracking_id,
                    "actionTrackingId": g.action_tracking_id,
                    "datasets": dict(g.datasets),
                    "schemas": sorted(g.schemas),
                    "inUse": g.in_use,
                }
                for g in self.config.groups
            ],
            "verifySignatures": self.config.verify_signatures,
        }

    def call(self, operation: Operation, request: SignedRequest, generation: int | None = None) -> Answer:
        """Answer one request to ``operation``, log it, and store its elements when accepted.

        ``generation`` is the one the request was read in (see ``begin_request``); None means the current one.
        A request from an earlier generation is answered 503 without drawing faults, storing or logging.
        """
        request_id = str(uuid.uuid4())
        received_at = time.time()
        with self._generation_lock:
            if generation is None:
                generation = self._generation
            stale = generation != self._generation
            decision = NO_FAULT if stale else self.faults.decide(operation.name)
        if stale:
            logger.debug("%s %s read before a reset: not served", operation.name, request_id)
            return error_answer(503, "ServiceUnavailable", _RESET_IN_FLIGHT, request_id)
        body: Any = None
        status, code, message = 200, None, None
        try:
            verify(
                request,
                self.config.credentials if self.config.verify_signatures else None,
                max_clock_skew_s=self.config.max_clock_skew_s,
            )
            if decision.drop and not decision.drop_after_store:
                status, code = 0, "ConnectionDropped"
                return Answer(0, drop=True)
            if decision.throttle:
                raise self._throttled("Rate exceeded (injected)")
            self._raise_injected(decision)
            body = _decode(request.body)
            target = self._resolve_target(operation, body)
            if not self.quotas.acquire(target.group, operation.name):
                raise self._throttled("Rate exceeded")
            validate_request(
                operation,
                body,
                schema=target.schema,
                max_element_bytes=self.config.max_event_bytes if operation.entity == "events" else None,
            )
            with self._in_generation(generation) as current:
                if not current:
                    raise ServiceError("ServiceUnavailable", _RESET_IN_FLIGHT, 503)
                self.store.add_records(
                    operation.entity,
                    request_id=request_id,
                    received_at=received_at,
                    target=body[operation.target_member],
                    request=request_members(operation, body),
                    elements=body[operation.list_member],
                    key_member=operation.key_member,
                )
            if decision.drop:
                status, code = 0, "ConnectionDropped"
                return Answer(0, drop=True)
            return Answer(200, b"", {"Content-Type": "application/json", "x-amzn-RequestId": request_id})
        except AuthError as exc:
            status, code, message = 403, exc.code, exc.message
            return error_answer(status, code, message, request_id)
        except RequestInvalid as exc:
            status, code, message = 400, "InvalidInputException", str(exc)
            return error_answer(status, code, message, request_id)
        except ServiceError as exc:
            status, code, message = exc.status, exc.code, exc.message
            return error_answer(status, code, message, request_id)
        except Exception:
            logger.exception("%s %s failed inside the emulator", operation.name, request_id)
            status, code, message = 500, "InternalFailure", "The emulator failed; see its log."
            return error_answer(status, code, message, request_id)
        finally:
            if body is None:
                # The call log names target and size even when the request was refused before decoding.
                with contextlib.suppress(ValueError):
                    body = json.loads(request.body or b"{}")
            target_value = body.get(operation.target_member) if isinstance(body, dict) else None
            call = Call(
                request_id=request_id,
                received_at=received_at,
                operation=operation.name,
                target=target_value if isinstance(target_value, str) else None,
                status=status,
                error_code=code,
                message=message,
                elements=element_count(operation, body),
                invocation_id=header_value(request, "amz-sdk-invocation-id"),
                attempt=attempt_number(header_value(request, "amz-sdk-request")),
                latency_ms=decision.latency_s * 1000.0,
            )
            with self._in_generation(generation) as current:
                # A request overtaken by a reset belongs to no log: the new generation never saw it.
                if current:
                    self.store.add_call(call)
            logger.debug(
                "%s %s -> %s %s (key %s)",
                operation.name,
                request_id,
                status,
                code or "",
                access_key_of(header_value(request, "authorization")),
            )
            if decision.latency_s > 0:
                time.sleep(decision.latency_s)

    @contextlib.contextmanager
    def _in_generation(self, generation: int) -> Iterator[bool]:
        """Hold off resets while writing; yield whether ``generation`` is still the current one."""
        with self._generation_lock:
            yield generation == self._generation

    def _throttled(self, message: str) -> ServiceError:
        status = self.config.throttle_status
        return ServiceError(THROTTLE_CODES[status], message, status)

    @staticmethod
    def _raise_injected(decision: FaultDecision) -> None:
        if decision.error_status is not None:
            code, message = _FAULT_ERRORS.get(decision.error_status, ("InternalFailure", ""))
            raise ServiceError(code, message or f"Injected HTTP {decision.error_status}", decision.error_status)

    def _resolve_target(self, operation: Operation, body: dict[str, Any]) -> _Target:
        member = operation.target_member
        problems: list[str] = []
        if member not in body or body[member] is None:
            problems.append(f"{member}: required member is missing")
        else:
            check_shape(operation.input_shape.members[member], body[member], member, problems)
        if problems:
            raise RequestInvalid(problems)
        target = body[member]
        kind = operation.target_kind
        if kind in ("TRACKER", "ACTION_TRACKER"):
            trackers = self._trackers if kind == "TRACKER" else self._action_trackers
            group = trackers.get(target)
            if group is None:
                # NOTE: PutEvents models only InvalidInputException; what it answers for an unknown tracking id
                # is unverified. Assumption: ResourceNotFoundException, as the other four operations model.
                what = "event tracker" if kind == "TRACKER" else "action interactions event tracker"
                raise ServiceError("ResourceNotFoundException", f"Could not find {what} with trackingId {target}")
            schema_kind = operation.schema_kind
        else:
            found = self._datasets.get(target)
            if found is None:
                raise ServiceError("ResourceNotFoundException", f"Could not find dataset {target}")
            group, dataset_type = found
            if dataset_type != kind:
                raise ServiceError(
                    "InvalidInputException",
                    f"datasetArn: dataset {target} is of type {dataset_type}; {operation.name} needs {kind}",
                )
            if group.in_use:
                raise ServiceError("ResourceInUseException", f"Dataset group {group.name} is not ACTIVE")
            schema_kind = dataset_type
        return _Target(group.name, group.schemas.get(schema_kind))


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ServiceError("SerializationException", f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ServiceError("SerializationException", "Request body must be a JSON object")
    return body


def header_value(request: SignedRequest, name: str) -> str | None:
    values = request.headers.get(name)
    return values[0] if values else None


def attempt_number(sdk_request: str | None) -> int | None:
    # botocore sends "amz-sdk-request: attempt=2; max=5".
    for part in (sdk_request or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "attempt" and value.isdigit():
            return int(value)
    return None
