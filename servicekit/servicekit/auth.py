"""JWTs for users and services: key rings, minting, verification.

- Two rings, two secrets: `USER_JWT_KEYS` signs/verifies user tokens, `SERVICE_JWT_KEYS`
  service tokens. A leaked user-token key can never mint a service token.
- A ring is `kid:secret,kid:secret`; the first key signs, every key verifies, so a secret is
  rotated by prepending the new key, deploying, then dropping the old one (scripts/rotate_jwt_key.py).
- `alg` is pinned to HS256 and checked before the key is picked; `exp`, `iat`, `aud`, `iss`
  and `sub` are required.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from .config import ConfigError
from .problems import unauthorized

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
CLOCK_SKEW_SECONDS = 5

USER_TOKEN_ISSUER = "customers-service"
USER_TOKEN_AUDIENCE = "b2b-api"
SERVICE_ROLE = "service"
USER_ROLES = ("admin", "customer")


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by a key we trust."""


@dataclass(frozen=True)
class KeyRing:
    signing_kid: str
    keys: Mapping[str, bytes]

    @classmethod
    def parse(cls, value: str | None, *, name: str = "key ring") -> KeyRing:
        if not value or not value.strip():
            raise ConfigError(f"{name} is empty; expected 'kid:secret[,kid:secret...]'")
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for entry in value.split(","):
            entry = entry.strip()
            if not entry:
                continue
            kid, sep, secret = entry.partition(":")
            kid, secret = kid.strip(), secret.strip()
            if not sep or not kid or not secret:
                raise ConfigError(f"{name}: every entry must be 'kid:secret'")
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(f"{name}: secret for kid {kid!r} is shorter than {MIN_SECRET_BYTES} bytes")
            if kid in keys:
                raise ConfigError(f"{name}: kid {kid!r} appears twice")
            keys[kid] = secret.encode()
            order.append(kid)
        if not order:
            raise ConfigError(f"{name} has no keys")
        return cls(signing_kid=order[0], keys=keys)


def mint(ring: KeyRing, claims: Mapping[str, Any], ttl_seconds: int, *, now: float | None = None) -> str:
    issued_at = int(now if now is not None else time.time())
    payload = {**claims, "iat": issued_at, "exp": issued_at + ttl_seconds}
    return jwt.encode(payload, ring.keys[ring.signing_kid], algorithm=ALGORITHM, headers={"kid": ring.signing_kid})


