"""Login users and authentication.

Passwords are stored as argon2id hashes (salted, memory-hard; argon2-cffi's RFC 9106 profile)
and rehashed on login when the parameters are raised. Unknown usernames cost the same as wrong
passwords, so response times do not reveal which usernames exist.

A login is three steps: count the attempt (the throttle, services/throttle.py; a 429 when it is
blocked) and read the user, in one short transaction; check the password outside any
transaction (argon2 takes tens of milliseconds and 64 MiB: no connection or row lock is held
meanwhile); then, for the right password only, a second transaction writes a due rehash,
takes the attempt back from the throttle and mints the token. Hashing and verifying run off a
gevent worker's loop (servicekit.blocking): the worker's other requests go on meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from servicekit.auth import mint_user_token
from servicekit.blocking import off_the_loop
from servicekit.db import is_duplicate_key, transaction
from servicekit.problems import not_found, validation_error
from servicekit.timeutil import iso_utc, utcnow

from .. import repository
from ..config import Settings
from ..models import User
from . import throttle
from .context import ServiceContext
from .problems import duplicate_username, invalid_credentials

password_hasher = PasswordHasher()
# Verified against when the username is unknown, to keep timing uniform.
_DUMMY_HASH = password_hasher.hash("timing-equaliser-not-a-real-password")


def hash_password(password: str) -> str:
    return off_the_loop(password_hasher.hash, password)


def user_to_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "customer_id": user.customer_id,
        "created_at": iso_utc(user.created_at),
        "updated_at": iso_utc(user.updated_at),
    }


def create_user(ctx: ServiceContext, fields: dict[str, Any]) -> dict[str, Any]:
    return transaction(ctx.session_factory, lambda session: add_user(session, **fields))


def add_user(session: Session, *, username: str, password: str, role: str, customer_id: int | None) -> dict[str, Any]:
    """Insert a login user in the caller's unit of work (also what demo seeding uses)."""
    username = username.strip()
    if role == "customer" and customer_id is None:
        raise validation_error({"customer_id": ["Required for role 'customer'."]})
    if role == "admin" and customer_id is not None:
        raise validation_error({"customer_id": ["Must be empty for role 'admin'."]})
    if customer_id is not None and repository.read_live_customer(session, customer_id) is None:
        raise not_found("customer", customer_id)  # a reference to no customer, as POST /orders answers it
    if repository.username_taken(session, username):
        raise duplicate_username(username)
    now = utcnow()
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        customer_id=customer_id,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        if is_duplicate_key(exc):
            raise duplicate_username(username) from None
        raise
    return user_to_dict(user)


@dataclass(frozen=True)
class _Candidate:
    """What the password check needs of a user, read before it (no session is open during it)."""

    id: int
    password_hash: str


def login(ctx: ServiceContext, *, username: str, password: str, client_address: str) -> dict[str, Any]:
    """A user token for the right username and password, unless the username or the client
    address is throttled (429); a rehash, when due, is written."""
    username = username.strip()
    keys = throttle.ThrottleKeys.of(username, client_address)
    settings = ctx.settings

    def count_and_read(session: Session) -> _Candidate | None:
        throttle.count_attempt(session, settings.login_throttle, keys, utcnow())
        user = repository.get_user_by_username(session, username)
        return _Candidate(user.id, user.password_hash) if user is not None else None

    candidate = transaction(ctx.session_factory, count_and_read)
    if candidate is None:
        _verify_quietly(_DUMMY_HASH, password)  # the same work as a wrong password
    if candidate is None or not _verify_quietly(candidate.password_hash, password):
        # Already counted; also sweep rows past their window (the same work whoever failed).
        transaction(
            ctx.session_factory, lambda session: throttle.forget_stale(session, settings.login_throttle, utcnow())
        )
        raise invalid_credentials()
    return transaction(ctx.session_factory, lambda session: _succeed(session, settings, candidate, password, keys))


def _succeed(
    session: Session, settings: Settings, candidate: _Candidate, password: str, keys: throttle.ThrottleKeys
) -> dict[str, Any]:
    user = repository.get_user_for_update(session, candidate.id)
    # A soft-deleted customer's users can no longer log in (the attempt stays counted).
    if user is None or (
        user.customer_id is not None and repository.read_live_customer(session, user.customer_id) is None
    ):
        raise invalid_credentials()
    if user.password_hash == candidate.password_hash and password_hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        user.updated_at = utcnow()
    throttle.succeeded(session, settings.login_throttle, keys, utcnow())
    ttl_seconds = settings.user_token_ttl_seconds
    token = mint_user_token(
        settings.user_jwt_keys, user_id=user.id, role=user.role, customer_id=user.customer_id, ttl_seconds=ttl_seconds
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl_seconds,
        "user": {"id": user.id, "username": user.username, "role": user.role, "customer_id": user.customer_id},
    }


def _verify_quietly(password_hash: str, password: str) -> bool:
    try:
        return off_the_loop(password_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def ensure_user(
    session: Session, *, username: str, password: str, role: str, customer_id: int | None
) -> tuple[dict[str, Any], bool]:
    """Create the user unless the username exists (demo seeding); returns (user, created).

    An existing user gets `password` if its stored one differs, so the demo logins always match
    the passwords in .env, also after `make env` regenerated them over an existing database."""
    existing = repository.get_user_by_username(session, username)
    if existing is not None:
        if not _verify_quietly(existing.password_hash, password):
            existing.password_hash = hash_password(password)
            existing.updated_at = utcnow()
        return user_to_dict(existing), False
    return add_user(session, username=username, password=password, role=role, customer_id=customer_id), True
