from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from auth_service.errors import (
    InvalidTransition,
    NoEnrolledUsers,
    SessionCancelled,
    SessionClosed,
    SessionExpired,
    SessionInUse,
    SessionNotFound,
    TooManySessions,
    UserNotFound,
)
from auth_service.models import AuthSession, SessionStatus
from auth_service.services import crypto, gallery, sessions
from auth_service.services.frames import Verdict

from .conftest import unit

pytestmark = pytest.mark.django_db
S = SessionStatus


def enroll_session(creds, user_id="u1", target=3):
    return sessions.enrollment_session_create(
        client=creds.client, user_id=user_id, target_samples=target
    )


def vectors(seed: int, count: int, spread: float = 0.05) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=128)
    return [unit(base + spread * rng.normal(size=128)) for _ in range(count)]


def test_tokens_are_random_and_only_their_digest_is_stored(credentials):
    first, second = enroll_session(credentials), enroll_session(credentials)
    assert first.token != second.token and len(first.token) >= 40
    row = AuthSession.objects.get(pk=first.session.pk)
    assert row.token_digest == sessions.token_digest(first.token) != first.token
    assert row.status == S.PENDING
    assert row.expires_at - row.created_at == pytest.approx(timedelta(minutes=5), abs=timedelta(seconds=2))


@pytest.mark.parametrize(
    "path",
    [
        [S.ACTIVE, S.COMPLETED],
        [S.ACTIVE, S.FAILED],
        [S.ACTIVE, S.EXPIRED],
        [S.ACTIVE, S.CANCELLED],
        [S.EXPIRED],
        [S.CANCELLED],
    ],
)
def test_legal_transitions(credentials, path):
    session = enroll_session(credentials).session
    for state in path:
        sessions.transition(session, state)
    session.refresh_from_db()
    assert session.status == path[-1]


@pytest.mark.parametrize(
    "path, illegal",
    [
        ([], S.COMPLETED),  # pending cannot complete without a socket
        ([], S.FAILED),
        ([S.ACTIVE], S.PENDING),
        ([S.ACTIVE, S.COMPLETED], S.ACTIVE),  # single use
        ([S.ACTIVE, S.COMPLETED], S.FAILED),
        ([S.EXPIRED], S.ACTIVE),
        ([S.CANCELLED], S.ACTIVE),
    ],
)
def test_illegal_transitions_raise(credentials, path, illegal):
    session = enroll_session(credentials).session
    for state in path:
        sessions.transition(session, state)
    with pytest.raises(InvalidTransition):
        sessions.transition(session, illegal)


def test_a_stale_copy_loses_the_race(credentials):
    session = enroll_session(credentials).session
    stale = AuthSession.objects.get(pk=session.pk)
    sessions.transition(session, S.ACTIVE)
    with pytest.raises(InvalidTransition):
        sessions.transition(stale, S.ACTIVE)  # a second socket claiming the same session


def test_connect_claims_once(credentials):
    created = enroll_session(credentials)
    session = sessions.session_connect(token=created.token)
    assert session.status == S.ACTIVE and session.started_at is not None
    with pytest.raises(SessionInUse):
        sessions.session_connect(token=created.token)


def test_connect_errors(credentials):
    with pytest.raises(SessionNotFound):
        sessions.session_connect(token="unknown")
    expired = enroll_session(credentials)
    AuthSession.objects.filter(pk=expired.session.pk).update(expires_at=timezone.now())
    with pytest.raises(SessionExpired):
        sessions.session_connect(token=expired.token)
    assert AuthSession.objects.get(pk=expired.session.pk).status == S.EXPIRED
    with pytest.raises(SessionExpired):
        sessions.session_connect(token=expired.token)
    done = enroll_session(credentials)
    sessions.transition(done.session, S.ACTIVE)
    sessions.transition(done.session, S.COMPLETED)
    with pytest.raises(SessionClosed):
        sessions.session_connect(token=done.token)


def test_sessions_of_disabled_clients_cannot_connect(credentials):
    created = enroll_session(credentials)
    credentials.client.is_active = False
    credentials.client.save()
    with pytest.raises(SessionNotFound):
        sessions.session_connect(token=created.token)


def test_open_sessions_per_client_are_capped(credentials, other_credentials, settings):
    settings.FACEAUTH_MAX_ACTIVE_SESSIONS_PER_CLIENT = 2
    first = enroll_session(credentials)
    enroll_session(credentials)
    with pytest.raises(TooManySessions):
        enroll_session(credentials)
    enroll_session(other_credentials)  # the cap is per client
    sessions.transition(first.session, S.CANCELLED)
    enroll_session(credentials)


def test_overdue_sessions_do_not_count_and_are_marked_expired(credentials, settings):
    settings.FACEAUTH_MAX_ACTIVE_SESSIONS_PER_CLIENT = 1
    old = enroll_session(credentials)
    AuthSession.objects.filter(pk=old.session.pk).update(expires_at=timezone.now())
    enroll_session(credentials)
    assert AuthSession.objects.get(pk=old.session.pk).status == S.EXPIRED


def test_authentication_needs_someone_to_match(credentials):
    with pytest.raises(NoEnrolledUsers):
        sessions.authentication_session_create(client=credentials.client, user_id=None)
    with pytest.raises(UserNotFound):
        sessions.authentication_session_create(client=credentials.client, user_id="ghost")
    gallery.enroll(client=credentials.client, user_id="u1", embeddings=vectors(1, 3), session=None)
    verification = sessions.authentication_session_create(client=credentials.client, user_id="u1")
    identification = sessions.authentication_session_create(client=credentials.client, user_id=None)
    assert verification.session.mode == "verification"
    assert identification.session.mode == "identification"
    assert verification.session.target_samples == 3


