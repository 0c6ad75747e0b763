"""JWTs for users and services: key rings, service identities, minting, verification.

User tokens (customers-service signs, everyone verifies):
- HS256 with the `USER_JWT_KEYS` ring, `kid:secret,kid:secret`; the first key signs, every key
  verifies, so a secret is rotated by prepending the new key, deploying, then dropping the old
  one (scripts/rotate_jwt_key.py). They live `MAX_USER_TOKEN_TTL_SECONDS` at most.

Service tokens (docs/auth.md):
- Every caller has its own identity and its own Ed25519 key pairs (`EdDSA`). It alone holds its
  private keys (`ServiceSigningKeys`, `kid:seed[,kid:seed]`, the first signs); a verifier holds
  only public keys, each bound to one issuer (`ServicePublicKeys`,
  `caller:kid:key[,caller:kid:key...]`). A token is accepted only if its `kid` is one of the
  issuer's keys and `iss` = `sub` = that issuer: no service can mint another's token, and a
  verifier can mint none.
- `alg` is pinned per kind of token and checked before a key is picked; `exp`, `iat`, `aud`,
  `iss` and `sub` are required.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .config import ConfigError
from .problems import unauthorized

ALGORITHM = "HS256"  # user tokens
SERVICE_ALGORITHM = "EdDSA"  # service tokens (Ed25519)
MIN_SECRET_BYTES = 32
CLOCK_SKEW_SECONDS = 5
MAX_USER_TOKEN_TTL_SECONDS = 3600
MAX_SERVICE_TOKEN_TTL_SECONDS = 3600

USER_TOKEN_ISSUER = "customers-service"
USER_TOKEN_AUDIENCE = "b2b-api"
SERVICE_ROLE = "service"
USER_ROLES = ("admin", "customer")

# Every service identity of the platform (the `iss`/`sub` of its tokens), each with its own keys.
SERVICE_IDENTITIES = ("orchestrator", "payments", "sweeper", "orders-service", "customers-service")
ED25519_KEY_BYTES = 32


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by a key we trust."""


# --- user tokens: an HS256 ring -----------------------------------------------------------------


@dataclass(frozen=True)
class KeyRing:
    signing_kid: str
    keys: Mapping[str, bytes]

    @classmethod
    def parse(cls, value: str | None, *, name: str = "key ring") -> KeyRing:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for kid, secret in _entries(value, name, "kid:secret"):
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(f"{name}: secret for kid {kid!r} is shorter than {MIN_SECRET_BYTES} bytes")
            if kid in keys:
                raise ConfigError(f"{name}: kid {kid!r} appears twice")
            keys[kid] = secret.encode()
            order.append(kid)
        return cls(signing_kid=order[0], keys=keys)


def _entries(value: str | None, name: str, shape: str, parts: int = 2) -> list[list[str]]:
    """`a:b,a:b` (or `a:b:c,...` with parts=3) split and stripped; ConfigError unless well formed."""
    if not value or not value.strip():
        raise ConfigError(f"{name} is empty; expected '{shape}[,{shape}...]'")
    entries = []
    for entry in value.split(","):
        if not entry.strip():
            continue
        fields = [field.strip() for field in entry.strip().split(":", parts - 1)]
        if len(fields) != parts or not all(fields):
            raise ConfigError(f"{name}: every entry must be '{shape}'")
        entries.append(fields)
    if not entries:
        raise ConfigError(f"{name} has no keys")
    return entries


def mint(ring: KeyRing, claims: Mapping[str, Any], ttl_seconds: int, *, now: float | None = None) -> str:
    issued_at = int(now if now is not None else time.time())
    payload = {**claims, "iat": issued_at, "exp": issued_at + ttl_seconds}
    return jwt.encode(payload, ring.keys[ring.signing_kid], algorithm=ALGORITHM, headers={"kid": ring.signing_kid})


def verify(ring: KeyRing, token: str, *, audience: str, issuers: Collection[str]) -> dict[str, Any]:
    """Verify an HS256 token: signature, pinned alg, kid, exp/iat/aud/iss/sub; return the claims."""
    key = _key_named_by(token, ALGORITHM, ring.keys)
    claims = _decode(token, key, ALGORITHM, audience=audience)
    if claims.get("iss") not in issuers:
        raise InvalidToken("token issuer is not trusted")
    return claims


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc


