from __future__ import annotations

import pytest

from personalize_ingest.config import ConfigurationError, Settings
from personalize_ingest.entities import EVENTS, ITEMS, USERS

ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


def test_defaults_follow_the_entity_quota() -> None:
    # GIVEN only the target
    # WHEN the settings are read
    items = Settings.from_env(ITEMS, {"PERSONALIZE_DATASET_ARN": ITEMS_ARN})
    events = Settings.from_env(EVENTS, {"PERSONALIZE_TRACKING_ID": "a1b2c3d4-0000-4000-8000-000000000000"})
    # THEN the 10 req/s operations are rate limited and PutEvents is not
    assert items.calls_per_second == 10.0
    assert events.calls_per_second == 0.0
    assert items.rejects_queue_url is None and events.default_event_type is None


def test_missing_target_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="PERSONALIZE_TRACKING_ID"):
        Settings.from_env(EVENTS, {})


def test_dataset_arn_of_another_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"PERSONALIZE_DATASET_ARN must be a dataset ARN of type USERS"):
        Settings.from_env(USERS, {"PERSONALIZE_DATASET_ARN": ITEMS_ARN})


def test_malformed_tunable_names_the_variable() -> None:
    env = {"PERSONALIZE_DATASET_ARN": ITEMS_ARN, "MAX_CONCURRENT_CALLS": "many"}
    with pytest.raises(ConfigurationError, match="MAX_CONCURRENT_CALLS must be a int"):
        Settings.from_env(ITEMS, env)


def test_tracking_id_with_spaces_is_malformed() -> None:
    with pytest.raises(ConfigurationError, match="PERSONALIZE_TRACKING_ID must be"):
        Settings.from_env(EVENTS, {"PERSONALIZE_TRACKING_ID": "not a tracking id"})


def test_the_call_path_is_direct_unless_botocore_is_asked_for() -> None:
    # GIVEN no choice, an explicit botocore and a typo
    default = Settings.from_env(ITEMS, {"PERSONALIZE_DATASET_ARN": ITEMS_ARN})
    chosen = Settings.from_env(ITEMS, {"PERSONALIZE_DATASET_ARN": ITEMS_ARN, "PERSONALIZE_CALL_PATH": "Botocore"})
    # THEN the lean path is the default, botocore is honoured, and a typo names the variable and the choices
    assert (default.call_path, chosen.call_path) == ("direct", "botocore")
    with pytest.raises(ConfigurationError, match="PERSONALIZE_CALL_PATH must be one of direct, botocore"):
        Settings.from_env(ITEMS, {"PERSONALIZE_DATASET_ARN": ITEMS_ARN, "PERSONALIZE_CALL_PATH": "fast"})