def test_finish_enrollment_stores_templates_and_encrypts_the_result(credentials):
    created = enroll_session(credentials, target=3)
    sessions.session_connect(token=created.token)
    verdict = Verdict(None, None, embeddings=vectors(1, 3), liveness={"is_live": True, "blinks": 1,
                      "head_movement": True}, frames_received=40, frames_processed=40)
    session = sessions.session_finish(session_id=created.session.pk, verdict=verdict)
    assert session.status == S.COMPLETED
    assert session.result["success"] is True and session.result["samples"] == 3
    assert gallery.user_get(client=credentials.client, user_id="u1").templates.count() == 3
    assert crypto.verify_result_hmac(session.encrypted_result, credentials.secret_key)
    from .test_crypto import decrypt_response

    payload = decrypt_response(session.encrypted_result["encrypted_payload"], credentials.secret_key)
    assert payload["id"] == str(session.id) == payload["enrollment_id"]
    assert payload["timestamp"].endswith("Z")
    assert payload["user_id"] == "u1" and payload["type"] == "enrollment"
    # single use: it cannot finish or connect again
    with pytest.raises(InvalidTransition):
        sessions.session_finish(session_id=created.session.pk, verdict=verdict)
    with pytest.raises(SessionClosed):
        sessions.session_connect(token=created.token)


def test_finish_with_a_failure_reason_stores_nothing(credentials):
    created = enroll_session(credentials)
    sessions.session_connect(token=created.token)
    verdict = Verdict("liveness_failed", "a still image was detected")
    session = sessions.session_finish(session_id=created.session.pk, verdict=verdict)
    assert session.status == S.FAILED and session.reason == "liveness_failed"
    assert not gallery.has_templates(client=credentials.client)


def test_finish_on_expiry_marks_the_session_expired(credentials):
    created = enroll_session(credentials)
    sessions.session_connect(token=created.token)
    session = sessions.session_finish(
        session_id=created.session.pk, verdict=Verdict("session_expired", "time is up")
    )
    assert session.status == S.EXPIRED and session.result["success"] is False


def test_verification_outcomes(credentials):
    alice, bob = vectors(1, 3), vectors(2, 3)
    gallery.enroll(client=credentials.client, user_id="alice", embeddings=alice, session=None)
    live = {"is_live": True, "blinks": 2, "head_movement": True, "presentation": "live", "failure": None}

    def attempt(probes):
        created = sessions.authentication_session_create(client=credentials.client, user_id="alice")
        sessions.session_connect(token=created.token)
        return sessions.session_finish(
            session_id=created.session.pk, verdict=Verdict(None, None, embeddings=probes, liveness=live)
        )

    ok = attempt(vectors(1, 3))
    assert ok.status == S.COMPLETED and ok.result["user_id"] == "alice"
    assert ok.result["similarity"] >= ok.result["threshold"]
    assert ok.result["liveness"] == {"mode": "passive", "is_live": True, "blinks": 2, "head_movement": True,
                                     "presentation": "live", "failure": None}
    wrong = attempt(bob)
    assert wrong.status == S.FAILED and wrong.result["reason"] == "no_match"
    assert wrong.result["user_id"] is None


def test_a_user_deleted_mid_session_fails_cleanly(credentials):
    gallery.enroll(client=credentials.client, user_id="alice", embeddings=vectors(1, 3), session=None)
    created = sessions.authentication_session_create(client=credentials.client, user_id="alice")
    sessions.session_connect(token=created.token)
    gallery.user_delete(client=credentials.client, user_id="alice")
    session = sessions.session_finish(
        session_id=created.session.pk, verdict=Verdict(None, None, embeddings=vectors(1, 3))
    )
    assert session.result["reason"] == "user_not_found"


def test_abort_and_cancel(credentials):
    created = enroll_session(credentials)
    sessions.session_connect(token=created.token)
    assert sessions.session_abort(session_id=created.session.pk, reason="disconnected")
    assert not sessions.session_abort(session_id=created.session.pk, reason="disconnected")
    assert AuthSession.objects.get(pk=created.session.pk).status == S.CANCELLED

    other = enroll_session(credentials)
    sessions.session_cancel(client=credentials.client, session_id=other.session.pk)
    with pytest.raises(SessionClosed):
        sessions.session_cancel(client=credentials.client, session_id=other.session.pk)
    with pytest.raises(SessionCancelled):
        sessions.session_finish(session_id=other.session.pk, verdict=Verdict("x", None))


def test_a_client_never_sees_another_clients_session(credentials, other_credentials):
    created = enroll_session(credentials)
    with pytest.raises(SessionNotFound):
        sessions.session_for_client(client=other_credentials.client, session_id=created.session.pk)
    with pytest.raises(SessionNotFound):
        sessions.session_cancel(client=other_credentials.client, session_id=created.session.pk)


def test_reading_an_abandoned_active_session_expires_it(credentials):
    created = enroll_session(credentials)
    sessions.session_connect(token=created.token)
    AuthSession.objects.filter(pk=created.session.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    session = sessions.session_for_client(client=credentials.client, session_id=created.session.pk)
    assert session.status == S.EXPIRED
