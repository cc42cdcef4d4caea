"""Bearer-token authentication and role-based authorization.

Tokens are signed JWTs (HS256, key from IOP_JWT_SECRET) with `sub` (an opaque
principal id) and `roles`. Each service declares which roles may call each of
its methods; a method it does not declare is denied. Health and reflection stay
open so probes work.

    python -m services.plumbing.auth mint --sub app-1 --role platform
"""

from __future__ import annotations

import argparse
import contextvars
import time
from dataclasses import dataclass

import jwt

from services.plumbing.errors import PermissionDenied, Unauthenticated
from services.plumbing.settings import Settings, get_settings

ROLES = frozenset({"client", "clinician", "supervisor", "platform", "partner"})


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]

    def has_any(self, roles: frozenset[str]) -> bool:
        return bool(self.roles & roles)


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("iop_principal", default=None)


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("NO_PRINCIPAL", "no authenticated principal for this call")
    return principal


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def mint_token(settings: Settings, subject: str, roles: list[str], ttl_s: int = 3600) -> str:
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    now = int(time.time())
    claims = {
        "sub": subject,
        "roles": sorted(roles),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


# Verified tokens, so that a client's repeated calls with the same token pay for the
# signature check once: raw token -> (principal, expiry). Only successful verifications
# are kept, and each entry is dropped at the token's own expiry.
_VERIFIED_CACHE_SIZE = 10_000
_verified: dict[str, tuple[Principal, float]] = {}


def verify_token(settings: Settings, authorization: str | None) -> Principal:
    if authorization:
        cached = _verified.get(authorization)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires:
                return principal
            del _verified[authorization]
    principal, expires = _verify_signed_token(settings, authorization)
    if len(_verified) >= _VERIFIED_CACHE_SIZE:
        _verified.clear()
    _verified[authorization or ""] = (principal, expires)
    return principal


def _verify_signed_token(settings: Settings, authorization: str | None) -> tuple[Principal, float]:
    if not authorization:
        raise Unauthenticated("MISSING_TOKEN", "missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("MALFORMED_AUTHORIZATION", "authorization must be 'Bearer <token>'")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("TOKEN_EXPIRED", "bearer token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated("INVALID_TOKEN", "bearer token is not valid") from exc
    roles = claims.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated("INVALID_TOKEN", "bearer token has no roles claim")
    return Principal(subject=str(claims["sub"]), roles=frozenset(roles) & ROLES), float(claims["exp"])


def authorize(principal: Principal, method: str, access: dict[str, frozenset[str]]) -> None:
    allowed = access.get(method)
    if allowed is None:
        raise PermissionDenied("METHOD_NOT_ALLOWED", f"{method} is not open to any role")
    if not principal.has_any(allowed):
        raise PermissionDenied("ROLE_NOT_ALLOWED", f"{method} requires one of: {', '.join(sorted(allowed))}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Mint a local bearer token (dev/test key from settings).")
    sub = parser.add_subparsers(dest="command", required=True)
    mint = sub.add_parser("mint")
    mint.add_argument("--sub", required=True, help="opaque principal id")
    mint.add_argument("--role", action="append", required=True, choices=sorted(ROLES))
    mint.add_argument("--ttl", type=int, default=3600, help="seconds")
    args = parser.parse_args()
    print(mint_token(get_settings(), args.sub, args.role, args.ttl))


if __name__ == "__main__":
    main()