def _key_named_by(token: str, algorithm: str, keys_by_kid: Mapping[str, Any]) -> Any:
    """What `keys_by_kid` holds for the token's `kid`, once its header pins `algorithm`."""
    header = _header(token)
    if header.get("alg") != algorithm:
        raise InvalidToken("token algorithm is not accepted")
    found = keys_by_kid.get(str(header.get("kid")))
    if found is None:
        raise InvalidToken("token is signed with an unknown key")
    return found


def _decode(token: str, key: Any, algorithm: str, *, audience: str, issuer: str | None = None) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iat", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken("token is not meant for this service") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken("token is not signed by its issuer's key") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("token is invalid") from exc
    if not isinstance(claims["iat"], int | float) or not isinstance(claims["exp"], int | float):
        raise InvalidToken("token times are malformed")
    if claims["iat"] > time.time() + CLOCK_SKEW_SECONDS:
        raise InvalidToken("token is issued in the future")
    return claims


# --- service tokens: one Ed25519 identity per caller -------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str, name: str, kid: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{name}: key {kid!r} is not base64url") from exc
    if len(raw) != ED25519_KEY_BYTES:
        raise ConfigError(f"{name}: key {kid!r} is not a {ED25519_KEY_BYTES}-byte Ed25519 key")
    return raw


def _public_text(key: Ed25519PublicKey) -> str:
    return _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


@dataclass(frozen=True)
class ServiceSigningKeys:
    """One caller's private keys, `kid:seed[,kid:seed]` (base64url 32-byte Ed25519 seeds): the
    first signs; a second one is the previous key pair, kept while a rotation rolls out."""

    signing_kid: str
    keys: Mapping[str, Ed25519PrivateKey]

    def __repr__(self) -> str:  # never print a private key
        return f"ServiceSigningKeys(signing_kid={self.signing_kid!r}, kids={list(self.keys)!r})"

    @classmethod
    def parse(cls, value: str | None, *, name: str = "SERVICE_JWT_PRIVATE_KEYS") -> ServiceSigningKeys:
        keys: dict[str, Ed25519PrivateKey] = {}
        for kid, seed in _entries(value, name, "kid:base64url-seed"):
            if kid in keys:
                raise ConfigError(f"{name}: kid {kid!r} appears twice")
            keys[kid] = Ed25519PrivateKey.from_private_bytes(_unb64(seed, name, kid))
        return cls(signing_kid=next(iter(keys)), keys=keys)

    def public_entries(self, caller: str) -> list[str]:
        """`caller:kid:public-key` for each key: what the verifiers' SERVICE_JWT_PUBLIC_KEYS lists."""
        return [f"{caller}:{kid}:{_public_text(key.public_key())}" for kid, key in self.keys.items()]

    def check_published(self, public_keys: ServicePublicKeys, caller: str) -> None:
        """At startup: this caller's signing key must be listed for it, or every call it makes
        would be refused (a key of another caller, or one not rolled out yet)."""
        bound = public_keys.by_kid.get(self.signing_kid)
        public = _public_text(self.keys[self.signing_kid].public_key())
        if bound is None or bound[0] != caller or _public_text(bound[1]) != public:
            raise ConfigError(
                f"SERVICE_JWT_PRIVATE_KEYS: the signing key {self.signing_kid!r} is not published for {caller!r} "
                "in SERVICE_JWT_PUBLIC_KEYS (docs/auth.md)"
            )


