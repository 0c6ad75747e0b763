"""The simulator as a process: `python -m gateway_simulator` (stdlib HTTP server, one thread per
connection, HTTP/1.1 keep-alive), one JSON log line per request.

The lost-answer fault needs the server's socket: after the charge is committed, the connection
is reset (RST) without a byte of HTTP, which a client sees as a dropped connection.
"""

from __future__ import annotations

import logging
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from servicekit.config import ConfigError
from servicekit.logging import configure_logging, log_event
from servicekit.request_id import REQUEST_ID_HEADER, accept_or_new, current_request_id

from .api import MAX_BODY_BYTES, Answer, GatewayApi, Request
from .charges import ApiError, ChargeService
from .config import Settings, load_settings
from .decisions import Decider
from .faults import FaultInjector
from .ledger import Ledger

SERVICE_NAME = "gateway-simulator"
log = logging.getLogger("gateway_simulator")


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: GatewayApi) -> None:
        self.api = api
        super().__init__(address, GatewayHandler)


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, and no Nagle: on a keep-alive connection, headers and body sent as
    # two small writes make the second wait for the client's delayed ACK (~40 ms an answer).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "gateway-simulator/1.0"
    timeout = 60  # an idle keep-alive connection is closed after this
    server: GatewayServer

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # our JSON line replaces it
        pass

    def version_string(self) -> str:
        return self.server_version

    def _handle(self) -> None:
        started = time.perf_counter()
        token = current_request_id.set(accept_or_new(self.headers.get(REQUEST_ID_HEADER)))
        parts = urlsplit(self.path)
        try:
            answer = self._answer(parts.path, parts.query)
            if answer.drop_connection:
                self._drop_connection()
                status: int | None = None
            else:
                self._write(answer)
                status = answer.status
            log_event(
                log,
                "http_request",
                method=self.command,
                path=parts.path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                **answer.log,
            )
        finally:
            current_request_id.reset(token)

    def _answer(self, path: str, query: str) -> Answer:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return Answer.error(
                ApiError(411, "invalid_request_error", "Send a Content-Length body.", code="length_required")
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would be taken for the next request
            return Answer.error(
                ApiError(
                    413,
                    "invalid_request_error",
                    f"The body must have a Content-Length of at most {MAX_BODY_BYTES} bytes.",
                    code="body_too_large",
                )
            )
        body = self.rfile.read(length) if length else b""
        try:
            return self.server.api.handle(Request(self.command, path, query, self.headers, body))
        except Exception:  # a bug: say so in the log, answer like a provider's 500
            log.exception("unhandled_error")
            return Answer.error(ApiError(500, "api_error", "An internal error occurred.", code="internal_error"))

    def _write(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header(REQUEST_ID_HEADER, current_request_id.get() or "")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()  # here, so a client that gave up is caught below
        except OSError:  # the client gave up (a timeout): the charge, if any, is in the ledger
            self.close_connection = True

    def _drop_connection(self) -> None:
        """Reset the connection without answering (SO_LINGER 0 makes close() send RST)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


def build_api(settings: Settings) -> GatewayApi:
    ledger = Ledger(settings.ledger_path)
    faults = FaultInjector(settings.faults)
    decider = Decider(settings.mode, settings.success_rate, settings.rule_max_amount_cents)
    return GatewayApi(
        api_key=settings.api_key, ledger=ledger, charges=ChargeService(ledger, decider, faults), faults=faults
    )


def serve(settings: Settings) -> None:
    api = build_api(settings)
    server = GatewayServer((settings.host, settings.port), api)
    host, port = server.server_address[:2]

    def stop(_signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever, so it cannot run on the thread that serves.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log_event(
        log,
        "gateway_started",
        url=f"http://{host}:{port}",
        ledger=str(settings.ledger_path),
        charges_in_ledger=api.ledger.count(),
        mode=settings.mode,
        success_rate=settings.success_rate,
        rule_max_amount_cents=settings.rule_max_amount_cents,
        faults=settings.faults.as_dict(),
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        api.ledger.close()
        log_event(log, "gateway_stopped")


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"gateway-simulator: {exc}", file=sys.stderr)
        return 2
    configure_logging(SERVICE_NAME, settings.log_level)
    serve(settings)
    return 0
