"""HTTP/1.1 keep-alive connections for the lean call path, one per thread, raising botocore's error classes.

Measured on 300 PutEvents calls of ten against the emulator (CPU of the calling process only): botocore's
``URLLib3Session.send`` costs ~620 us per call (urllib3's pool, ``Timeout`` and ``Retry`` objects, its response
wrapper, botocore's ``AWSResponse`` around it), ``http.client`` on a kept-alive connection ~180 us. The wire bytes
are the same: urllib3 sends through ``http.client`` too (``Host`` and ``Accept-Encoding: identity`` first, then the
request's headers in order; tests/integration/test_calls.py compares them).

What urllib3 and botocore do that matters here, done here the same way:

- the client's connect and read timeouts, TCP keep-alive when configured, TLS verified against botocore's CA bundle
  (or the ``verify`` path the client was given), the endpoint's host name for SNI;
- a kept-alive connection the server closed is noticed before it is reused (the socket is readable) and replaced;
- errors become botocore's: ``ConnectTimeoutError``, ``EndpointConnectionError``, ``SSLError``,
  ``ReadTimeoutError``, ``ConnectionClosedError`` (which standard retries treat as transient), ``HTTPClientError``.

A client configured with a proxy (or ``HTTP(S)_PROXY`` applying to the endpoint) gets no transport: the lean path
then sends through the client's own HTTP session.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import get_cert_path
from urllib3.util.wait import wait_for_read


class _Headers(dict[str, str]):
    """Response headers by lower-cased name: the case-insensitive look-ups of botocore's parsers and retry handler
    for the price of a dict (botocore's HeadersDict wraps every key in an object: ~30 % of a response's CPU)."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


def _headers(pairs: list[tuple[str, str]]) -> _Headers:
    headers = _Headers()
    for name, value in pairs:
        key = name.lower()
        # NOTE: a repeated header is joined with ", " (RFC 9110), as urllib3's HTTPHeaderDict presents it.
        headers[key] = f"{dict.__getitem__(headers, key)}, {value}" if key in headers else value
    return headers


class _Body:
    """The read body, shaped as the ``raw`` that :class:`AWSResponse` reads its content from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self._data


class Transport:
    """Connections to one endpoint for the threads of a container.

    Parameters
    ----------
    url
        The endpoint (scheme, host, port).
    connect_timeout, read_timeout
        Seconds, as the client's configuration has them.
    verify
        True (botocore's CA bundle), False, or a CA bundle path - the client's ``verify``.
    tcp_keepalive
        Whether to set ``SO_KEEPALIVE``, as the client's configuration asks.
    """

    def __init__(
        self, url: str, connect_timeout: float, read_timeout: float, verify: bool | str, tcp_keepalive: bool
    ) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._tcp_keepalive = tcp_keepalive
        self._context: ssl.SSLContext | None = None
        if self._https:
            if verify is False:
                self._context = ssl.create_default_context()
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
            else:
                self._context = ssl.create_default_context(cafile=get_cert_path(verify))  # type: ignore[arg-type]
        self._local = threading.local()

    @classmethod
    def for_client(cls, client: Any, url: str) -> Transport | None:
        """A transport with ``client``'s settings for ``url``; None when a proxy applies (botocore sends then)."""
        session = client._endpoint.http_session
        if session._proxy_config.proxy_url_for(url):
            return None
        config = client.meta.config
        return cls(url, config.connect_timeout, config.read_timeout, session._verify, bool(config.tcp_keepalive))

    def send(self, request: AWSPreparedRequest) -> AWSResponse:
        """Send ``request`` on this thread's connection; the answer as botocore's :class:`AWSResponse`."""
        connection = self._connection(request.url)
        path = urlsplit(request.url).path or "/"
        try:
            connection.putrequest(request.method, path)
            for name, value in request.headers.items():
                connection.putheader(name, value)
            connection.endheaders(request.body)  # type: ignore[arg-type]
            answer = connection.getresponse()
            body = answer.read()
        except TimeoutError as exc:
            self._drop()
            raise ReadTimeoutError(endpoint_url=request.url, error=exc) from exc
        except ssl.SSLError as exc:
            self._drop()
            raise SSLError(endpoint_url=request.url, error=exc) from exc
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            self._drop()
            raise ConnectionClosedError(endpoint_url=request.url, request=request, error=exc) from exc
        if answer.will_close:
            self._drop()
        # NOTE: a lower-cased dict where botocore has urllib3's HTTPHeaderDict: both answer the case-insensitive
        # look-ups the parser and the retry handler make.
        return AWSResponse(request.url, answer.status, _headers(answer.getheaders()), _Body(body))  # type: ignore[arg-type]

    def _connection(self, url: str) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None and not wait_for_read(connection.sock, 0.0):
            return connection
        # NOTE: readable while idle means the server closed it (or sent something unasked): never reused.
        self._drop()
        connection = self._open(url)
        self._local.connection = connection
        return connection

    def _open(self, url: str) -> http.client.HTTPConnection:
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout)
        except TimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
        except OSError as exc:
            raise EndpointConnectionError(endpoint_url=url, error=exc) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tcp_keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self._context is not None:
                sock.settimeout(self._connect_timeout)
                sock = self._context.wrap_socket(sock, server_hostname=self._host)
            sock.settimeout(self._read_timeout)
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
        except ssl.SSLError as exc:
            sock.close()
            raise SSLError(endpoint_url=url, error=exc) from exc
        except OSError as exc:
            sock.close()
            raise HTTPClientError(error=exc) from exc
        # NOTE: the HTTPS class for an https endpoint, so the Host header leaves out the default port as urllib3
        # does (and as the signature has it); the socket is already connected, so neither class connects again.
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=self._read_timeout)
        connection.sock = sock
        return connection

    def _drop(self) -> None:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
