from __future__ import annotations

import numpy as np
import pytest
from django.db import IntegrityError
from django.utils import timezone

from auth_service.models import AuthSession, EnrolledUser, FaceTemplate
from auth_service.services import gallery

from .conftest import unit

pytestmark = pytest.mark.django_db


def test_template_stores_the_embedding_as_float32_bytes(credentials):
    user = EnrolledUser.objects.create(client=credentials.client, user_id="u1")
    vector = unit(np.arange(1, 129))
    template = FaceTemplate.objects.create(
        user=user, embedding=gallery.to_bytes(vector), model=gallery.MODEL_TAG
    )
    template.refresh_from_db()
    assert len(bytes(template.embedding)) == 128 * 4
    np.testing.assert_array_equal(template.vector, vector)


def test_user_ids_are_unique_per_client_only(credentials, other_credentials):
    EnrolledUser.objects.create(client=credentials.client, user_id="same")
    EnrolledUser.objects.create(client=other_credentials.client, user_id="same")
    with pytest.raises(IntegrityError):
        EnrolledUser.objects.create(client=credentials.client, user_id="same")


def test_deleting_a_client_removes_its_users_templates_and_sessions(credentials):
    user = EnrolledUser.objects.create(client=credentials.client, user_id="u1")
    FaceTemplate.objects.create(user=user, embedding=b"\0" * 512, model="m")
    AuthSession.objects.create(
        client=credentials.client, token_digest="d", kind="enrollment", mode="enrollment",
        expires_at=timezone.now(),
    )
    credentials.client.delete()
    assert not EnrolledUser.objects.exists()
    assert not FaceTemplate.objects.exists()
    assert not AuthSession.objects.exists()


def test_client_is_an_authenticated_principal(credentials):
    assert credentials.client.is_authenticated
    assert credentials.client.client_id == str(credentials.client.id)
