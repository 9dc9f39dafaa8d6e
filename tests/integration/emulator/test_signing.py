"""SigV4: unsigned, malformed, unknown-key and badly signed requests are refused with 403 and stored nowhere."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from emulator.config import DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID, EmulatorConfig, default_config
from emulator.testing import EmulatorHandle, running_emulator
from tests.integration.emulator.conftest import event, raw_post

ITEMS_BODY = {"datasetArn": DEFAULT_DATASET_ARNS["ITEMS"], "items": [{"itemId": "i-1"}]}


def _replace_body(request: AWSRequest) -> None:
    request.data = json.dumps({**ITEMS_BODY, "items": [{"itemId": "i-2"}]}).encode()


def _drop_authorization(request: AWSRequest) -> None:
    del request.headers["Authorization"]


def _mangle_authorization(request: AWSRequest) -> None:
    request.headers.replace_header("Authorization", "AWS4-HMAC-SHA256 Credential=testing")


REFUSALS = [
    ("unsigned", {"access_key": None}, None, "MissingAuthenticationTokenException"),
    ("authorization removed", {}, _drop_authorization, "MissingAuthenticationTokenException"),
    ("authorization malformed", {}, _mangle_authorization, "IncompleteSignatureException"),
    ("wrong service in scope", {"service": "personalize-events"}, None, "InvalidSignatureException"),
    ("wrong secret", {"secret": "not-the-secret"}, None, "InvalidSignatureException"),
    ("unknown access key", {"access_key": "AKIAUNKNOWN"}, None, "UnrecognizedClientException"),
    ("body changed after signing", {}, _replace_body, "InvalidSignatureException"),
]


@pytest.mark.parametrize(
    ("signing", "tamper", "code"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_request_not_correctly_signed_is_refused(
    emulator: EmulatorHandle, signing: dict[str, Any], tamper: Any, code: str
) -> None:
    # GIVEN a PutItems request signed wrongly (or not at all)
    # WHEN it is posted
    answer = raw_post(emulator.url, "/items", ITEMS_BODY, tamper=tamper, **signing)

    # THEN it is refused with 403 and the AWS error code, and nothing is stored
    assert (answer.status, answer.error_code) == (403, code)
    assert emulator.counts()["items"] == 0
    assert [(call["status"], call["errorCode"]) for call in emulator.calls()] == [(403, code)]


@pytest.mark.parametrize(
    ("offset_s", "message"),
    [(-10 * 60, "Signature expired"), (10 * 60, "Signature not yet current")],
    ids=["signed 10 minutes ago", "signed 10 minutes ahead"],
)
def test_signature_outside_the_5_minute_window_is_refused(
    emulator: EmulatorHandle, offset_s: float, message: str
) -> None:
    # GIVEN a PutItems request correctly signed, but by a client whose clock is 10 minutes off
    # WHEN it is posted
    answer = raw_post(emulator.url, "/items", ITEMS_BODY, signed_offset_s=offset_s)

    # THEN it is refused as AWS refuses a replayed or mistimed signature, and nothing is stored
    assert (answer.status, answer.error_code) == (403, "InvalidSignatureException")
    assert answer.body["message"].startswith(message)
    assert emulator.counts()["items"] == 0


def test_signature_within_the_5_minute_window_is_accepted(emulator: EmulatorHandle) -> None:
    # GIVEN a PutItems request signed by a client whose clock is 3 minutes behind
    # WHEN it is posted
    answer = raw_post(emulator.url, "/items", ITEMS_BODY, signed_offset_s=-3 * 60)

    # THEN it is accepted
    assert answer.status == 200
    assert emulator.elements("items") == ITEMS_BODY["items"]


def test_clock_skew_check_can_be_disabled_for_frozen_clocks() -> None:
    # GIVEN an emulator configured without the clock-skew check (tests that freeze time)
    config = default_config()
    config.max_clock_skew_s = 0
    with running_emulator(config) as emulator:
        # WHEN a request signed an hour ago is posted
        answer = raw_post(emulator.url, "/items", ITEMS_BODY, signed_offset_s=-3600)

        # THEN it is accepted: the signature itself is still verified
        assert answer.status == 200
        assert emulator.elements("items") == ITEMS_BODY["items"]


def test_correctly_signed_raw_request_is_accepted(emulator: EmulatorHandle) -> None:
    # GIVEN the same request correctly signed by a generic SigV4 signer
    # WHEN it is posted
    answer = raw_post(emulator.url, "/items", ITEMS_BODY)

    # THEN it is accepted
    assert answer.status == 200
    assert emulator.elements("items") == ITEMS_BODY["items"]


def test_boto3_with_wrong_secret_gets_client_error(
    emulator: EmulatorHandle, client_factory: Any, monkeypatch: pytest.MonkeyPatch, boto3_session: Any
) -> None:
    # GIVEN a boto3 client whose secret key the emulator does not accept
    client = boto3_session.client(
        "personalize-events", aws_access_key_id="testing", aws_secret_access_key="wrong", aws_session_token="t"
    )

    # WHEN it puts an event
    with pytest.raises(ClientError) as refused:
        client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s", eventList=[event()])

    # THEN botocore raises the signature error and nothing is stored
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert emulator.counts()["events"] == 0


def test_signature_check_can_be_relaxed_to_well_formed_headers() -> None:
    # GIVEN an emulator that does not verify signatures
    config: EmulatorConfig = default_config()
    config.verify_signatures = False
    with running_emulator(config) as emulator:
        # WHEN one request is signed with an unknown key and another is not signed
        any_key = raw_post(emulator.url, "/items", ITEMS_BODY, access_key="anyone", secret="anything")
        unsigned = raw_post(emulator.url, "/items", ITEMS_BODY, access_key=None)

        # THEN the signed one is accepted, the unsigned one still refused
        assert any_key.status == 200
        assert (unsigned.status, unsigned.error_code) == (403, "MissingAuthenticationTokenException")
