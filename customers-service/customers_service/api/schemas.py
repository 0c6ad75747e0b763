"""Request and response schemas (responses are documented; bodies are built by the services).

The customer and login request schemas are the platform's single definitions in
`servicekit.contracts`, which the BFF documents too; users are this service's own.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from servicekit.contracts import CustomerInSchema, CustomerPatchSchema, CustomerSearchQuerySchema, FullMatch
from servicekit.contracts import LoginRequestSchema as LoginInSchema
from servicekit.limits import BIGINT_MAX, PASSWORD_MAX, USERNAME_MAX

__all__ = [
    "CustomerInSchema",
    "CustomerPatchSchema",
    "CustomerSearchQuerySchema",
    "LoginInSchema",
    "UserInSchema",
    "UserSchema",
]

USERNAME_PATTERN = r"^[A-Za-z0-9._@-]+$"
PASSWORD_MIN = 8


class UserInSchema(ma.Schema):
    """An admin has no customer; a customer user names its (live) customer."""

    OPENAPI_EXTRA = {
        "oneOf": [
            {"properties": {"role": {"enum": ["admin"]}, "customer_id": {"enum": [None]}}},
            {
                "properties": {"role": {"enum": ["customer"]}, "customer_id": {"type": "integer"}},
                "required": ["customer_id"],
            },
        ]
    }

    username = fields.String(
        required=True,
        validate=[
            validate.Length(min=3, max=USERNAME_MAX),
            FullMatch(USERNAME_PATTERN, error="Letters, digits and . _ @ - only."),
        ],
    )
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=PASSWORD_MIN, max=PASSWORD_MAX)
    )
    role = fields.String(required=True, validate=validate.OneOf(["admin", "customer"]))
    customer_id = fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1, max=BIGINT_MAX)
    )


class UserSchema(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    role = fields.String(metadata={"enum": ["admin", "customer"]})
    customer_id = fields.Integer(allow_none=True)
    created_at = fields.String(metadata={"format": "date-time"})
    updated_at = fields.String(metadata={"format": "date-time"})


class InternalLoginInSchema(LoginInSchema):
    client_address = fields.IP(required=True, metadata={"description": "The client's IP address, as the BFF saw it"})
