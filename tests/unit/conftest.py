"""Unit tests never touch the network: sockets are disabled for every test in this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    pytest_socket.disable_socket()
    yield
    pytest_socket.enable_socket()
