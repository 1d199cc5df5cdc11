"""API clients: creation, secret rotation and the credential checks."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from auth_service.errors import InvalidCredentials, InvalidRequest
from auth_service.models import ApiClient
from auth_service.services import crypto

API_KEY_PREFIX = "fa_"
SECRET_KEY_PREFIX = "fas_"


@dataclass(frozen=True)
class ClientCredentials:
    """Credentials as issued: the only moment the plaintext keys exist outside the client."""

    client: ApiClient
    api_key: str
    secret_key: str

    def as_dict(self) -> dict[str, str]:
        return {
            "client_id": self.client.client_id,
            "api_key": self.api_key,
            "secret_key": self.secret_key,
        }


@functools.cache
def _dummy_hash() -> str:
    """A real hash to check against when the API key is unknown, so that an unknown key
    costs as much time as a wrong secret (no key enumeration by timing)."""
    return make_password(secrets.token_urlsafe(16))


def api_key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def _new_secret() -> str:
    return SECRET_KEY_PREFIX + secrets.token_urlsafe(32)


def client_create(*, name: str) -> ClientCredentials:
    """Creates a client with a fresh api_key and secret_key."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidRequest("The client name must be 1 to 100 characters.")
    if ApiClient.objects.filter(name=name).exists():
        raise InvalidRequest(f"A client named {name!r} already exists.", code="client_exists")
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(24)
    secret_key = _new_secret()
    client = ApiClient.objects.create(
        name=name,
        api_key_digest=api_key_digest(api_key),
        api_key_prefix=api_key[:10],
        secret_hash=make_password(secret_key),
        secret_encrypted=crypto.seal(secret_key),
    )
    return ClientCredentials(client, api_key, secret_key)


@transaction.atomic
def client_rotate_secret(*, client: ApiClient) -> ClientCredentials:
    """Issues a new api_key and secret_key for the client; the old pair stops working at once.

    Both change: a rotation is usually done because something leaked, and the old API key
    alone still reads session status."""
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(24)
    secret_key = _new_secret()
    client.api_key_digest = api_key_digest(api_key)
    client.api_key_prefix = api_key[:10]
    client.secret_hash = make_password(secret_key)
    client.secret_encrypted = crypto.seal(secret_key)
    client.secret_rotated_at = timezone.now()
    client.save(
        update_fields=[
            "api_key_digest", "api_key_prefix", "secret_hash", "secret_encrypted",
            "secret_rotated_at",
        ]
    )
    return ClientCredentials(client, api_key, secret_key)


def client_by_api_key(api_key: str) -> ApiClient:
    """The active client owning ``api_key`` (used alone only for read-only status checks)."""
    client = ApiClient.objects.filter(api_key_digest=api_key_digest(api_key)).first()
    # The digest lookup is an index probe; compare again in constant time all the same.
    if (
        client is None
        or not client.is_active
        or not hmac.compare_digest(client.api_key_digest, api_key_digest(api_key))
    ):
        raise InvalidCredentials("Unknown or inactive API key.")
    return client


def client_authenticate(*, api_key: str, secret_key: str) -> ApiClient:
    """The active client for the pair, or InvalidCredentials. Always runs one slow hash."""
    client = ApiClient.objects.filter(api_key_digest=api_key_digest(api_key)).first()
    if client is None:
        check_password(secret_key, _dummy_hash())
        raise InvalidCredentials()
    # check_password compares in constant time and upgrades the hash if settings changed.
    def upgrade(raw: str) -> None:
        ApiClient.objects.filter(pk=client.pk).update(secret_hash=make_password(raw))

    if not check_password(secret_key, client.secret_hash, setter=upgrade) or not client.is_active:
        raise InvalidCredentials()
    ApiClient.objects.filter(pk=client.pk).update(last_authenticated_at=timezone.now())
    return client


def client_get_active(*, client_id: str) -> ApiClient:
    """The client named in a token, if it still exists and is active."""
    try:
        client = ApiClient.objects.filter(pk=client_id, is_active=True).first()
    except (ValueError, ValidationError):
        client = None
    if client is None:
        raise InvalidCredentials("The client of this token no longer exists or is disabled.")
    return client


def client_secret(client: ApiClient) -> str:
    """The client's secret key, decrypted, to encrypt its results."""
    return crypto.unseal(client.secret_encrypted)
