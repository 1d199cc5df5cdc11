"""Operators see clients, sessions and enrolled users in the admin, never secrets,
session tokens, encrypted results or embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import User

from auth_service.services import gallery, sessions

from .conftest import unit

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client.login(username="operator", password="pw-for-tests-only")
    return client


def test_admin_lists_everything_without_secrets(operator, credentials):
    vector = unit(np.ones(128))
    gallery.enroll(client=credentials.client, user_id="alice", embeddings=[vector], session=None)
    created = sessions.enrollment_session_create(
        client=credentials.client, user_id="alice", target_samples=3
    )
    client_row = credentials.client
    user = gallery.user_get(client=credentials.client, user_id="alice")
    secrets_ = [
        credentials.secret_key, credentials.api_key, client_row.secret_hash,
        client_row.secret_encrypted, client_row.api_key_digest, created.token,
        created.session.token_digest,
    ]
    pages = [
        "/admin/auth_service/apiclient/",
        f"/admin/auth_service/apiclient/{client_row.pk}/change/",
        "/admin/auth_service/authsession/",
        f"/admin/auth_service/authsession/{created.session.pk}/change/",
        "/admin/auth_service/enrolleduser/",
        f"/admin/auth_service/enrolleduser/{user.pk}/change/",
    ]
    for page in pages:
        response = operator.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        for secret in secrets_:
            assert secret not in html, (page, secret[:8])
    assert "alice" in operator.get("/admin/auth_service/enrolleduser/").content.decode()
    # Keys are only ever issued by `manage.py create_client`.
    assert operator.get("/admin/auth_service/apiclient/add/").status_code == 403
