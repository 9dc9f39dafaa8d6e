"""The lean call path: a Personalize call without botocore's per-call pipeline, same wire bytes, same retries.

:class:`DirectCall` makes ``client.put_events(**params)`` (or ``put_items`` ...) for one boto3 client, with the
client's own endpoint, credentials, HTTP session (connection pool, timeouts, TLS, proxies), response parser,
exception classes and retry handler, but without the work botocore repeats on every call although nothing in it
changes between calls of one operation: endpoint rule resolution, request dict and ``AWSRequest`` objects, the
generic serializer's walk of the model, a dozen event emissions with their handler look-ups, and the signing
key's four HMACs.

What it does per call, in botocore's order (``BaseClient._make_api_call`` / ``Endpoint._send_request``):

1. serialise ``params`` with ``json.dumps`` - the rest-json body botocore builds for these operations, timestamps
   written with botocore's own formula (tests compare the bytes with botocore's serializer);
2. per attempt: the deadline and rate-limit check of :mod:`personalize_ingest.clients` (botocore's
   ``before-send`` hook), SigV4 with the signing key cached per day, region and secret, the same headers in the
   same order, sent on a kept-alive ``http.client`` connection (:mod:`personalize_ingest.transport`; the client's
   ``http_session`` when a proxy applies);
3. parse the answer with the client's own parser, emit ``needs-retry`` on the client's event system so its
   standard-mode retry handler (conditions, backoff with jitter, retry quota) and the throttling counter decide
   as they do for a botocore call; sleep the delay it returns;
4. emit ``after-call`` (the retry quota's refund) and raise the client's modelled exception class for an error
   answer, or the last exception (timeouts, connection errors) - exactly what the client method raises.

Not emitted: ``before-call``, ``request-created`` (botocore's signer listens there; so does Powertools, which adds
``PT/...`` to the User-Agent: that telemetry suffix is the one byte difference on the wire), ``before-send``
(the deadline hook is called directly), ``response-received``. On retries botocore adds a ``ttl=`` to the
``amz-sdk-request`` header when the previous answer had a ``Date`` header; the lean path: attempt and max.

``PERSONALIZE_CALL_PATH=botocore`` (see :mod:`personalize_ingest.config`) sends through the client method instead.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.awsrequest import AWSPreparedRequest
from botocore.endpoint import convert_to_response_dict
from botocore.exceptions import NoCredentialsError
from botocore.utils import normalize_url_path

from personalize_ingest.clients import before_attempt, before_backoff
from personalize_ingest.config import Settings
from personalize_ingest.entities import Entity
from personalize_ingest.transport import Transport

SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIGNED_HEADERS_BLOCKLIST = frozenset({"expect", "transfer-encoding", "user-agent", "x-amzn-trace-id"})
"""Headers SigV4 leaves unsigned (botocore.auth.SIGNED_HEADERS_BLACKLIST)."""


def wire_timestamp(value: Any) -> Any:
    """``value`` (epoch seconds, or an aware datetime) as botocore's rest-json serializer writes it.

    # NOTE: botocore >= 1.42 writes fractional seconds (microsecond precision) and whole seconds as an integer:
    # ``calendar.timegm(dt.timetuple())`` plus ``dt.microsecond`` added as integers before dividing.
    """
    if isinstance(value, datetime):
        # NOTE: the exact integer seconds of an aware datetime, without timetuple() (same value as timegm's).
        delta = value - _EPOCH
        seconds, microsecond = delta.days * 86_400 + delta.seconds, delta.microseconds
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
        seconds, microsecond = calendar.timegm(moment.timetuple()), moment.microsecond
    else:
        return value
    if microsecond > 0:
        return (seconds * 10**6 + microsecond) / 10**6
    return seconds


class _SigningKeys:
    """SigV4 signing keys by (secret, date, region, service): four HMACs once a day instead of on every call."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def key(self, secret: str, date: str, region: str, service: str) -> bytes:
        cache_key = (secret, date, region, service)
        found = self._keys.get(cache_key)
        if found is None:
            k_date = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
            k_region = hmac.new(k_date, region.encode(), hashlib.sha256).digest()
            k_service = hmac.new(k_region, service.encode(), hashlib.sha256).digest()
            found = hmac.new(k_service, b"aws4_request", hashlib.sha256).digest()
            with self._lock:
                if len(self._keys) > 16:
                    self._keys.clear()
                self._keys[cache_key] = found
        return found


