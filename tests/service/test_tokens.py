from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from auth_service.errors import InvalidToken, TokenExpired
from auth_service.services import tokens
from auth_service.services.crypto import derive_key


def test_token_round_trip_carries_standard_claims(settings):
    issued = tokens.issue_client_token(client_id="c-1")
    claims = tokens.decode_client_token(issued.token)
    assert claims["sub"] == "c-1"
    assert claims["iss"] == settings.FACEAUTH_JWT_ISSUER
    assert claims["aud"] == settings.FACEAUTH_JWT_AUDIENCE
    assert claims["exp"] - claims["iat"] == settings.FACEAUTH_JWT_TTL_SECONDS
    assert jwt.get_unverified_header(issued.token)["alg"] == "HS256"
    assert issued.expires_at > timezone.now()


def test_expired_token_is_refused():
    old = tokens.issue_client_token(client_id="c-1", now=timezone.now() - timedelta(days=1))
    with pytest.raises(TokenExpired):
        tokens.decode_client_token(old.token)


@pytest.mark.parametrize("claim, value", [("aud", "someone-else"), ("iss", "another-issuer")])
def test_foreign_audience_or_issuer_is_refused(claim, value):
    claims = jwt.decode(
        tokens.issue_client_token(client_id="c-1").token, options={"verify_signature": False}
    )
    forged = jwt.encode({**claims, claim: value}, derive_key("jwt"), algorithm="HS256")
    with pytest.raises(InvalidToken):
        tokens.decode_client_token(forged)


def test_unsigned_and_wrongly_signed_tokens_are_refused():
    claims = jwt.decode(
        tokens.issue_client_token(client_id="c-1").token, options={"verify_signature": False}
    )
    unsigned = jwt.encode(claims, None, algorithm="none")
    other_key = jwt.encode(claims, b"x" * 32, algorithm="HS256")
    for token in (unsigned, other_key, "garbage", ""):
        with pytest.raises(InvalidToken):
            tokens.decode_client_token(token)


def test_tokens_without_expiry_are_refused():
    forged = jwt.encode(
        {"sub": "c-1", "iss": "faceauth", "aud": "faceauth-api", "iat": 0},
        derive_key("jwt"),
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken):
        tokens.decode_client_token(forged)


def test_looks_like_jwt():
    assert tokens.looks_like_jwt(tokens.issue_client_token(client_id="c").token)
    assert not tokens.looks_like_jwt("fa_abcdef")
