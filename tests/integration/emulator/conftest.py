"""Plain boto3 clients for the emulator tests: the endpoint comes only from AWS_ENDPOINT_URL_PERSONALIZE_EVENTS."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from emulator.testing import EmulatorHandle

ClientFactory = Callable[..., Any]


@pytest.fixture(scope="session")
def boto3_session() -> boto3.session.Session:
    """One boto3 session for the run: its loaders cache the service model (a new session costs ~0.2 s)."""
    return boto3.session.Session()


@pytest.fixture
def client_factory(emulator: EmulatorHandle, boto3_session: boto3.session.Session) -> ClientFactory:
    """Build personalize-events clients (after the ``emulator`` fixture set the endpoint variable)."""

    def make(max_attempts: int = 1, mode: str = "standard", validate: bool = True) -> Any:
        # parameter_validation=False lets a test send what botocore would refuse client-side (wrong types,
        # missing members), to see the emulator refuse it.
        retries: Any = {"total_max_attempts": max_attempts, "mode": mode}
        config = Config(
            retries=retries,
            parameter_validation=validate,
            connect_timeout=5,
            read_timeout=10,
        )
        return boto3_session.client("personalize-events", config=config)

    return make


@pytest.fixture
def client(client_factory: ClientFactory) -> Any:
    """A personalize-events client that does not retry, so every answer is seen as the emulator gave it."""
    return client_factory()


@pytest.fixture
def raw_client(client_factory: ClientFactory) -> Any:
    """A client without botocore's parameter validation: only the emulator judges what it sends."""
    return client_factory(validate=False)


def event(**overrides: Any) -> dict[str, Any]:
    """A valid PutEvents element; ``overrides`` replace or add members."""
    return {"eventType": "click", "sentAt": int(time.time()), "itemId": "item-1", **overrides}


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: Any
    """Decoded JSON body, or None when empty."""

    @property
    def error_code(self) -> str | None:
        return self.body.get("__type") if isinstance(self.body, dict) else None


class _SigV4At(SigV4Auth):
    """botocore's SigV4 signer with a chosen signing time instead of the clock's."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed_at: datetime) -> None:
        super().__init__(credentials, service, region)
        self._signed_at = signed_at

    def add_auth(self, request: AWSRequest) -> None:
        # Same steps as SigV4Auth.add_auth, whose timestamp comes from the clock.
        request.context["timestamp"] = self._signed_at.strftime("%Y%m%dT%H%M%SZ")
        self._modify_request_before_signing(request)
        string_to_sign = self.string_to_sign(request, self.canonical_request(request))
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


def raw_post(
    url: str,
    path: str,
    body: Any,
    *,
    access_key: str | None = "testing",
    secret: str = "testing",
    service: str = "personalize",
    tamper: Callable[[AWSRequest], None] | None = None,
    signed_offset_s: float = 0.0,
) -> RawAnswer:
    """POST a JSON document the way any SDK would, signed with SigV4 unless ``access_key`` is None.

    ``tamper`` may change the request after signing (to test that the signature covers what it should);
    ``signed_offset_s`` moves the signing time (X-Amz-Date) away from now, as a client with a wrong clock would.
    """
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = AWSRequest(
        method="POST", url=f"{url}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    if access_key is not None:
        signed_at = datetime.now(UTC) + timedelta(seconds=signed_offset_s)
        _SigV4At(Credentials(access_key, secret), service, "us-east-1", signed_at).add_auth(request)
    if tamper is not None:
        tamper(request)
    prepared = urllib.request.Request(
        f"{url}{path}", data=request.data, method="POST", headers=dict(request.headers)
    )
    try:
        with urllib.request.urlopen(prepared, timeout=10) as response:
            status, headers, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, payload = exc.code, dict(exc.headers), exc.read()
    return RawAnswer(status, headers, json.loads(payload) if payload else None)
