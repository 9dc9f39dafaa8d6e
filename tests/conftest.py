"""Fixtures shared by every test layer.

Every AWS client in the tests and in the code under test is an unmodified boto3 client: endpoints come only
from boto3's standard variables (``AWS_ENDPOINT_URL`` for moto, ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS`` for the
emulator), credentials are fake, and nothing leaves the loopback interface.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.environment import FAKE_CREDENTIALS, LEAKY_VARIABLES
from tests.support.moto import running_moto

pytest_plugins = ["emulator.pytest_plugin"]

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "personalize-ingest-tests")

FAKE_AWS = {
    **FAKE_CREDENTIALS,
    "POWERTOOLS_METRICS_NAMESPACE": "PersonalizeIngestTests",
    "POWERTOOLS_SERVICE_NAME": "personalize-ingest-tests",
    "POWERTOOLS_DEV": "false",
}


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region for every test; no profile or real endpoint can leak in."""
    for name in LEAKY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def fresh_container_latency() -> Iterator[None]:
    """Every test starts as a cold container: no service latency observed by an earlier test."""
    from personalize_ingest.latency import SERVICE_LATENCY

    SERVICE_LATENCY.clear()
    yield
    SERVICE_LATENCY.clear()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """URL of a moto server (Kinesis, SQS, S3) started once for the session on a free loopback port."""
    with running_moto() as url:
        yield url


@pytest.fixture
def moto_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3's generic endpoint variable at moto for this test; return the URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url
