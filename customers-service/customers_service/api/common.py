"""What every view module shares: the service context, the login routes' problems."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app

from servicekit.web import Blueprint, problem_responses

from ..services.context import ServiceContext

CONTEXT_KEY = "customers_service.context"


def service_context() -> ServiceContext:
    return current_app.extensions[CONTEXT_KEY]


def login_problems(blp: Blueprint) -> Callable:
    """The problems of both login routes (the public one and the BFF's, docs/auth.md)."""
    return problem_responses(
        blp,
        401,
        429,
        s401="`invalid_credentials`: wrong username or password",
        s429="`too_many_attempts`: too many failed logins for this username or address (`Retry-After`)",
    )