def verify(ring: KeyRing, token: str, *, audience: str, issuers: Collection[str]) -> dict[str, Any]:
    """Verify signature, pinned alg, kid, exp/iat/aud/iss/sub; return the claims."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("token algorithm is not accepted")
    key = ring.keys.get(str(header.get("kid")))
    if key is None:
        raise InvalidToken("token is signed with an unknown key")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iat", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken("token is not meant for this service") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("token is invalid") from exc
    if claims.get("iss") not in issuers:
        raise InvalidToken("token issuer is not trusted")
    if claims["iat"] > time.time() + CLOCK_SKEW_SECONDS:
        raise InvalidToken("token is issued in the future")
    return claims


@dataclass(frozen=True)
class Principal:
    """Who is calling: a logged-in user (admin or customer) or another service."""

    kind: Literal["user", "service"]
    subject: str
    role: str
    customer_id: int | None = None
    expires_at: int = 0

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.role == "admin"

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def is_privileged(self) -> bool:
        """Admins and services may act for any customer; they name it explicitly."""
        return self.is_admin or self.is_service

    @property
    def identity(self) -> str:
        """Stable caller identity, e.g. the idempotency scope: `user:42`, `service:orchestrator`."""
        return f"{self.kind}:{self.subject}"

    def can_act_for(self, customer_id: int | None) -> bool:
        return self.is_privileged or (customer_id is not None and self.customer_id == customer_id)


def mint_user_token(ring: KeyRing, *, user_id: int, role: str, customer_id: int | None, ttl_seconds: int) -> str:
    claims = {
        "iss": USER_TOKEN_ISSUER,
        "aud": USER_TOKEN_AUDIENCE,
        "sub": str(user_id),
        "role": role,
        "customer_id": customer_id,
    }
    return mint(ring, claims, ttl_seconds)


def mint_service_token(ring: KeyRing, *, caller: str, audience: str, ttl_seconds: int = 300) -> str:
    return mint(ring, {"iss": caller, "sub": caller, "aud": audience, "role": SERVICE_ROLE}, ttl_seconds)


class TokenVerifier:
    """Turns a bearer token into a `Principal` for one service.

    User tokens are checked against the user ring (`iss=customers-service`, `aud=b2b-api`);
    service tokens against the service ring with `aud` = this service and `iss` = `sub` = one of
    the callers this service trusts. Verified tokens are cached until they expire: the cache key
    is the whole signed token, so a cached entry can only ever match the same valid token.

    `trusted_callers` may call every route that takes service tokens. `route_callers` are
    services whose tokens verify here but which may call only the routes that name them
    (`servicekit.web.requires(..., callers=...)`); anywhere else they get a 403 (`may_call`).
    """

    _CACHE_LIMIT = 10_000

    def __init__(
        self,
        *,
        service_name: str,
        user_ring: KeyRing | None,
        service_ring: KeyRing | None,
        trusted_callers: Collection[str] = (),
        route_callers: Collection[str] = (),
    ) -> None:
        self.service_name = service_name
        self.user_ring = user_ring
        self.service_ring = service_ring
        self.trusted_callers = frozenset(trusted_callers)
        self.route_callers = frozenset(route_callers) - self.trusted_callers
        self._issuers = self.trusted_callers | self.route_callers
        self._cache: dict[str, Principal] = {}

    def may_call(self, principal: Principal, callers: frozenset[str] | None = None) -> bool:
        """Whether a verified principal may use a route: users always (roles decide), services
        when they are among the route's own `callers` or, if it names none, `trusted_callers`."""
        if principal.kind != "service":
            return True
        return principal.subject in (self.trusted_callers if callers is None else callers)

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at > time.time() - CLOCK_SKEW_SECONDS:
                return cached
            self._cache.pop(token, None)
        principal = self._verify_uncached(token)
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = principal
        return principal

    def _verify_uncached(self, token: str) -> Principal:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if unverified.get("role") == SERVICE_ROLE:
            return self._verify_service(token)
        return self._verify_user(token)

    def _verify_service(self, token: str) -> Principal:
        if self.service_ring is None or not self._issuers:
            raise InvalidToken("service tokens are not accepted here")
        claims = verify(self.service_ring, token, audience=self.service_name, issuers=self._issuers)
        if claims.get("sub") != claims.get("iss") or claims.get("role") != SERVICE_ROLE:
            raise InvalidToken("service token subject must be its issuer")
        return Principal(kind="service", subject=claims["sub"], role=SERVICE_ROLE, expires_at=int(claims["exp"]))

    def _verify_user(self, token: str) -> Principal:
        if self.user_ring is None:
            raise InvalidToken("user tokens are not accepted here")
        claims = verify(self.user_ring, token, audience=USER_TOKEN_AUDIENCE, issuers=(USER_TOKEN_ISSUER,))
        role = claims.get("role")
        if role not in USER_ROLES:
            raise InvalidToken("token role is not recognised")
        customer_id = claims.get("customer_id")
        if customer_id is not None and (not isinstance(customer_id, int) or isinstance(customer_id, bool)):
            raise InvalidToken("token customer_id is malformed")
        if role == "customer" and customer_id is None:
            raise InvalidToken("customer token without customer_id")
        return Principal(
            kind="user",
            subject=str(claims["sub"]),
            role=role,
            customer_id=customer_id,
            expires_at=int(claims["exp"]),
        )


class ServiceTokenMinter:
    """Mints this service's outgoing tokens and reuses each until it is close to expiry."""

    def __init__(self, ring: KeyRing, caller: str, *, ttl_seconds: int = 300, refresh_margin_seconds: int = 60) -> None:
        if refresh_margin_seconds >= ttl_seconds:
            raise ValueError("refresh margin must be shorter than the token lifetime")
        self.ring = ring
        self.caller = caller
        self.ttl_seconds = ttl_seconds
        self.refresh_margin_seconds = refresh_margin_seconds
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token_for(self, audience: str) -> str:
        now = time.time()
        cached = self._tokens.get(audience)
        if cached and cached[1] - self.refresh_margin_seconds > now:
            return cached[0]
        with self._lock:
            cached = self._tokens.get(audience)
            if cached and cached[1] - self.refresh_margin_seconds > now:
                return cached[0]
            token = mint_service_token(self.ring, caller=self.caller, audience=audience, ttl_seconds=self.ttl_seconds)
            self._tokens[audience] = (token, now + self.ttl_seconds)
            return token


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization_header:
        return None
    scheme, _, token = authorization_header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate_bearer(authorization_header: str | None, verifier: TokenVerifier) -> Principal:
    """The caller of a request from its `Authorization` header; 401 problems when it is not one."""
    token = bearer_token(authorization_header)
    if token is None:
        raise unauthorized("Missing bearer token")
    try:
        return verifier.verify(token)
    except InvalidToken as exc:
        raise unauthorized(str(exc), code="invalid_token") from None