_signing_keys = _SigningKeys()


class DirectCall:
    """``client.<entity.method>(**params)`` through the lean path; see the module docstring.

    Parameters
    ----------
    client
        A personalize-events client (its configuration, pool and retry handler are used as they are).
    entity
        The entity whose operation is called.
    """

    def __init__(self, client: Any, entity: Entity) -> None:
        meta = client.meta
        self._client = client
        self._events = meta.events
        self._operation = meta.service_model.operation_model(entity.operation)
        self._operation_name = entity.operation
        self._service_id = meta.service_model.service_id.hyphenize()
        self._endpoint = client._endpoint
        self._http_session = self._endpoint.http_session
        self._parser = self._endpoint._response_parser_factory.create_parser(meta.service_model.resolved_protocol)
        self._signer = client._request_signer
        self._region = self._signer.region_name
        self._signing_name = self._signer.signing_name
        self._list_member = entity.list_member
        self._timestamp_member = entity.timestamp_member
        self._max_attempts = int(meta.config.retries.get("total_max_attempts") or 3)
        self._user_agent = client._user_agent_creator.to_string()
        self._url: str | None = None
        self._host = ""
        self._path = ""
        self._extra_headers: dict[str, str] = {}
        self._transport: Transport | None = None

    def __call__(self, **params: Any) -> dict[str, Any]:
        """Make the call; returns the parsed response or raises what the client method would raise."""
        if self._url is None:
            self._resolve_endpoint(params)
        body = self.serialize(params)
        credentials = self._signer._credentials
        if credentials is None:
            raise NoCredentialsError()
        context: dict[str, Any] = {"client_region": self._region, "client_config": self._client.meta.config}
        request_dict = {"context": context, "body": body}
        invocation_id = str(uuid.uuid4())
        attempts = 1
        while True:
            context["retries"] = {"attempt": attempts, "invocation-id": invocation_id}
            before_attempt()
            request = self._request(body, credentials.get_frozen_credentials(), invocation_id, attempts)
            response: tuple[Any, dict[str, Any]] | None = None
            caught: Exception | None = None
            try:
                http = self._transport.send(request) if self._transport else self._http_session.send(request)
            except Exception as exc:
                caught = exc
            else:
                response = (http, self._parse(http))
            if not self._needs_retry(attempts, request_dict, response, caught):
                break
            attempts += 1
        if response is not None and "ResponseMetadata" in response[1]:
            response[1]["ResponseMetadata"]["RetryAttempts"] = attempts - 1
        if caught is not None:
            raise caught
        assert response is not None
        http, parsed = response
        self._events.emit(
            f"after-call.{self._service_id}.{self._operation_name}",
            http_response=http,
            parsed=parsed,
            model=self._operation,
            context=context,
        )
        if http.status_code >= 300:
            code = parsed.get("Error", {}).get("Code")
            raise self._client.exceptions.from_code(code)(parsed, self._operation_name)
        return parsed

    # ------------------------------------------------------------------------------------------------ request

    def serialize(self, params: dict[str, Any]) -> bytes:
        """The rest-json body of ``params`` as botocore writes it (member order kept, ASCII-escaped)."""
        member = self._timestamp_member
        if member is not None and self._list_member in params:
            params = dict(params)
            params[self._list_member] = [
                {**element, member: wire_timestamp(element[member])} if member in element else element
                for element in params[self._list_member]
            ]
        return json.dumps(params).encode("utf-8")

    def _resolve_endpoint(self, params: dict[str, Any]) -> None:
        # NOTE: resolved once through the client's own endpoint rules (custom endpoint, FIPS, dual-stack ...); the
        # personalize-events rules depend on the region and configuration only, never on a call's parameters.
        url, headers, _ = self._client._resolve_endpoint_ruleset(
            self._operation, params, {"client_region": self._region, "client_config": self._client.meta.config}
        )
        request_uri = self._operation.http["requestUri"]
        full = url.rstrip("/") + request_uri
        parts = urlsplit(full)
        host = parts.hostname or ""
        default_port = {"http": 80, "https": 443}.get(parts.scheme)
        if parts.port is not None and parts.port != default_port:
            host = f"{host}:{parts.port}"
        self._host = host
        self._path = quote(normalize_url_path(parts.path), safe="/~")
        self._extra_headers = dict(headers or {})
        self._url = full
        self._transport = Transport.for_client(self._client, full)

    def _request(
        self, body: bytes, credentials: Any, invocation_id: str, attempt: int, now: datetime | None = None
    ) -> AWSPreparedRequest:
        timestamp = (now or datetime.now(UTC)).strftime(SIGV4_TIMESTAMP)
        date = timestamp[:8]
        headers: dict[str, str] = {**self._extra_headers, "Content-Type": "application/json"}
        headers["User-Agent"] = self._user_agent
        headers["X-Amz-Date"] = timestamp
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        signed = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
        for name in _SIGNED_HEADERS_BLOCKLIST.intersection(signed):
            del signed[name]
        signed["host"] = self._host
        names = sorted(signed)
        signed_headers = ";".join(names)
        canonical = "\n".join(
            (
                "POST",
                self._path,
                "",
                "\n".join(f"{name}:{signed[name]}" for name in names) + "\n",
                signed_headers,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{date}/{self._region}/{self._signing_name}/aws4_request"
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
        )
        key = _signing_keys.key(credentials.secret_key, date, self._region, self._signing_name)
        signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )
        headers["amz-sdk-invocation-id"] = invocation_id
        headers["amz-sdk-request"] = f"attempt={attempt}; max={self._max_attempts}"
        headers["Content-Length"] = str(len(body))
        assert self._url is not None
        encoded = {name: value.encode("utf-8") for name, value in headers.items()}
        # NOTE: a plain dict where botocore passes HTTPHeaders: urllib3 only iterates and reads it, and the names
        # are unique here.
        return AWSPreparedRequest("POST", self._url, encoded, body, stream_output=False)  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------------------------ response

    def _parse(self, http: Any) -> dict[str, Any]:
        response_dict = convert_to_response_dict(http, self._operation)
        parsed: dict[str, Any] = self._parser.parse(response_dict, self._operation.output_shape)
        if http.status_code >= 300:
            code = parsed.get("Error", {}).get("Code")
            error_shape = self._operation.service_model.shape_for_error_code(code) if code else None
            if error_shape is not None:
                parsed.update(self._parser.parse(response_dict, error_shape))
        return parsed

    def _needs_retry(
        self,
        attempts: int,
        request_dict: dict[str, Any],
        response: tuple[Any, dict[str, Any]] | None,
        caught: Exception | None,
    ) -> bool:
        responses = self._events.emit(
            f"needs-retry.{self._service_id}.{self._operation_name}",
            response=response,
            endpoint=self._endpoint,
            operation=self._operation,
            attempts=attempts,
            caught_exception=caught,
            request_dict=request_dict,
        )
        delay = next((answer for _, answer in responses if answer is not None), None)
        if delay is None or delay is False:
            return False
        # NOTE: botocore would sleep first and only then find the margin reached; here that time is not wasted.
        before_backoff(delay)
        time.sleep(delay)
        return True


_direct_calls: weakref.WeakKeyDictionary[Any, dict[str, DirectCall]] = weakref.WeakKeyDictionary()
_direct_lock = threading.Lock()


def call_for(client: Any, entity: Entity, *, direct: bool) -> Callable[..., Any]:
    """The function that makes ``entity``'s call with ``client``: the lean :class:`DirectCall` when ``direct``
    (one per client and entity, kept as long as the client), else the client's own method."""
    if not direct:
        return getattr(client, entity.method)
    with _direct_lock:
        per_client = _direct_calls.setdefault(client, {})
        call = per_client.get(entity.name)
        if call is None:
            call = per_client[entity.name] = DirectCall(client, entity)
        return call


def direct_calls(settings: Settings, injected_client: Any) -> bool:
    """Whether a deliverer takes the lean path: by configuration, and only with a client the factory built (an
    injected client - a test's, a caller's with its own configuration - is used through its own methods)."""
    return injected_client is None and settings.call_path == "direct"