@dataclass(frozen=True)
class ServicePublicKeys:
    """What a verifier holds: public keys only, each bound to the issuer that owns it
    (`caller:kid:base64url-key[,...]`). kids are unique across issuers."""

    by_kid: Mapping[str, tuple[str, Ed25519PublicKey]]

    @classmethod
    def parse(cls, value: str | None, *, name: str = "SERVICE_JWT_PUBLIC_KEYS") -> ServicePublicKeys:
        by_kid: dict[str, tuple[str, Ed25519PublicKey]] = {}
        for caller, kid, key in _entries(value, name, "caller:kid:base64url-key", parts=3):
            if kid in by_kid:
                raise ConfigError(f"{name}: kid {kid!r} appears twice")
            by_kid[kid] = (caller, Ed25519PublicKey.from_public_bytes(_unb64(key, name, kid)))
        return cls(by_kid=by_kid)

    def issuers(self) -> frozenset[str]:
        return frozenset(caller for caller, _ in self.by_kid.values())


def private_keys_variable(caller: str) -> str:
    """Where a .env (`make env`) keeps one caller's private keys, e.g. ORDERS_SERVICE_JWT_PRIVATE_KEYS;
    scripts/stack.py and docker compose hand it to that process alone as SERVICE_JWT_PRIVATE_KEYS."""
    return caller.upper().replace("-", "_") + "_JWT_PRIVATE_KEYS"


def generate_service_key(caller: str) -> tuple[str, str]:
    """A new key pair for `caller`: (`kid:seed` for its private ring, `caller:kid:key` for the
    verifiers). The kid names the caller, so logs and rings say whose key it is."""
    kid = f"{caller}-{secrets.token_hex(4)}"
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    return f"{kid}:{_b64(seed)}", f"{caller}:{kid}:{_public_text(private.public_key())}"


def mint_service_token(
    keys: ServiceSigningKeys, *, caller: str, audience: str, ttl_seconds: int = 300, now: float | None = None
) -> str:
    issued_at = int(now if now is not None else time.time())
    payload = {
        "iss": caller,
        "sub": caller,
        "aud": audience,
        "role": SERVICE_ROLE,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
    }
    return jwt.encode(
        payload, keys.keys[keys.signing_kid], algorithm=SERVICE_ALGORITHM, headers={"kid": keys.signing_kid}
    )


def verify_service_token(
    public_keys: ServicePublicKeys, token: str, *, audience: str, issuers: Collection[str]
) -> dict[str, Any]:
    """Verify an EdDSA service token against the key its `kid` names, which must belong to the
    issuer the token claims (`iss` = `sub`); return the claims."""
    owner, key = _key_named_by(token, SERVICE_ALGORITHM, public_keys.by_kid)
    if owner not in issuers:
        raise InvalidToken("token issuer is not trusted")
    # `issuer=owner`: a token naming another caller than the key's owner is refused.
    claims = _decode(token, key, SERVICE_ALGORITHM, audience=audience, issuer=owner)
    if claims.get("sub") != owner or claims.get("role") != SERVICE_ROLE:
        raise InvalidToken("service token subject must be its issuer")
    if claims["exp"] - claims["iat"] > MAX_SERVICE_TOKEN_TTL_SECONDS:
        raise InvalidToken("token lives too long")
    return claims


# --- who is calling -----------------------------------------------------------------------------


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
    def is_customer_user(self) -> bool:
        return self.kind == "user" and self.role == "customer"

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
    if ttl_seconds > MAX_USER_TOKEN_TTL_SECONDS:
        raise ValueError(f"user tokens live {MAX_USER_TOKEN_TTL_SECONDS} s at most")
    claims = {
        "iss": USER_TOKEN_ISSUER,
        "aud": USER_TOKEN_AUDIENCE,
        "sub": str(user_id),
        "role": role,
        "customer_id": customer_id,
    }
    return mint(ring, claims, ttl_seconds)


