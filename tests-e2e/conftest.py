"""Fixtures every end-to-end module shares: the demo admin and customer logged in through the BFF.

Each module defines its own module-scoped `stack` (its own processes and databases); these
fixtures log in to whichever stack the requesting module started."""

from __future__ import annotations

import pytest
from e2e_support import Bff, E2eStack


@pytest.fixture(scope="module")
def admin(stack: E2eStack) -> Bff:
    return Bff.login(stack.bff_url, "admin", stack.env["DEMO_ADMIN_PASSWORD"])


@pytest.fixture(scope="module")
def user(stack: E2eStack) -> Bff:
    return Bff.login(stack.bff_url, "user", stack.env["DEMO_USER_PASSWORD"])
