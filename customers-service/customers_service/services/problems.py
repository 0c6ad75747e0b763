"""The domain's problem constructors (codes from docs/conventions.md)."""

from __future__ import annotations

from servicekit.problems import Problem, conflict


def duplicate_email(email: str) -> Problem:
    return conflict("duplicate_email", f"A customer with email {email} already exists")


def duplicate_username(username: str) -> Problem:
    return conflict("duplicate_username", f"Username {username} is taken")


def invalid_credentials() -> Problem:
    return Problem(
        401,
        "invalid_credentials",
        "Username or password is incorrect",
        headers={"WWW-Authenticate": 'Bearer realm="b2b-platform"'},
    )


def too_many_attempts(retry_after_seconds: int) -> Problem:
    """The same answer for a blocked username and a blocked address, existing or not."""
    return Problem(
        429,
        "too_many_attempts",
        "Too many failed logins; try again later",
        headers={"Retry-After": str(retry_after_seconds)},
    )
