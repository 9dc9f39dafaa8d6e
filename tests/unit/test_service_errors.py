"""What an error answer of the service means: refused content, a configuration error, or worth another round."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from personalize_ingest.service_errors import ErrorKind, classify


def client_error(code: str, status: int, message: str = "") -> ClientError:
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutEvents")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("InvalidInputException", 400, ErrorKind.REFUSED),
        ("ValidationException", 400, ErrorKind.REFUSED),
        ("ResourceNotFoundException", 404, ErrorKind.CONFIGURATION),
        ("AccessDeniedException", 400, ErrorKind.CONFIGURATION),
        ("SomethingNew", 403, ErrorKind.CONFIGURATION),
        ("ThrottlingException", 400, ErrorKind.RETRYABLE),
        ("InternalServerError", 500, ErrorKind.RETRYABLE),
    ],
)
def test_each_error_answer_gets_its_kind(code: str, status: int, kind: ErrorKind) -> None:
    error = classify(client_error(code, status, "why"))
    assert (error.kind, error.code, error.message, error.status) == (kind, code, "why", status)


def test_an_answer_without_a_message_is_described_by_its_code() -> None:
    assert classify(client_error("InternalServerError", 500)).message == "InternalServerError"
