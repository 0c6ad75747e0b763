"""The BFF's HTTP API resolver: routing, and errors as problem details for every outcome.

powertools answers an unknown path *or* a known path with the wrong method with its 404; we keep
our own list of route templates so the second becomes a 405 with `Allow`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from servicekit.http_client import DependencyUnavailable
from servicekit.problems import Problem
from servicekit.request_id import get_request_id

from ..observability import count, logger
from .http import problem_response, route_not_found

app = APIGatewayHttpResolver(serializer=lambda body: orjson.dumps(body).decode())

_templates: list[tuple[str, re.Pattern[str]]] = []


def route(method: str, template: str) -> Callable:
    """`app.route`, remembering the template so a wrong method can be told apart from a wrong path."""
    _templates.append((method, re.compile("^" + re.sub(r"<\w+>", "[^/]+", template) + "$")))
    return app.route(template, method=method)


def allowed_methods(path: str) -> list[str]:
    return sorted({method for method, pattern in _templates if pattern.match(path)})


@app.exception_handler(Problem)
def _problem(problem: Problem) -> Response:
    if isinstance(problem, DependencyUnavailable):
        count("DependencyUnavailable")
        logger.warning("dependency_unavailable", extra={"dependency": problem.dependency, "detail": problem.detail})
    return problem_response(problem, get_request_id())


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    logger.exception("unhandled_exception", extra={"error": type(error).__name__})
    return problem_response(
        Problem(500, "internal_error", "An unexpected error occurred; it has been logged"), get_request_id()
    )


@app.not_found
def _no_route(_: Exception) -> Response:
    event = app.current_event
    allowed = allowed_methods(event.path)
    if allowed:
        problem = Problem(
            405,
            "method_not_allowed",
            f"{event.http_method} is not allowed on {event.path}",
            headers={"Allow": ", ".join(allowed)},
        )
        return problem_response(problem, get_request_id())
    return problem_response(route_not_found(event), get_request_id())
