"""The public edge (docs/auth.md, template.yaml): behind CloudFront + WAF, a request that did not
come through CloudFront (no or a wrong origin header: the execute-api endpoint called directly)
is a 403 before any route runs; the client address for the login throttle is the viewer's,
which CloudFront's function writes, only for requests that came through CloudFront. And whatever
the Lambdas log, no secret reaches a log line."""

from __future__ import annotations

import orjson
import pytest

from orchestrator.bff.dependencies import build_dependencies, use_dependencies
from orchestrator.config import load_settings

from .stubs import problem

CURRENT, PREVIOUS = "c" * 48, "p" * 48


@pytest.fixture
def edge_bff(environ, sqs, bff):
    """The BFF as deployed: an origin secret configured (current and previous values)."""
    secret = orjson.dumps({"current": CURRENT, "previous": PREVIOUS}).decode()
    use_dependencies(build_dependencies(load_settings({**environ, "ORIGIN_VERIFY_SECRET": secret}), sqs_client=sqs))
    yield bff
    use_dependencies(None)


@pytest.mark.parametrize("sent", [None, "", "wrong" * 10, CURRENT[:-1]])
def test_requests_that_bypassed_cloudfront_are_403_before_any_route(edge_bff, tokens, orders, customers, sent):
    orders.on("GET", "/products", (200, {"data": []}))
    headers = {"X-Origin-Verify": sent} if sent is not None else {}
    for method, target in (("GET", "/products"), ("GET", "/health"), ("POST", "/auth/login")):
        answer = edge_bff(method, target, token=tokens.admin(), headers=headers, body={"username": "a"})
        assert answer.status == 403 and answer.body["code"] == "forbidden", (method, target)
        assert answer.header("Content-Type") == "application/problem+json"
        assert answer.body["request_id"] == answer.header("X-Request-Id")
    assert orders.requests == [] and customers.requests == []


@pytest.mark.parametrize("value", [CURRENT, PREVIOUS])
def test_requests_through_cloudfront_pass_during_a_rotation_too(edge_bff, tokens, orders, value):
    orders.on("GET", "/products", (200, {"data": []}))
    answer = edge_bff("GET", "/products", token=tokens.admin(), headers={"X-Origin-Verify": value})
    assert answer.status == 200


def test_through_cloudfront_the_throttle_counts_the_viewers_address(edge_bff, customers):
    customers.on("POST", "/internal/login", (200, {"access_token": "t"}))
    headers = {"X-Origin-Verify": CURRENT, "X-Viewer-Address": "2001:db8::7"}
    edge_bff("POST", "/auth/login", body={"username": "a", "password": "p"}, headers=headers, source_ip="130.176.1.1")
    edge_bff("POST", "/auth/login", body={"username": "a", "password": "p"}, headers={"X-Origin-Verify": CURRENT})
    first, second = customers.calls("POST", "/internal/login")
    assert first.body["client_address"] == "2001:db8::7"  # not the edge server's 130.176.1.1
    assert second.body["client_address"] == "127.0.0.1"  # no viewer header: the connection's


def test_without_an_origin_secret_every_request_is_taken(bff, tokens, orders):
    orders.on("GET", "/products", (200, {"data": []}))
    assert bff("GET", "/products", token=tokens.admin()).status == 200


def test_the_lambdas_logger_redacts_messages_and_tracebacks(log_lines):
    from orchestrator.observability import logger

    secret_hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJwYXltZW50cyJ9.c2lnbmF0dXJl"
    try:
        raise RuntimeError(f"UPDATE users SET password_hash='{secret_hash}' [parameters: ('{token}',)]")
    except RuntimeError:
        logger.exception("unhandled_exception")
    logger.warning("calling with Bearer %s", token)
    text = "\n".join(orjson.dumps(line).decode() for line in log_lines())
    assert "RuntimeError" in text and "Traceback" in text and "[redacted]" in text
    assert secret_hash not in text and token not in text and "$argon2" not in text


def test_a_service_token_refused_by_a_service_is_logged_without_the_token(bff, tokens, customers, log_lines):
    customers.on("POST", "/internal/login", (401, problem(401, "invalid_token")))
    bff("POST", "/auth/login", body={"username": "a", "password": "hunter2-secret"})
    text = "\n".join(orjson.dumps(line).decode() for line in log_lines())
    assert "service_token_rejected" in text and "hunter2-secret" not in text and "eyJ" not in text
