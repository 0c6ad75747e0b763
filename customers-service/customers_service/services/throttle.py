"""Login throttling: failed attempts counted per username and per client address.

After `max_failures_per_username` failures of one username (or `max_failures_per_address` from
one client address) within `window_seconds`, further attempts get a 429 with `Retry-After`,
for `base_backoff_seconds`, doubling with every further failure (capped at the window). The
counters live in the customers database (`login_throttles`), so every worker and every task
sees the same ones.

- An attempt is counted *before* its password is checked, under the rows' locks: many attempts
  in parallel cannot slip through between a check and an increment. A blocked attempt costs
  no password check at all (argon2 is the expensive part of a login).
- A successful login takes its count back: the username's counter is reset, the address's is
  lowered by one (so an office behind one address is not blocked by its own good logins).
- Existing and unknown usernames are counted, answered and timed alike: the throttle never
  says whether a username exists.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from servicekit.logging import log_event

from .. import repository
from ..config import LoginThrottleSettings
from ..models import LoginThrottle
from .problems import too_many_attempts

log = logging.getLogger(__name__)

USERNAME_PREFIX, ADDRESS_PREFIX = "u:", "a:"
# Rows past their window removed per failed login: a flood of random usernames cannot grow the
# table faster than failed logins clean it.
STALE_ROWS_PER_FAILURE = 20


@dataclass(frozen=True)
class ThrottleKeys:
    username: str
    address: str

    @classmethod
    def of(cls, username: str, client_address: str) -> ThrottleKeys:
        return cls(USERNAME_PREFIX + username, ADDRESS_PREFIX + client_address)

    @property
    def both(self) -> tuple[str, str]:
        return (self.address, self.username)


def _limit(settings: LoginThrottleSettings, key: str) -> int:
    if key.startswith(USERNAME_PREFIX):
        return settings.max_failures_per_username
    return settings.max_failures_per_address


def backoff_seconds(settings: LoginThrottleSettings, failures_beyond_limit: int) -> int:
    """How long a key stays blocked after its (limit + n)-th failure: base x 2^n, at most the window."""
    exponent = min(max(failures_beyond_limit, 0), 30)
    return min(settings.base_backoff_seconds * 2**exponent, settings.window_seconds)


def _expired(row: LoginThrottle, settings: LoginThrottleSettings, now: datetime) -> bool:
    quiet = now - row.last_failure_at >= timedelta(seconds=settings.window_seconds)
    return quiet and (row.blocked_until is None or row.blocked_until <= now)


def count_attempt(session: Session, settings: LoginThrottleSettings, keys: ThrottleKeys, now: datetime) -> None:
    """Refuse the attempt (429) while either key is blocked; otherwise count it as a failure now
    (`succeeded` takes it back). Runs in the caller's unit of work, which holds both rows' locks."""
    rows = repository.lock_login_throttles(session, keys.both, now)
    for row in rows:
        if _expired(row, settings, now):
            row.failures, row.blocked_until = 0, None
    waits = [(row.blocked_until - now).total_seconds() for row in rows if row.blocked_until and row.blocked_until > now]
    if waits:
        retry_after = max(1, math.ceil(max(waits)))
        blocked = sorted("username" if r.throttle_key.startswith(USERNAME_PREFIX) else "address" for r in rows)
        log_event(log, "login_throttled", logging.WARNING, blocked=blocked, retry_after=retry_after)
        raise too_many_attempts(retry_after)
    for row in rows:
        row.failures += 1
        row.last_failure_at = now
        beyond = row.failures - _limit(settings, row.throttle_key)
        if beyond >= 0:
            row.blocked_until = now + timedelta(seconds=backoff_seconds(settings, beyond))


def succeeded(session: Session, settings: LoginThrottleSettings, keys: ThrottleKeys, now: datetime) -> None:
    """Take back the failure `count_attempt` counted for a login that succeeded."""
    rows = {row.throttle_key: row for row in repository.lock_login_throttles(session, keys.both, now)}
    repository.delete_login_throttle(session, keys.username)
    address = rows[keys.address]
    address.failures = max(address.failures - 1, 0)
    if address.failures < _limit(settings, keys.address):
        address.blocked_until = None


def forget_stale(session: Session, settings: LoginThrottleSettings, now: datetime) -> int:
    before = now - timedelta(seconds=settings.window_seconds)
    return repository.delete_stale_login_throttles(session, before=before, now=now, limit=STALE_ROWS_PER_FAILURE)
