"""API Gateway HTTP API, locally: HTTP in, a real payload v2.0 proxy event to the BFF handler, HTTP out.

    python -m orchestrator.local.apigw_adapter --port 3000 [--environments 4]

Each request becomes the event API Gateway would send for a `$default` route (lower-cased
headers, `cookies`, `rawQueryString`, `queryStringParameters` with repeated keys joined by
commas, `requestContext.http`, `requestId`, `time`/`timeEpoch`, text or base64 body) and the
handler's `{statusCode, headers, cookies, body, isBase64Encoded}` becomes the HTTP answer.

Concurrency is modelled the way Lambda does it: an execution environment handles one event at a
time, and concurrent requests go to other environments. By default those are worker processes
(`--environments N`), each with its own module state and cold start, because Lambda code,
powertools' resolver included, is written for one event at a time. An in-process handler (for
tests with injected fakes) is one environment: its events are serialised.
As in API Gateway: a handler that raises is a 500 `{"message": "Internal Server Error"}`, one that
exceeds the timeout a 503 `{"message": "Service Unavailable"}`. Every method is handed to the BFF
(TRACE, CONNECT and unknown ones too: it answers 405 or 404). What the adapter refuses itself
is a problem (`application/problem+json`, docs/errors-and-limits.md), never an HTML page: a body
over 10 MiB (413), a request line over 4094 bytes (414), more than 100 header fields or one over
8190 bytes (431, the same limits as gunicorn's in front of the services), a malformed request
(400).
SIGINT/SIGTERM: no new requests; those in flight get `--shutdown-grace` seconds, then the
environments are killed. The environments ignore both signals (the adapter ends them) and exit
by themselves if the adapter dies.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import os
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import orjson

from servicekit.limits import GATEWAY_PAYLOAD_BYTES_MAX, HEADER_FIELD_SIZE_MAX, HEADER_FIELDS_MAX, REQUEST_LINE_MAX
from servicekit.problems import PROBLEM_CONTENT_TYPE, problem_body
from servicekit.request_id import REQUEST_ID_HEADER, new_request_id

from .environments import InProcessInvoker, Invoker, ProcessPoolInvoker
from .lambda_context import LocalLambdaContext, ensure_local_aws_credentials, load_handler, log_json
from .stop_signals import StopFlag

DEFAULT_HANDLER = "orchestrator.bff.handler.lambda_handler"
DEFAULT_FUNCTION_NAME = "OrchestratorFunction"
MAX_PAYLOAD_BYTES = GATEWAY_PAYLOAD_BYTES_MAX
# The adapter's own refusals: status → code (http.server's 505 for an odd version is a 400 here).
_REFUSAL_CODES = {400: "bad_request", 413: "payload_too_large", 414: "uri_too_long", 431: "header_fields_too_large"}
_TEXT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml", "+json", "+xml")
_TEXT_TYPES += ("application/x-www-form-urlencoded", "application/javascript")


# --- event and response shapes ---------------------------------------------------------------


def _is_text(content_type: str | None) -> bool:
    lowered = (content_type or "").lower()
    return any(marker in lowered for marker in _TEXT_TYPES)


def build_event(
    *,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    now: datetime | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload v2.0 event for one request."""
    path, _, raw_query = target.partition("?")
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "cookie":  # v2 moves cookies out of the headers into their own list
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        merged[lowered] = f"{merged[lowered]},{value}" if lowered in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = now or datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path or "/",
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": merged.get("host", "localhost").split(":")[0],
            "domainPrefix": merged.get("host", "localhost").split(".")[0].split(":")[0],
            "http": {
                "method": method.upper(),
                "path": path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id or uuid.uuid4().hex[:16],
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        text = None
        if _is_text(merged.get("content-type")) or "content-type" not in merged:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


def http_answer(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A handler's return value as API Gateway turns it into HTTP (payload v2 rules)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # v2 infers a 200 JSON answer from anything that is not a full response object.
        body = result if isinstance(result, str) else orjson.dumps(result).decode()
        return 200, [("Content-Type", "application/json")], body.encode()
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    raw_body = result.get("body") or ""
    body = base64.b64decode(raw_body) if result.get("isBase64Encoded") else str(raw_body).encode()
    return int(result["statusCode"]), headers, body


def _gateway_error(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": orjson.dumps({"message": message}).decode(),
    }


# --- execution environments -------------------------------------------------------------------


# --- HTTP server ------------------------------------------------------------------------------


class BadRequest(Exception):
    """The request cannot be read (its framing is broken): a 400, and the connection is closed."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, and no Nagle: on a keep-alive connection, headers and body sent as
    # two small writes make the second wait for the client's delayed ACK (~40 ms an answer).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _AdapterHTTPServer

    def _read_body(self) -> bytes | None:
        """The body, or None if it is over the gateway's limit; BadRequest if it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(HEADER_FIELD_SIZE_MAX + 1)
                try:
                    size = int(line.split(b";")[0].strip() or b"x", 16)
                except ValueError:
                    raise BadRequest("Invalid chunk size") from None
                if size < 0:
                    raise BadRequest("Invalid chunk size")
                if size == 0:
                    self.rfile.readline(HEADER_FIELD_SIZE_MAX + 1)
                    return b"".join(chunks)
                total += size
                if total > MAX_PAYLOAD_BYTES:
                    self._discard_body(4 * MAX_PAYLOAD_BYTES - total)
                    return None
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise BadRequest("Incomplete chunk")
                chunks.append(chunk)
                self.rfile.readline(HEADER_FIELD_SIZE_MAX + 1)
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isascii() or not declared.strip().isdigit():
            raise BadRequest("Invalid Content-Length")
        length = int(declared)
        if length > MAX_PAYLOAD_BYTES:
            self._discard_body(length)
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise BadRequest("Incomplete body")
        return body

    def parse_request(self) -> bool:
        # http.server's own limits are 64 KiB a line and 100 headers; ours are gunicorn's.
        if len(self.raw_requestline.rstrip(b"\r\n")) > REQUEST_LINE_MAX:
            self.requestline, self.command, self.request_version = "", "", "HTTP/1.1"
            self._discard_headers()
            self.send_error(414, f"Request line is over {REQUEST_LINE_MAX} bytes")
            return False
        if not super().parse_request():
            return False
        if len(self.headers) > HEADER_FIELDS_MAX:
            self.send_error(431, f"More than {HEADER_FIELDS_MAX} header fields")
            return False
        if any(len(name) + len(value) + 2 > HEADER_FIELD_SIZE_MAX for name, value in self.headers.items()):
            self.send_error(431, f"A header field is over {HEADER_FIELD_SIZE_MAX} bytes")
            return False
        return True

    # Read (and drop) what a refused request still sends, within bounds: closing a socket with unread
    # data resets the connection, and the client may never read our answer.
    def _discard_headers(self) -> None:
        for _ in range(HEADER_FIELDS_MAX * 2):
            line = self.rfile.readline(HEADER_FIELD_SIZE_MAX * 8)
            if line in (b"\r\n", b"\n", b""):
                return

    def _discard_body(self, length: int) -> None:
        left = min(length, 4 * MAX_PAYLOAD_BYTES)
        while left > 0:
            chunk = self.rfile.read(min(left, 1024 * 1024))
            if not chunk:
                return
            left -= len(chunk)

    def handle_expect_100(self) -> bool:
        # A client that waits for 100 Continue gets the 413 before it sends a body that is too large.
        declared = self.headers.get("Content-Length") or ""
        if declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
            self.send_error(413, f"Request body is over {MAX_PAYLOAD_BYTES} bytes")
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's error page, as a problem."""
        status = code if code in _REFUSAL_CODES else 400
        request_id = new_request_id()
        body = orjson.dumps(
            problem_body(status, _REFUSAL_CODES[status], message or explain or "Bad request", request_id=request_id)
        )
        self.close_connection = True
        # http.server answers a line it could not parse HTTP/0.9-style (a body, no status line).
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        self.send_response(status)
        self.send_header("Content-Type", PROBLEM_CONTENT_TYPE)
        self.send_header(REQUEST_ID_HEADER, request_id)
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        adapter = self.server.adapter
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.send_error(400, str(exc))
            return
        if body is None:
            self.send_error(413, f"Request body is over {MAX_PAYLOAD_BYTES} bytes")
            return
        event = build_event(
            method=self.command,
            target=self.path,
            headers=self.headers.items(),
            body=body,
            source_ip=self.client_address[0],
        )
        context = LocalLambdaContext(adapter.function_name, timeout_seconds=adapter.timeout_seconds)
        try:
            result = adapter.invoker.invoke(event, context, adapter.timeout_seconds)
        except concurrent.futures.TimeoutError:
            result = _gateway_error(503, "Service Unavailable")
        except Exception as exc:  # the function failed: API Gateway's answer, and say why here
            adapter.log_failure(exc)
            result = _gateway_error(500, "Internal Server Error")
        self._write(*http_answer(result), gateway_id=event["requestContext"]["requestId"])

    def _write(self, status: int, headers: list[tuple[str, str]], body: bytes, *, gateway_id: str) -> None:
        self.send_response(status)
        names = set()
        for name, value in headers:
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            names.add(name.lower())
            self.send_header(name, value)
        if "content-type" not in names and body:
            self.send_header("Content-Type", "application/json")
        self.send_header("apigw-requestid", gateway_id)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def __getattr__(self, name: str) -> Any:
        # http.server dispatches `do_<METHOD>`; every method goes to the function, which answers
        # 405 (with Allow) or 404 to those it has no route for.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the BFF logs one http_request line per request itself


class _AdapterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    adapter: ApiGatewayAdapter


class ApiGatewayAdapter:
    """`ApiGatewayAdapter(ProcessPoolInvoker(DEFAULT_HANDLER), port=0).start()` → `.base_url`, `.stop()`."""

    def __init__(
        self,
        invoker: Invoker,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        function_name: str = DEFAULT_FUNCTION_NAME,
        timeout_seconds: float = 29.0,
    ) -> None:
        self.invoker = invoker
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.httpd = _AdapterHTTPServer((host, port), _RequestHandler)
        self.httpd.adapter = self
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ApiGatewayAdapter:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,), name="apigw-adapter", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting requests, then close the environments (see `ProcessPoolInvoker.close`)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self.invoker.close(grace)

    def __enter__(self) -> ApiGatewayAdapter:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @staticmethod
    def log_failure(exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        log_json("lambda_invocation_failed", logger="apigw_adapter", level="ERROR", error=error)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--handler", default=DEFAULT_HANDLER, help="dotted path of the Lambda handler")
    parser.add_argument("--environments", type=int, default=4, help="concurrent execution environments (processes)")
    parser.add_argument("--timeout", type=float, default=29.0, help="function timeout in seconds (API Gateway max 30)")
    parser.add_argument(
        "--shutdown-grace", type=float, default=5.0, help="seconds requests in flight get on SIGINT/SIGTERM"
    )
    args = parser.parse_args(argv)
    stop = StopFlag().on_signals()
    # The BFF publishes to SQS; against a local endpoint it needs (any) credentials. Set before
    # the workers start so they inherit them.
    ensure_local_aws_credentials(os.environ.get("AWS_ENDPOINT_URL_SQS"))
    invoker: Invoker
    if args.environments > 0:
        invoker = ProcessPoolInvoker(args.handler, args.environments)
    else:
        invoker = InProcessInvoker(load_handler(args.handler))
    adapter = ApiGatewayAdapter(invoker, host=args.host, port=args.port, timeout_seconds=args.timeout).start()
    log_json("apigw_adapter_listening", logger="apigw_adapter", url=adapter.base_url, environments=args.environments)
    while not stop.wait(3600):
        pass
    adapter.stop(grace=args.shutdown_grace)
    log_json("apigw_adapter_stopped", logger="apigw_adapter")


if __name__ == "__main__":
    main()
