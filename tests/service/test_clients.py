from __future__ import annotations

import pytest
from django.conf import global_settings
from django.contrib.auth.hashers import identify_hasher

from auth_service.errors import InvalidCredentials, InvalidRequest
from auth_service.models import ApiClient
from auth_service.services import clients

pytestmark = pytest.mark.django_db


def test_created_client_authenticates_with_its_pair(credentials):
    client = clients.client_authenticate(
        api_key=credentials.api_key, secret_key=credentials.secret_key
    )
    assert client == credentials.client
    client.refresh_from_db()
    assert client.last_authenticated_at is not None


def test_no_secret_is_stored_in_plaintext(settings):
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS  # the production default
    credentials = clients.client_create(name="slow-hash")
    row = ApiClient.objects.filter(pk=credentials.client.pk).values().get()
    stored = " ".join(str(value) for value in row.values())
    assert credentials.secret_key not in stored
    assert credentials.api_key not in stored
    # The credential check uses a slow, salted password hash.
    assert identify_hasher(row["secret_hash"]).algorithm == "pbkdf2_sha256"
    assert clients.client_secret(credentials.client) == credentials.secret_key


@pytest.mark.parametrize("which", ["api_key", "secret_key"])
def test_wrong_key_is_refused(credentials, which):
    pair = {"api_key": credentials.api_key, "secret_key": credentials.secret_key}
    pair[which] += "x"
    with pytest.raises(InvalidCredentials):
        clients.client_authenticate(**pair)


def test_inactive_client_is_refused(credentials):
    ApiClient.objects.filter(pk=credentials.client.pk).update(is_active=False)
    with pytest.raises(InvalidCredentials):
        clients.client_authenticate(
            api_key=credentials.api_key, secret_key=credentials.secret_key
        )
    with pytest.raises(InvalidCredentials):
        clients.client_by_api_key(credentials.api_key)


def test_api_key_alone_identifies_the_client(credentials):
    assert clients.client_by_api_key(credentials.api_key) == credentials.client
    with pytest.raises(InvalidCredentials):
        clients.client_by_api_key("fa_unknown")


def test_rotation_replaces_both_keys(credentials):
    rotated = clients.client_rotate_secret(client=credentials.client)
    assert rotated.api_key != credentials.api_key
    assert rotated.secret_key != credentials.secret_key
    with pytest.raises(InvalidCredentials):
        clients.client_authenticate(
            api_key=credentials.api_key, secret_key=credentials.secret_key
        )
    assert clients.client_authenticate(api_key=rotated.api_key, secret_key=rotated.secret_key)
    assert clients.client_secret(rotated.client) == rotated.secret_key


def test_names_are_unique_and_required(credentials):
    with pytest.raises(InvalidRequest):
        clients.client_create(name="acme")
    with pytest.raises(InvalidRequest):
        clients.client_create(name="  ")


def test_client_get_active_refuses_unknown_ids(credentials):
    assert clients.client_get_active(client_id=credentials.client.client_id) == credentials.client
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(InvalidCredentials):
            clients.client_get_active(client_id=bad)
