"""BFF: its OpenAPI 3 document and interactive docs (docs/api.md), and its log timestamps."""

from __future__ import annotations

import re

from orchestrator.bff import handler as bff_handler
from orchestrator.bff.app import _templates
from orchestrator.bff.http import resolver_template
from orchestrator.bff.openapi import OPERATIONS
from orchestrator.local.apigw_adapter import build_event, http_answer
from orchestrator.local.lambda_context import LocalLambdaContext

PUBLIC_PATHS = {"/health", "/ready", "/openapi.json", "/docs", "/docs/assets/{asset}", "/auth/login"}


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


def test_every_error_is_a_documented_problem_and_the_request_schemas_are_the_services(bff):
    spec = bff("GET", "/openapi.json").body
    schemas = spec["components"]["schemas"]
    problem = schemas["Problem"]
    assert problem["additionalProperties"] is True
    extensions = {"errors", "resource", "sku", "product_id", "requested", "available", "current_status", "dependency"}
    assert extensions | {"step"} <= set(problem["properties"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], f"{method} {path} {status}"
            if operation.get("security"):
                assert "401" in operation["responses"], f"{method} {path}"
    # The limits the services enforce, stated once (servicekit.contracts) and so here too.
    assert schemas["Restock"]["properties"]["qty"]["maximum"] == 1_000_000
    assert schemas["ProductCreate"]["properties"]["stock"]["maximum"] == 10**9
    assert schemas["CustomerPatch"]["minProperties"] == 1
    assert schemas["CustomerIn"]["properties"]["email"]["format"] == "email"
    assert "pattern" in schemas["CustomerIn"]["properties"]["phone"]
    limit = next(p for p in spec["paths"]["/products"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    key = next(p for p in spec["paths"]["/checkout"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert key["required"] is True and (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)


def test_docs_serve_swagger_ui_for_the_document():
    event = build_event(method="GET", target="/docs", headers=[("Accept", "text/html")], body=b"")
    status, headers, body = http_answer(bff_handler.lambda_handler(event, LocalLambdaContext("OrchestratorFunction")))
    assert status == 200
    assert dict(headers)["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "swagger-ui" in page and '"url":"openapi.json"' in page
    assert "docs/assets/swagger-ui-bundle.js" in page and "http" not in page.replace("http-equiv", "")


def test_docs_assets_are_served_by_the_function_itself():
    for name, content_type in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
        event = build_event(method="GET", target=f"/docs/assets/{name}", headers=[], body=b"")
        status, headers, body = http_answer(
            bff_handler.lambda_handler(event, LocalLambdaContext("OrchestratorFunction"))
        )
        assert status == 200 and dict(headers)["Content-Type"].startswith(content_type) and len(body) > 100_000
    event = build_event(method="GET", target="/docs/assets/other.js", headers=[], body=b"")
    status, headers, _ = http_answer(bff_handler.lambda_handler(event, LocalLambdaContext("OrchestratorFunction")))
    assert status == 404 and dict(headers)["Content-Type"] == "application/problem+json"


def test_log_timestamps_are_utc_with_z(bff, log_lines):
    bff("GET", "/health")
    (line,) = [entry for entry in log_lines() if entry["message"] == "http_request"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])


def test_every_route_documents_the_403_of_a_request_that_bypassed_cloudfront(bff):
    """The origin check (invocation.py) runs before any route, /health included: so is its 403."""
    spec = bff("GET", "/openapi.json").body
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "403" in operation["responses"], f"{method} {path}"
    health = spec["paths"]["/health"]["get"]["responses"]["403"]
    assert "CloudFront" in health["description"]
    assert health["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
