"""gunicorn answers with its status line, headers and first body bytes in one send.

gunicorn's HTTP/1 `Response.write` sends the headers, then the body: two `send` calls for every
JSON answer, two TCP segments, and often two wake-ups of the client, which reads the headers
alone first. On loopback each send also runs the receiver's side of TCP on our CPU. With one
send per answer, orders-service spends less CPU per request and its clients (wrk, the BFF's
pools) wake once (bench/README.md, "Issue 9, stop 17").

Everything else stays gunicorn's: its `write` still decides what goes out (a HEAD or 304 body
dropped, a body cut at Content-Length, chunked framing); `OneSendResponse` only gathers the
header block and the first body bytes that `write` would send and sends them together. Later
writes of a streamed body go out one by one, as before.
"""

from __future__ import annotations

from gunicorn.http import wsgi


class _Gathered:
    """Stands in for the socket during the first `write`: keeps what would be sent."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(bytes(data))


class OneSendResponse(wsgi.Response):
    def write(self, arg):
        if self.headers_sent or self.chunked or not arg:
            return super().write(arg)
        sock, gathered = self.sock, _Gathered()
        self.sock = gathered
        try:
            super().write(arg)
        finally:
            # Also when gunicorn's `write` refused the body (not bytes): it had sent the headers
            # by then, and so do we.
            self.sock = sock
            if gathered.parts:
                sock.sendall(b"".join(gathered.parts))


def install() -> None:
    """Make gunicorn's workers build `OneSendResponse`s (call from the gunicorn config, in the
    master, before the workers fork)."""
    wsgi.Response = OneSendResponse
