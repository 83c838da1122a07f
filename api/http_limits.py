"""Time and size limits on reading a request, which uvicorn does not have.

uvicorn closes a keep-alive connection idle between requests (``--timeout-keep-alive``), but
it has no timeout on reading a request: a client that opens a connection and sends nothing, or
trickles its headers or its body a byte at a time (slowloris), holds the connection, its memory
and a slot of the worker for as long as it likes; and with httptools (uvicorn's default parser
when installed) the headers have no size limit either. :class:`TimedHttpProtocol` is uvicorn's
own HTTP protocol (httptools, else h11) with three limits added (``tutor serve`` runs uvicorn
with ``--http api.http_limits:TimedHttpProtocol``):

* the request's headers must all arrive within ``TUTOR_HEADER_TIMEOUT_SECONDS`` (10 s) of its
  first byte (of the connection, for its first request), else the server answers 408 and
  closes the connection;
* its body within ``TUTOR_BODY_TIMEOUT_SECONDS`` (30 s) after the headers, else the connection
  is closed (the app sees the client disconnect);
* the headers may hold :data:`MAX_HEAD_BYTES`, else 431 and the connection is closed.

A connection idle between requests is left to uvicorn's keep-alive timeout, and a response
that takes long is not limited (the timers run only while a request is being read). Cut-off
connections are counted on ``/metrics`` (``tutor_slow_requests_total{phase}``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from api import metrics
from api.settings import Settings

#: the most bytes a request's head (request line and headers) may take (h11's default limit
#: is 16 KiB, nginx's 8 KiB per header line, 32 KiB in all)
MAX_HEAD_BYTES = 64 * 1024

_SETTINGS = Settings.from_env()  # read once per worker: every worker reads the same
_REFUSED = {
    "headers": b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    "head-size": (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
                  b"connection: close\r\n\r\n"),
}


class RequestDeadlines:
    """The limits, as a mixin before one of uvicorn's HTTP protocol classes: they see the
    bytes a connection receives (``data_received``) and whether a request's head has been read
    (the protocol starts a new ``cycle``) and its body (``cycle.more_body`` turns False)."""

    header_timeout: float = _SETTINGS.header_timeout_seconds
    body_timeout: float = _SETTINGS.body_timeout_seconds
    max_head_bytes: int = MAX_HEAD_BYTES

    # what the protocol classes have
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    _deadline: asyncio.TimerHandle | None = None
    _reading: str | None = None  # "headers" or "body" while a request is being read
    _head_bytes = 0  # bytes received so far of the head being read
    _cycle_seen: Any = None  # the cycle of the last request whose head was read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._start("headers")

    def data_received(self, data: bytes) -> None:
        if self._reading is None:  # the first bytes of the next request
            self._start("headers")
        super().data_received(data)  # type: ignore[misc]
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle is not self._cycle_seen:  # a request's head was read
            self._cycle_seen = cycle
            self._head_bytes = 0
            if cycle.more_body:
                self._start("body")
            else:
                self._stop()
        elif self._reading == "headers":
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse("head-size")
        elif self._reading == "body" and (cycle is None or not cycle.more_body):
            self._stop()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)  # type: ignore[misc]

    def _start(self, phase: str) -> None:
        self._stop()
        self._reading = phase
        timeout = self.header_timeout if phase == "headers" else self.body_timeout
        self._deadline = self.loop.call_later(timeout, self._refuse, phase)

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._reading = None, None

    def _refuse(self, why: str) -> None:
        """Close the connection (answering 408 or 431 first when no response is under way),
        and count it."""
        self._stop()
        if self.transport.is_closing():
            return
        metrics.SLOW_REQUESTS.labels(why).inc()
        cycle = self.cycle
        if why in _REFUSED and (cycle is None or cycle.response_complete):
            self.transport.write(_REFUSED[why])
        self.transport.close()


class TimedH11Protocol(RequestDeadlines, H11Protocol):
    """uvicorn's h11 protocol, with :class:`RequestDeadlines`."""


TimedHttpProtocol: type[asyncio.Protocol]
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover (httptools is not installed)
    TimedHttpProtocol = TimedH11Protocol
else:
    class TimedHttpToolsProtocol(RequestDeadlines, HttpToolsProtocol):
        """uvicorn's httptools protocol, with :class:`RequestDeadlines`."""

    TimedHttpProtocol = TimedHttpToolsProtocol
