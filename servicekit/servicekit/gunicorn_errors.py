"""gunicorn's own error answers as problems (docs/errors-and-limits.md).

gunicorn answers a request it cannot parse (a request line over `limit_request_line`, too many or
too large headers, a malformed request line or header, a bad chunk) itself, before our app sees
it, with an HTML page. Its worker decides the status (`Worker.handle_error`) and calls
`gunicorn.util.write_error` to render it; `install()` replaces that one renderer with ours, so the
status logic stays gunicorn's and the body becomes `application/problem+json` with a request id.
One deviation: gunicorn says 501 to a Transfer-Encoding it does not support; we say 400, since a
client-chosen header never earns a 5xx.
"""

from __future__ import annotations

import orjson

from .problems import PROBLEM_CONTENT_TYPE, problem_body, status_title
from .request_id import REQUEST_ID_HEADER, new_request_id

# gunicorn's statuses for client errors → our codes.
CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "header_fields_too_large",
    500: "internal_error",
}
_CLIENT_STATUS_FOR = {501: 400}  # unsupported transfer coding


def problem_bytes(status: int, reason: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer (the connection is closed after it, as gunicorn does)."""
    status = _CLIENT_STATUS_FOR.get(status, status)
    request_id = new_request_id()
    body = orjson.dumps(problem_body(status, CODES.get(status, "bad_request"), detail or reason, request_id=request_id))
    head = (
        f"HTTP/1.1 {status} {status_title(status)}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"{REQUEST_ID_HEADER}: {request_id}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for `gunicorn.util.write_error(sock, status_int, reason, mesg)`."""
    from gunicorn import util

    util.write_nonblock(sock, problem_bytes(int(status_int), reason, mesg))


def install() -> None:
    """Make gunicorn render its error answers as problems (call from the gunicorn config)."""
    from gunicorn import util

    util.write_error = write_problem
