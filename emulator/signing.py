"""SigV4 checks: a well-formed Authorization header for service ``personalize``, and its signature.

The signature is recomputed with botocore's own ``SigV4Auth`` (canonical request, string to sign, key derivation)
over exactly the headers the client says it signed, so any SDK's signature verifies, not only botocore's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from emulator.operations import SIGNING_NAME

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
DEFAULT_MAX_CLOCK_SKEW_S = 5 * 60
"""How far a signature's X-Amz-Date may be from the emulator's clock by default."""


class AuthError(Exception):
    """The request is not (correctly) signed; answered with HTTP 403 and ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers."""

    method: str
    url: str
    headers: Mapping[str, list[str]]
    """Lower-cased header name -> every value received under that name."""
    body: bytes


class _ClientSignedHeaders(SigV4Auth):
    """SigV4Auth that signs exactly the headers the client listed (botocore would pick its own set)."""

    def __init__(self, credentials: Credentials, region: str, signed: list[str]) -> None:
        super().__init__(credentials, SIGNING_NAME, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                headers[name] = value
        return headers


def access_key_of(authorization: str | None) -> str | None:
    """Access key id named in an Authorization header, if it has one."""
    match = _AUTHORIZATION.match(authorization or "")
    return match["credential"].split("/")[0] if match else None


def verify(
    request: SignedRequest,
    credentials: Mapping[str, str] | None,
    *,
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
    now: float | None = None,
) -> str:
    """Check the request's SigV4 signature; return the access key id that signed it.

    Parameters
    ----------
    request
        The request as received.
    credentials
        Access key id -> secret key; None checks only that the header is well-formed (any key accepted, any
        signing time).
    max_clock_skew_s
        A signature whose X-Amz-Date is further than this from ``now`` is refused; 0 disables the check.
    now
        Current time in epoch seconds (default: the clock).

    Raises
    ------
    AuthError
        With the error code AWS answers: MissingAuthenticationTokenException (unsigned),
        IncompleteSignatureException (malformed), UnrecognizedClientException (unknown key) or
        InvalidSignatureException (wrong signature).
    """
    authorization = _single(request.headers, "authorization")
    if authorization is None:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization.strip())
    if match is None:
        raise AuthError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' (AWS4-HMAC-SHA256).",
        )
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not re.fullmatch(r"\d{8}", scope[1]) or not scope[2]:
        raise AuthError(
            "IncompleteSignatureException",
            "Credential must have the form <key>/<yyyymmdd>/<region>/<service>/aws4_request.",
        )
    access_key, date, region, service, _ = scope
    if service != SIGNING_NAME:
        raise AuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SIGNING_NAME}', not '{service}'.",
        )
    amz_date = _single(request.headers, "x-amz-date")
    if amz_date is None or not _AMZ_DATE.match(amz_date):
        raise AuthError("IncompleteSignatureException", "Missing or malformed X-Amz-Date header.")
    if amz_date[:8] != date:
        raise AuthError("InvalidSignatureException", "Credential date does not match X-Amz-Date.")
    if credentials is not None and max_clock_skew_s > 0:
        _check_clock_skew(amz_date, time.time() if now is None else now, max_clock_skew_s)
    signed = match["signed"].split(";")
    if "host" not in signed:
        raise AuthError("InvalidSignatureException", "The host header must be signed.")
    content_hash = _single(request.headers, "x-amz-content-sha256")
    if content_hash not in (None, "UNSIGNED-PAYLOAD") and content_hash != hashlib.sha256(request.body).hexdigest():
        raise AuthError("InvalidSignatureException", "The provided x-amz-content-sha256 does not match the body.")
    if credentials is None:
        return access_key
    secret = credentials.get(access_key)
    if secret is None:
        raise AuthError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if not hmac.compare_digest(
        _signature(request, signed, access_key, secret, region, amz_date), match["signature"]
    ):
        raise AuthError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method.",
        )
    return access_key


def _signature(
    request: SignedRequest, signed: list[str], access_key: str, secret: str, region: str, when: str
) -> str:
    aws_request = AWSRequest(method=request.method, url=request.url, data=request.body)
    for name in signed:
        for value in request.headers.get(name, []):
            # NOTE: HTTPHeaders' item assignment appends, so a header sent twice keeps both values.
            aws_request.headers[name] = value
    aws_request.context["timestamp"] = when
    signer = _ClientSignedHeaders(Credentials(access_key, secret), region, signed)
    canonical = signer.canonical_request(aws_request)
    return str(signer.signature(signer.string_to_sign(aws_request, canonical), aws_request))


def _check_clock_skew(amz_date: str, now: float, max_skew_s: float) -> None:
    # NOTE: IAM's SigV4 documentation: "The signed portions (using AWS Signatures) of requests are valid within
    # five minutes of the timestamp in the request" (replay protection). AWS JSON services answer
    # "Signature expired: ... is now earlier than ... (... - 5 min.)" outside that window.
    try:
        signed_at = datetime.strptime(amz_date, _SIGV4_TIMESTAMP).replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise AuthError("IncompleteSignatureException", "Malformed X-Amz-Date header.") from exc
    window = timedelta(seconds=max_skew_s)
    minutes = f"{max_skew_s / 60:g} min."
    current = datetime.fromtimestamp(now, UTC)
    if now - signed_at > max_skew_s:
        earliest = (current - window).strftime(_SIGV4_TIMESTAMP)
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {earliest} "
            f"({current.strftime(_SIGV4_TIMESTAMP)} - {minutes})",
        )
    if signed_at - now > max_skew_s:
        latest = (current + window).strftime(_SIGV4_TIMESTAMP)
        raise AuthError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than {latest} "
            f"({current.strftime(_SIGV4_TIMESTAMP)} + {minutes})",
        )


def _single(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return ",".join(values) if values else None
