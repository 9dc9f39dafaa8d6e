"""Quotas per dataset group and operation answer HTTP 400 ThrottlingException, which boto3 retries."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from emulator.config import DEFAULT_DATASET_ARNS, dataset_arn, default_config, group_from_spec
from emulator.testing import EmulatorHandle, running_emulator

ITEMS = DEFAULT_DATASET_ARNS["ITEMS"]
USERS = DEFAULT_DATASET_ARNS["USERS"]


def test_call_over_the_quota_is_throttled(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN a PutItems quota of one request per 10 s (a bucket holds one request)
    emulator.set_quota("PutItems", 0.1)
    client.put_items(datasetArn=ITEMS, items=[{"itemId": "i-1"}])

    # WHEN a second PutItems follows at once, from a client that does not retry
    with pytest.raises(client.exceptions.ClientError) as throttled:
        client.put_items(datasetArn=ITEMS, items=[{"itemId": "i-2"}])

    # THEN it is answered 400 ThrottlingException and not stored, while PutUsers has its own quota
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    client.put_users(datasetArn=USERS, users=[{"userId": "u-1"}])
    assert [row["element"]["itemId"] for row in emulator.records("items")] == ["i-1"]
    assert emulator.counts()["users"] == 1


def test_quota_of_zero_is_unlimited(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN PutItems without a quota
    emulator.set_quota("PutItems", 0)

    # WHEN many calls follow each other
    for index in range(30):
        client.put_items(datasetArn=ITEMS, items=[{"itemId": f"i-{index}"}])

    # THEN none is throttled
    assert {call["status"] for call in emulator.calls()} == {200}


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_boto3_retries_throttled_calls_until_they_pass(
    emulator: EmulatorHandle, client_factory: Any, mode: str
) -> None:
    # GIVEN a PutItems quota of 5 requests/s and a client allowed 10 attempts per call
    emulator.set_quota("PutItems", 5)
    client = client_factory(max_attempts=10, mode=mode)

    # WHEN 15 calls are made back to back (three times what one second allows; unless each call took over 130 ms,
    # some must be throttled)
    for index in range(15):
        client.put_items(datasetArn=ITEMS, items=[{"itemId": f"i-{index}"}])

    # THEN every item is stored once, and the call log shows throttled attempts retried by the SDK until accepted
    assert [row["element"]["itemId"] for row in emulator.records("items")] == [f"i-{n}" for n in range(15)]
    attempts: dict[str, list[tuple[int | None, int]]] = defaultdict(list)
    for call in emulator.calls():
        attempts[call["invocationId"]].append((call["attempt"], call["status"]))
    retried = [history for history in attempts.values() if len(history) > 1]
    assert retried, "the quota should have throttled some calls"
    for history in attempts.values():
        assert [status for _, status in history] == [400] * (len(history) - 1) + [200]
    if mode == "standard":
        # NOTE: the standard retry mode numbers its attempts in the amz-sdk-request header.
        for history in retried:
            assert [attempt for attempt, _ in history] == list(range(1, len(history) + 1))
    assert {call["errorCode"] for call in emulator.calls() if call["status"] == 400} == {"ThrottlingException"}


def test_quota_can_differ_per_dataset_group(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN a tight PutItems quota on the demo group only
    emulator.set_quota("PutItems", 0.1, dataset_group="demo")

    # WHEN the quotas are read back
    rates = emulator.quotas()

    # THEN the group override is listed beside the unchanged default
    assert rates["groups"]["demo"]["PutItems"] == 0.1
    assert rates["default"]["PutItems"] == 10.0
    assert rates["default"]["PutEvents"] == 1000.0


def test_each_dataset_group_has_its_own_quota(boto3_session: Any) -> None:
    # GIVEN two dataset groups and a PutItems quota of one request per 10 s (a bucket holds one request)
    config = default_config()
    config.groups.append(group_from_spec("shop"))
    config.quotas["PutItems"] = 0.1
    shop_items = dataset_arn("shop", "ITEMS")
    with running_emulator(config) as emulator:
        client = boto3_session.client(
            "personalize-events", endpoint_url=emulator.url, config=Config(retries={"total_max_attempts": 1})
        )

        # WHEN each group gets two PutItems calls back to back, then the shop group's quota is lifted
        def put_items(dataset: str, item_id: str) -> str:
            try:
                client.put_items(datasetArn=dataset, items=[{"itemId": item_id}])
            except ClientError as error:
                return str(error.response["Error"]["Code"])
            return "OK"

        first_round = [put_items(dataset, f"i-{n}") for dataset in (ITEMS, shop_items) for n in (1, 2)]
        emulator.set_quota("PutItems", 0, dataset_group="shop")
        second_round = [put_items(dataset, "i-3") for dataset in (ITEMS, shop_items)]

        # THEN each group's first call passed on its own bucket and its second was throttled; after the change
        # only the demo group is still throttled
        assert first_round == ["OK", "ThrottlingException", "OK", "ThrottlingException"]
        assert second_round == ["ThrottlingException", "OK"]
        assert [(row["target"], row["element"]["itemId"]) for row in emulator.records("items")] == [
            (ITEMS, "i-1"),
            (shop_items, "i-1"),
            (shop_items, "i-3"),
        ]


def test_throttling_can_answer_429_which_boto3_also_retries(boto3_session: Any) -> None:
    # GIVEN an emulator answering throttling with 429 and throttling every PutItems call
    config = default_config()
    config.throttle_status = 429
    config.faults = {"throttleRate": 1.0}
    with running_emulator(config) as emulator:
        client = boto3_session.client(
            "personalize-events",
            endpoint_url=emulator.url,
            config=Config(retries={"total_max_attempts": 2, "mode": "standard"}),
        )

        # WHEN a call is made with one retry allowed
        with pytest.raises(ClientError) as throttled:
            client.put_items(datasetArn=ITEMS, items=[{"itemId": "i-1"}])

        # THEN both attempts were answered 429 TooManyRequestsException: boto3 retried the first
        assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert [(c["attempt"], c["status"], c["errorCode"]) for c in emulator.calls()] == [
            (1, 429, "TooManyRequestsException"),
            (2, 429, "TooManyRequestsException"),
        ]
