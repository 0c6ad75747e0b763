"""Test doubles: a real HTTP stub service in a thread, a fake SQS client, a BFF caller."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from orchestrator.local.apigw_adapter import build_event, http_answer
from orchestrator.local.lambda_context import LocalLambdaContext
from orchestrator.sqs import SqsRequestFailed


@dataclass
class StubRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Responder = Callable[[StubRequest, re.Match], Answer]


def problem(status: int, code: str, **extra: Any) -> dict[str, Any]:
    return {"type": f"urn:x:{code}", "title": code, "status": status, "detail": code, "code": code, **extra}


def _parse_body(raw: bytes, content_type: str) -> Any:
    """JSON bodies parsed; form bodies as a dict; anything else as text."""
    if not raw:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode()))
    return orjson.loads(raw)


class StubService:
    """A real HTTP server answering from registered `(method, path regex) -> responder` rules."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, re.Pattern[str], Responder]] = []
        self.requests: list[StubRequest] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = StubRequest(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    _parse_body(raw, self.headers.get("Content-Type") or ""),
                )
                with stub._lock:
                    stub.requests.append(request)
                status, body, headers = stub.answer(request)
                payload = b"" if body is None else orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def on(self, method: str, path_regex: str, responder: Responder | Answer) -> None:
        """Answer `method path` (regex, full match); later rules win over earlier ones."""
        handler = responder if callable(responder) else (lambda _req, _m, answer=responder: answer)
        self.rules.insert(0, (method, re.compile(path_regex), handler))

    def answer(self, request: StubRequest) -> tuple[int, Any, dict[str, str]]:
        for method, pattern, responder in self.rules:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                result = responder(request, match)
                return (result[0], result[1], result[2] if len(result) > 2 else {})
        return 404, problem(404, "not_found"), {}

    def calls(self, method: str, path_regex: str) -> list[StubRequest]:
        pattern = re.compile(path_regex)
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class FakeSqs:
    """Records SendMessage(Batch) calls; the first `failures` calls fail like an unreachable
    endpoint. `refuse(entry)` may answer a batch entry's failure (`{"SenderFault", "Code"}`)."""

    failures: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    refuse: Callable[[dict[str, Any]], dict[str, Any] | None] = lambda _entry: None

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise SqsRequestFailed("ConnectionError: http://sqs.invalid")
        self.sent.append(kwargs)
        return {"MessageId": f"msg-{len(self.sent)}"}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise SqsRequestFailed("ConnectionError: http://sqs.invalid")
        self.batch_sizes.append(len(Entries))
        successful, failed = [], []
        for entry in Entries:
            refusal = self.refuse(entry)
            if refusal is not None:
                failed.append({"Id": entry["Id"], "Message": "refused", **refusal})
                continue
            message = {"QueueUrl": QueueUrl, "MessageBody": entry["MessageBody"]}
            if entry.get("MessageAttributes"):
                message["MessageAttributes"] = entry["MessageAttributes"]
            self.sent.append(message)
            successful.append({"Id": entry["Id"], "MessageId": f"msg-{len(self.sent)}"})
        return {"Successful": successful, "Failed": failed}

    def bodies(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        return [orjson.loads(m["MessageBody"]) for m in self.sent if queue_url is None or m["QueueUrl"] == queue_url]


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


def call_handler(
    handler: Callable[[dict[str, Any], Any], Any],
    method: str,
    target: str,
    *,
    body: Any = None,
    raw_body: bytes | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout_seconds: float = 29.0,
    source_ip: str = "127.0.0.1",
) -> HttpAnswer:
    """Invoke a Lambda handler with the API Gateway v2 event the local adapter would build
    (the function's timeout is what its context says is left)."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    payload = raw_body if raw_body is not None else (orjson.dumps(body) if body is not None else b"")
    event = build_event(
        method=method, target=target, headers=list(all_headers.items()), body=payload, source_ip=source_ip
    )
    status, answer_headers, content = http_answer(
        handler(event, LocalLambdaContext("OrchestratorFunction", timeout_seconds=timeout_seconds))
    )
    header_map = dict(answer_headers)
    return HttpAnswer(status, header_map, orjson.loads(content) if content else None)
