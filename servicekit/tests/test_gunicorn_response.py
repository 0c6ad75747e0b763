"""gunicorn's answers leave in one send (servicekit.gunicorn_response), byte for byte what gunicorn
itself would have sent."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from gunicorn import util
from gunicorn.http import wsgi

from servicekit.gunicorn_response import OneSendResponse

JSON_BODY = b'{"id":1,"status":"CONFIRMED"}'


class RecordingSocket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))


@pytest.fixture(autouse=True)
def fixed_date(monkeypatch):
    monkeypatch.setattr(util, "http_date", lambda *args: "Thu, 03 Dec 2026 09:00:00 GMT")


def new_response(response_class, sock, method="GET"):
    req = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False)
    return response_class(req, sock, SimpleNamespace())


def serve(response_class, *, method="GET", status="200 OK", headers=(), chunks=(JSON_BODY,)):
    """What a response of `response_class` sends for one WSGI answer, as gunicorn's worker drives it."""
    sock = RecordingSocket()
    response = new_response(response_class, sock, method)
    write = response.start_response(status, list(headers))
    for chunk in chunks:
        write(chunk)
    response.close()
    return sock.sends


def json_headers(body: bytes = JSON_BODY):
    return [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]


def test_a_json_answer_is_one_send_of_what_gunicorn_sends_in_two():
    gunicorns = serve(wsgi.Response, headers=json_headers())
    ours = serve(OneSendResponse, headers=json_headers())

    assert len(gunicorns) == 2  # the status line and headers, then the body
    assert ours == [b"".join(gunicorns)]
    assert ours[0].startswith(b"HTTP/1.1 200 OK\r\n") and ours[0].endswith(b"\r\n\r\n" + JSON_BODY)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param({"method": "HEAD", "headers": json_headers()}, id="HEAD drops the body"),
        pytest.param({"status": "304 Not Modified", "headers": json_headers()}, id="304 drops the body"),
        pytest.param({"headers": json_headers(b"abc"), "chunks": (b"abcdef",)}, id="cut at Content-Length"),
        pytest.param({"status": "204 No Content", "chunks": ()}, id="no body at all"),
        pytest.param({"headers": json_headers(b"abcdef"), "chunks": (b"abc", b"def")}, id="streamed body"),
        pytest.param({"headers": [("Content-Type", "text/plain")], "chunks": (b"ab", b"cd")}, id="chunked"),
    ],
)
def test_every_answer_sends_the_same_bytes_as_gunicorn(case):
    assert b"".join(serve(OneSendResponse, **case)) == b"".join(serve(wsgi.Response, **case))


def test_only_the_first_body_bytes_join_the_headers():
    sends = serve(OneSendResponse, headers=json_headers(b"abcdef"), chunks=(b"abc", b"def"))
    assert len(sends) == 2
    assert sends[0].endswith(b"\r\n\r\nabc") and sends[1] == b"def"


@pytest.mark.parametrize("response_class", [wsgi.Response, OneSendResponse])
def test_a_body_that_is_not_bytes_is_refused_after_the_headers_went_out(response_class):
    sock = RecordingSocket()
    response = new_response(response_class, sock)
    write = response.start_response("200 OK", json_headers())
    with pytest.raises(TypeError):
        write(JSON_BODY.decode())
    assert response.headers_sent
    assert len(sock.sends) == 1 and sock.sends[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_shared_gunicorn_settings_install_it():
    code = "from servicekit import gunicorn_conf; from gunicorn.http import wsgi; print(wsgi.Response.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "OneSendResponse"
