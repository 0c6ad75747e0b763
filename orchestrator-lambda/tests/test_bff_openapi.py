"""BFF: its OpenAPI 3 document and interactive docs (SPEC §2), and its log timestamps."""

from __future__ import annotations

import re

from orchestrator.bff import handler as bff_handler
from orchestrator.bff.app import _templates
from orchestrator.bff.openapi import OPERATIONS, resolver_template
from orchestrator.local.apigw_adapter import build_event, http_answer
from orchestrator.local.lambda_context import LocalLambdaContext

PUBLIC_PATHS = {"/health", "/ready", "/openapi.json", "/docs", "/auth/login"}


def test_openapi_document_describes_every_route_and_nothing_else(bff):
    answer = bff("GET", "/openapi.json")
    assert answer.status == 200 and answer.header("Content-Type") == "application/json"
    spec = answer.body
    assert spec["openapi"].startswith("3.") and spec["info"]["title"]
    documented = {
        (method.upper(), resolver_template(path)) for path, operations in spec["paths"].items() for method in operations
    }
    registered = {(method, pattern.pattern) for method, pattern in _templates}
    assert len(documented) == len(OPERATIONS) == len(registered)
    for method, template in documented:
        regex = "^" + re.sub(r"<\w+>", "[^/]+", template) + "$"
        assert (method, regex) in registered, f"{method} {template} is documented but not routed"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            secured = operation.get("security") == [{"bearerAuth": []}]
            assert secured == (path not in PUBLIC_PATHS), f"{method} {path}"
            assert all(status.isdigit() for status in operation["responses"])
    create = spec["paths"]["/orchestrator/create-and-confirm-order"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateAndConfirmOrder"
    }
    assert set(spec["components"]["schemas"]["CreateAndConfirmOrder"]["required"]) == {"items"}
    assert "201" in create["responses"] and "409" in create["responses"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_docs_serve_swagger_ui_for_the_document():
    event = build_event(method="GET", target="/docs", headers=[("Accept", "text/html")], body=b"")
    status, headers, body = http_answer(bff_handler.lambda_handler(event, LocalLambdaContext("OrchestratorFunction")))
    assert status == 200
    assert dict(headers)["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "swagger-ui" in page and 'url: "openapi.json"' in page


def test_log_timestamps_are_utc_with_z(bff, log_lines):
    bff("GET", "/health")
    (line,) = [entry for entry in log_lines() if entry["message"] == "http_request"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
