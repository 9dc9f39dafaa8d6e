"""A moto server (Kinesis, SQS, S3) on a free loopback port, reached over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer


@contextmanager
def running_moto() -> Iterator[str]:
    """Start moto on 127.0.0.1 with a free port; yield its URL; stop it on exit."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        port = server._server.server_port  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
