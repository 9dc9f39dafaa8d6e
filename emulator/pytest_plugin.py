"""pytest fixtures that start the emulator on a free loopback port (registered in tests/conftest.py).

- ``emulator_server`` (session): one emulator with the default ``demo`` resources for the whole run.
- ``emulator`` (function): the same emulator with an empty store and its starting faults and quotas, and
  ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS`` pointing boto3 at it for this test.

Sharing one server is safe for statistical tests: the reset starts a new generation, so a request an earlier test
left in flight (slowed by injected latency, or abandoned by a client that timed out) is answered 503 without
drawing from the fault sequence or reaching this test's call log and store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.testing import EmulatorHandle, running_emulator


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorHandle]:
    """An emulator serving the ``demo`` dataset group, started once per test session."""
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def emulator(emulator_server: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """The session emulator, reset, with boto3's personalize-events endpoint variable pointing at it."""
    emulator_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", emulator_server.url)
    return emulator_server
