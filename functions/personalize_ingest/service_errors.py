"""What an error answer of the Personalize Events service means for the records of the call.

- **refused**: the service refused the content of the call; splitting it finds the records it refuses.
- **configuration**: no record can succeed until someone fixes the function's target, role or credentials; the
  target gets no more calls in this invocation, and no record is set aside for it.
- **retryable**: throttling and 5xx after every attempt botocore allowed; a later round may succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from botocore.exceptions import ClientError

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


class ErrorKind(Enum):
    REFUSED = "refused"
    CONFIGURATION = "configuration"
    RETRYABLE = "retryable"


@dataclass(frozen=True, slots=True)
class ServiceError:
    """One error answer, classified: its kind, the service's code and message, and the HTTP status."""

    kind: ErrorKind
    code: str
    message: str
    status: int | None


def classify(exc: ClientError) -> ServiceError:
    """Classify a botocore ``ClientError`` raised by a Personalize Events call (after botocore's retries).

    Any 401 or 403 counts as a configuration error, whatever its code; an unknown code is retryable.
    """
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", "")) or code
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in INVALID_INPUT_CODES:
        kind = ErrorKind.REFUSED
    elif code in CONFIGURATION_ERROR_CODES or status in (401, 403):
        kind = ErrorKind.CONFIGURATION
    else:
        kind = ErrorKind.RETRYABLE
    return ServiceError(kind, code, message, status)
