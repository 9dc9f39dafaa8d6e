"""The HTTP front end: a threaded stdlib server routing the five operation paths and the admin API."""

from __future__ import annotations

import contextlib
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulator.admin import ADMIN_PREFIX, handle_admin
from emulator.control_plane import TARGET_PREFIX
from emulator.operations import operations_by_path
from emulator.service import Answer, Emulator, error_answer
from emulator.signing import SignedRequest

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 128
"""Pending connections the listening socket holds (socketserver's default is 5): a burst of clients opening
connections at once - a function's delivery threads after a cold start, many functions - is queued, not refused."""


class EmulatorServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that carries the emulator state its handlers use."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.stopping = False
        """Set by ``stop``: requests still arriving on kept-alive connections are turned away (503)."""

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop serving cleanly: accept nothing new, let requests in flight finish (up to ``grace_s``), close.

        Call from another thread than the one running ``serve_forever``, which has returned when this does.
        The store stays open (its owner closes it).
        """
        self.shutdown()
        # NOTE: handler threads of kept-alive connections outlive shutdown(); from here they answer any further
        # request 503 and close, so nothing touches the store once the requests in flight are done.
        self.emulator.refuse_requests()
        self.stopping = True
        if not self.emulator.wait_idle(grace_s):
            logger.warning("stopping with %d request(s) still in flight", self.emulator.in_flight)
        self.server_close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    # NOTE: HTTP/1.1 keeps connections alive, as botocore's urllib3 pool expects; every answer has Content-Length.
    protocol_version = "HTTP/1.1"
    # NOTE: headers and body go out in separate writes; with Nagle's algorithm and the client's delayed ACKs each
    # answer with a body would wait ~40 ms.
    disable_nagle_algorithm = True
    server_version = "PersonalizeEventsEmulator"
    server: EmulatorServer
    _generation: int | None = None
    """Generation the current operation request was read in; None for admin requests and between requests."""

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError as exc:
            # A client that timed out or gave up closed its connection before the answer was written (or while
            # the next request was awaited): nothing is wrong with the emulator, so no traceback.
            logger.info("connection from %s dropped by the client: %s", self.address_string(), type(exc).__name__)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            if self._generation is not None:
                self._generation = None
                self.server.emulator.end_request()

    def parse_request(self) -> bool:
        # Runs as soon as the request line was read: the request belongs to the emulator's generation of now,
        # however long its body, its fault latency or its answer take.
        parsed = super().parse_request()
        if parsed and not self.path.startswith(ADMIN_PREFIX):
            self._generation = self.server.emulator.begin_request()
            if self._generation is None:
                self.close_connection = True
                self._send(error_answer(503, "ServiceUnavailable", "The emulator is stopping.", ""))
                return False
        return parsed

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        emulator = self.server.emulator
        if path.startswith(ADMIN_PREFIX):
            self._send(handle_admin(emulator, self.command, path, query, body))
            return
        amz_target = self.headers.get("X-Amz-Target") or ""
        operation = operations_by_path().get(path)
        if path == "/" and amz_target.startswith(TARGET_PREFIX) and self.command == "POST":
            self._send(emulator.control_plane.call(amz_target, self._signed_request(body)))
            return
        if operation is None or self.command != "POST":
            self._send(
                error_answer(404, "UnknownOperationException", f"No operation at {self.command} {path}", "")
            )
            return
        self._send(emulator.call(operation, self._signed_request(body), self._generation))

    def _signed_request(self, body: bytes) -> SignedRequest:
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        host = self.headers.get("Host") or self.server.url.removeprefix("http://")
        return SignedRequest(self.command, f"http://{host}{self.path}", headers, body)

    def _read_body(self) -> bytes:
        # NOTE: SDKs send JSON bodies with Content-Length, but HTTP/1.1 clients may stream them chunked
        # (RFC 9112 section 7.1); the signature covers the decoded body either way.
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # Trailer section: header lines up to an empty line.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, answer: Answer) -> None:
        if answer.drop:
            # NOTE: close without any status line: clients see a connection reset / closed before a response.
            logger.info("connection from %s dropped without an answer (injected fault)", self.address_string())
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)


def make_server(emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
    """Bind (port 0 = a free port) without serving yet; call ``serve_forever`` on the result."""
    return EmulatorServer((host, port), emulator)
