"""servicekit.openapi, servicekit.gunicorn_errors and the shared request schemas."""

from __future__ import annotations

import json

import marshmallow as ma
import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from servicekit import contracts, gunicorn_errors
from servicekit.openapi import SWAGGER_UI_ASSETS, ProblemResponsesPlugin, swagger_ui_asset, swagger_ui_page


def _document(operations: dict, path: str = "/things/{thing_id}") -> dict:
    spec = APISpec(
        "t",
        "1",
        "3.0.3",
        plugins=[MarshmallowPlugin(), ProblemResponsesPlugin(unavailable="db down", no_dependency_paths={"/health"})],
    )
    spec.components.schema("Problem", schema=contracts.ProblemSchema)
    spec.path(path=path, operations=operations)
    return spec.to_dict()


def test_the_plugin_documents_what_an_operation_can_answer_by_its_shape():
    operations = {
        "patch": {
            "security": [{"bearerAuth": []}],
            "requestBody": {"content": {"application/json": {"schema": contracts.ProductUpdateSchema}}},
            "responses": {"200": {"description": "OK"}, "409": {"description": "mine"}},
        },
        "get": {"responses": {"200": {"description": "OK"}}},
    }
    paths = _document(operations)["paths"]["/things/{thing_id}"]
    assert sorted(paths["patch"]["responses"]) == ["200", "400", "401", "403", "404", "409", "413", "414", "431", "503"]
    assert paths["patch"]["responses"]["409"] == {"description": "mine"}  # its own entry stands
    assert paths["patch"]["responses"]["503"]["description"] == "db down"
    assert "Retry-After" in paths["patch"]["responses"]["503"]["headers"]
    assert list(paths["patch"]["responses"]["401"]["content"]) == ["application/problem+json"]
    assert sorted(paths["get"]["responses"]) == ["200", "404", "414", "431", "503"]
    health = _document({"get": {"responses": {"200": {"description": "OK"}}}}, "/health")["paths"]["/health"]
    assert sorted(health["get"]["responses"]) == ["200", "414", "431"]


def test_schema_extras_and_the_problem_schema_are_documented():
    schemas = _document({"get": {"responses": {"200": {"description": "OK"}}}})["components"]["schemas"]
    problem = schemas["Problem"]
    assert problem["additionalProperties"] is True
    assert {"type", "title", "status", "detail", "code", "request_id"} == set(problem["required"])
    spec = APISpec("t", "1", "3.0.3", plugins=[MarshmallowPlugin(), ProblemResponsesPlugin(unavailable="x")])
    spec.components.schema("ProductUpdate", schema=contracts.ProductUpdateSchema)
    assert spec.to_dict()["components"]["schemas"]["ProductUpdate"]["minProperties"] == 1


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("Acme", True),
        ("  Acme  ", True),
        ("   ", False),
        ("\u00a0\u3000", False),
        ("Ac\x00me", False),
        ("Acme\n", False),
        ("Zoë 株式会社", True),
    ],
)
def test_visible_text_is_exactly_its_documented_pattern(value, valid):
    errors = contracts.ProductCreateSchema().validate({"sku": "S", "name": value, "price_cents": 1, "stock": 0})
    assert ("name" not in errors) is valid


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("buyer@acme.test", True),
        ("first.last+tag@sub.acme.io", True),
        ("a@b", False),
        ("a..b@acme.io", False),
        ("a@acme.io\n", False),
        ("x" * 65 + "@acme.io", False),
        ("x" * 64 + "@acme.io", True),
    ],
)
def test_email_rules(email, valid):
    assert ("email" not in contracts.CustomerInSchema().validate({"name": "n", "email": email})) is valid


def test_idempotency_keys_and_strict_ints():
    assert contracts.is_valid_idempotency_key("order-2026-11-23.1")
    for bad in ("", " key", "key ", "k\u00e9y", "k" * 256, "a\tb"):
        assert not contracts.is_valid_idempotency_key(bad), bad
    with pytest.raises(ma.ValidationError):
        contracts.RestockSchema().load({"qty": 1_000_001})
    with pytest.raises(ma.ValidationError):
        contracts.RestockSchema().load({"qty": "5"})


def test_swagger_ui_is_served_from_the_package_with_no_external_url():
    for name in SWAGGER_UI_ASSETS:
        assert len(swagger_ui_asset(name) or b"") > 10_000
    assert swagger_ui_asset("../../etc/passwd") is None
    page = swagger_ui_page(title="T</title>", spec_url="/openapi.json", assets_url="/docs/assets/")
    assert "http" not in page and "T&lt;/title&gt;" in page
    assert '<script src="/docs/assets/swagger-ui-bundle.js">' in page


def test_gunicorn_errors_are_problems():
    raw = gunicorn_errors.problem_bytes(414, "URI Too Long", "Request Line is too large (5021 > 4094)")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 ") and b"Content-Type: application/problem+json" in head
    problem = json.loads(body)
    assert problem["code"] == "uri_too_long" and problem["status"] == 414 and problem["request_id"]
    assert f"Content-Length: {len(body)}".encode() in head
    # gunicorn's 501 for an unsupported Transfer-Encoding: a client's header never earns a 5xx.
    raw = gunicorn_errors.problem_bytes(501, "Not Implemented", "Unsupported transfer coding: 'gzip'")
    assert raw.startswith(b"HTTP/1.1 400 ") and json.loads(raw.partition(b"\r\n\r\n")[2])["code"] == "bad_request"
