"""Short-lived bearer tokens for API clients: JWT, HS256, with iss, aud, sub, iat, exp, jti."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from django.conf import settings
from django.utils import timezone

from auth_service.errors import InvalidToken, TokenExpired
from auth_service.services.crypto import derive_key

ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp"]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


def _signing_key() -> bytes:
    return derive_key("jwt")


def issue_client_token(*, client_id: str, now: datetime | None = None) -> IssuedToken:
    """A signed token for the client, valid FACEAUTH_JWT_TTL_SECONDS."""
    issued = (now or timezone.now()).replace(microsecond=0)
    expires = issued + timedelta(seconds=settings.FACEAUTH_JWT_TTL_SECONDS)
    claims = {
        "iss": settings.FACEAUTH_JWT_ISSUER,
        "aud": settings.FACEAUTH_JWT_AUDIENCE,
        "sub": client_id,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_urlsafe(12),
    }
    return IssuedToken(jwt.encode(claims, _signing_key(), algorithm=ALGORITHM), expires)


def decode_client_token(token: str) -> dict:
    """The verified claims of a token; raises TokenExpired or InvalidToken.

    Only HS256 is accepted (no "none", no algorithm confusion); issuer and audience must
    be ours."""
    try:
        return jwt.decode(
            token,
            _signing_key(),
            algorithms=[ALGORITHM],
            audience=settings.FACEAUTH_JWT_AUDIENCE,
            issuer=settings.FACEAUTH_JWT_ISSUER,
            options={"require": _REQUIRED_CLAIMS},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired() from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"The bearer token is invalid ({exc}).") from None


def looks_like_jwt(token: str) -> bool:
    """A JWT has three dot-separated parts; API keys have none."""
    return token.count(".") == 2
