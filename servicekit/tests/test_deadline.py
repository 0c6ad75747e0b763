"""The time budget, and ServiceClient keeping every call inside it (docs/payments.md: time budgets)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from servicekit import deadline
from servicekit.http_client import DependencyUnavailable, ServiceClient


def test_no_budget_limits_nothing():
    assert deadline.remaining() is None and deadline.current_deadline() is None
    assert deadline.has_time_for(10_000) and deadline.capped(7.0) == 7.0
    deadline.ensure_time_for("anything", 10_000)


def test_a_budget_caps_and_is_restored_after_the_block():
    with deadline.time_budget(2.0) as end:
        assert end == deadline.current_deadline()
        assert 1.5 < deadline.remaining() <= 2.0
        assert deadline.capped(5.0) <= 2.0 and deadline.capped(0.5) == 0.5
        assert deadline.has_time_for(1.0) and not deadline.has_time_for(3.0)
        with pytest.raises(deadline.BudgetExhausted) as raised:
            deadline.ensure_time_for("charge", 3.0)
        problem = raised.value
        assert (problem.status, problem.code, problem.headers["Retry-After"]) == (503, "time_budget_exhausted", "1")
        with deadline.time_budget(None):
            assert deadline.remaining() is None
        assert deadline.remaining() is not None
    assert deadline.remaining() is None


class SlowServer:
    """Answers 200 after `delay` seconds; counts the requests it got."""

    def __init__(self, delay: float) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                time.sleep(delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass

            def log_message(self, *_args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_service_client_stops_retrying_when_the_budget_is_spent():
    server = SlowServer(delay=1.0)
    try:
        client = ServiceClient(server.url, audience="slow", minter=None, read_timeout=5.0, retries=5)
        # Without a budget one attempt waits the second out.
        assert client.request("GET", "/x").status_code == 200
        server.requests = 0
        with deadline.time_budget(0.6), pytest.raises(DependencyUnavailable) as raised:
            client.request("GET", "/x")
        # The read timeout was cut to the budget, and no retry started once it was spent.
        assert server.requests == 1
        assert "time budget" in raised.value.detail
        with deadline.time_budget(0.05), pytest.raises(DependencyUnavailable):
            client.request("GET", "/x")
        assert server.requests == 1  # too little time to start an attempt at all
    finally:
        server.close()
