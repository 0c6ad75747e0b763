"""The keep-alive stall of a stdlib HTTP server, measured (bench/README.md, "Keep-alive").

    .venv/bin/python -m bench.keepalive [--requests 200]

`http.server` writes a response's headers (at `end_headers()`) and its body as two small writes
on an unbuffered socket. On a keep-alive connection the second write waits, under Nagle's
algorithm, for the ACK of the first, and the client delays that ACK (~40 ms on Linux): every
answer after the first costs ~40 ms of nothing. The local API Gateway adapter and the gateway
simulator are such servers; both now buffer the response (one write) and set TCP_NODELAY.

This runs the same tiny JSON answer through one keep-alive `requests.Session` against both
variants of a handler, and prints the latency percentiles of each.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

BODY = b'{"ok": true}'


def handler(*, one_write: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        if one_write:  # what the adapter and the simulator do
            wbufsize = 64 * 1024
            disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


def measure(*, one_write: bool, requests_count: int) -> list[float]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(one_write=one_write))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with requests.Session() as session:
            session.post(url, json={})  # the connection's first answer never waits
            latencies = []
            for _ in range(requests_count):
                started = time.perf_counter()
                session.post(url, json={"n": 1})
                latencies.append((time.perf_counter() - started) * 1000)
        return latencies
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"{'server writes':<32} {'p50 ms':>8} {'p99 ms':>8}")
    for one_write, label in ((False, "headers, then body (Nagle on)"), (True, "one write, TCP_NODELAY")):
        latencies = sorted(measure(one_write=one_write, requests_count=args.requests))
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"{label:<32} {statistics.median(latencies):>8.1f} {p99:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
