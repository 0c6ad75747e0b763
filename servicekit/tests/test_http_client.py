"""ServiceClient: a dependency that cannot answer is `DependencyUnavailable` (503 + Retry-After)."""

from __future__ import annotations

import socket
import threading

import pytest

from servicekit.http_client import DependencyUnavailable, ServiceClient
from servicekit.testing import free_port


@pytest.fixture
def drops_mid_answer():
    """A server that starts a chunked 200 and drops the connection half way through the body."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            with client:
                client.recv(65536)
                client.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                client.sendall(b'20\r\n{"id": 1, "na')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    server.close()


@pytest.mark.parametrize("retries", [0, 1])
def test_a_connection_dropped_mid_answer_is_a_down_dependency(drops_mid_answer, retries):
    client = ServiceClient(drops_mid_answer, audience="orders-service", minter=None, retries=retries, backoff_seconds=0)
    with pytest.raises(DependencyUnavailable) as info:
        client.request("GET", "/orders/1")
    assert info.value.status == 503 and info.value.headers["Retry-After"]


def test_a_refused_connection_is_a_down_dependency():
    client = ServiceClient(f"http://127.0.0.1:{free_port()}", audience="x", minter=None, retries=0)
    with pytest.raises(DependencyUnavailable) as info:
        client.request("POST", "/orders", json={})
    assert info.value.to_dict("r")["code"] == "dependency_unavailable"