class TokenVerifier:
    """Turns a bearer token into a `Principal` for one service.

    The header's `alg` says which kind of token it is, and nothing else is tried: HS256 tokens
    are user tokens, checked against the user ring (`iss=customers-service`, `aud=b2b-api`, at
    most `MAX_USER_TOKEN_TTL_SECONDS`); EdDSA tokens are service tokens, checked against the
    public key of the issuer they claim, with `aud` = this service and the issuer among `callers`
    (any other issuer is a 401). Which of those callers may use a route is the route's own
    list (`servicekit.web.requires(..., callers=...)`, `may_call`): anywhere else a 403.

    Verified tokens are cached until they expire: the cache key is the whole signed token, so a
    cached entry can only ever match the same valid token. `customer_gone(customer_id)`, when
    given, is asked on every use of a customer user's token (never cached): a token whose
    customer has been deleted is refused from that moment on.
    """

    _CACHE_LIMIT = 10_000

    def __init__(
        self,
        *,
        service_name: str,
        user_ring: KeyRing | None,
        service_keys: ServicePublicKeys | None,
        callers: Collection[str] = (),
        customer_gone: Callable[[int], bool] | None = None,
    ) -> None:
        self.service_name = service_name
        self.user_ring = user_ring
        self.service_keys = service_keys
        self.callers = frozenset(callers)
        self.customer_gone = customer_gone
        self._cache: dict[str, Principal] = {}

    def may_call(self, principal: Principal, callers: Collection[str] | None) -> bool:
        """Whether a verified principal may use a route: users always (roles decide), services
        only when the route names them among its `callers`."""
        if principal.kind != "service":
            return True
        return callers is not None and principal.subject in callers

    def verify(self, token: str) -> Principal:
        principal = self._cache.get(token)
        if principal is None or principal.expires_at <= time.time() - CLOCK_SKEW_SECONDS:
            self._cache.pop(token, None)
            principal = self._verify_uncached(token)
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[token] = principal
        gone = self.customer_gone
        if principal.customer_id is not None and gone is not None and gone(principal.customer_id):
            raise InvalidToken("the token's customer has been deleted")
        return principal

    def _verify_uncached(self, token: str) -> Principal:
        algorithm = _header(token).get("alg")
        if algorithm == SERVICE_ALGORITHM:
            return self._verify_service(token)
        if algorithm == ALGORITHM:
            return self._verify_user(token)
        raise InvalidToken("token algorithm is not accepted")

    def _verify_service(self, token: str) -> Principal:
        if self.service_keys is None or not self.callers:
            raise InvalidToken("service tokens are not accepted here")
        claims = verify_service_token(self.service_keys, token, audience=self.service_name, issuers=self.callers)
        return Principal(kind="service", subject=claims["sub"], role=SERVICE_ROLE, expires_at=int(claims["exp"]))

    def _verify_user(self, token: str) -> Principal:
        if self.user_ring is None:
            raise InvalidToken("user tokens are not accepted here")
        claims = verify(self.user_ring, token, audience=USER_TOKEN_AUDIENCE, issuers=(USER_TOKEN_ISSUER,))
        if claims["exp"] - claims["iat"] > MAX_USER_TOKEN_TTL_SECONDS:
            raise InvalidToken("token lives too long")
        role = claims.get("role")
        if role not in USER_ROLES:
            raise InvalidToken("token role is not recognised")
        customer_id = claims.get("customer_id")
        if customer_id is not None and (not isinstance(customer_id, int) or isinstance(customer_id, bool)):
            raise InvalidToken("token customer_id is malformed")
        if role == "customer" and customer_id is None:
            raise InvalidToken("customer token without customer_id")
        if role == "admin" and customer_id is not None:
            raise InvalidToken("admin token bound to a customer")
        return Principal(
            kind="user",
            subject=str(claims["sub"]),
            role=role,
            customer_id=customer_id,
            expires_at=int(claims["exp"]),
        )


class ServiceTokenMinter:
    """Mints this service's outgoing tokens and reuses each until it is close to expiry."""

    def __init__(
        self,
        keys: ServiceSigningKeys,
        caller: str,
        *,
        ttl_seconds: int = 300,
        refresh_margin_seconds: int = 60,
    ) -> None:
        if refresh_margin_seconds >= ttl_seconds:
            raise ValueError("refresh margin must be shorter than the token lifetime")
        if ttl_seconds > MAX_SERVICE_TOKEN_TTL_SECONDS:
            raise ValueError(f"service tokens live {MAX_SERVICE_TOKEN_TTL_SECONDS} s at most")
        self.keys = keys
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
            token = mint_service_token(self.keys, caller=self.caller, audience=audience, ttl_seconds=self.ttl_seconds)
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
