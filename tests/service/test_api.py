"""The REST API of SPEC section 2, with the seed's request and response fields, and every
error path as {"error": {"code", "message"}}."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from auth_service.models import AuthSession
from auth_service.services import gallery, sessions, tokens

from .conftest import unit

pytestmark = pytest.mark.django_db


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]["code"]


def enroll_someone(creds, user_id="user123"):
    rng = np.random.default_rng(7)
    base = rng.normal(size=128)
    gallery.enroll(
        client=creds.client, user_id=user_id,
        embeddings=[unit(base + 0.05 * rng.normal(size=128)) for _ in range(3)], session=None,
    )


# --- POST /api/auth/client/ ---
def test_client_token_as_in_the_seed(credentials):
    response = APIClient().post(
        "/api/auth/client/",
        {"api_key": credentials.api_key, "secret_key": credentials.secret_key},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert {"token", "client_id", "expires_at"} <= set(body)
    assert body["client_id"] == credentials.client.client_id
    assert body["expires_at"].endswith("Z")
    assert tokens.decode_client_token(body["token"])["sub"] == credentials.client.client_id


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"api_key": "fa_nope", "secret_key": "x"}, 401, "invalid_credentials"),
        ({"api_key": "fa_nope"}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
    ],
)
def test_client_token_errors(credentials, body, status, code):
    response = APIClient().post("/api/auth/client/", body, format="json")
    assert response.status_code == status and error_code(response) == code


def test_wrong_secret_is_401_with_a_challenge(credentials):
    response = APIClient().post(
        "/api/auth/client/", {"api_key": credentials.api_key, "secret_key": "wrong"}, format="json"
    )
    assert response.status_code == 401 and error_code(response) == "invalid_credentials"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_malformed_json_and_wrong_media_type():
    client = APIClient()
    bad = client.post("/api/auth/client/", "{nope", content_type="application/json")
    assert bad.status_code == 400 and error_code(bad) == "invalid_json"
    form = client.post("/api/auth/client/", "a=b", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415 and error_code(form) == "unsupported_media_type"
    get = client.get("/api/auth/client/")
    assert get.status_code == 405 and error_code(get) == "method_not_allowed"


def test_credential_checks_are_throttled(credentials, settings):
    settings.FACEAUTH_CREDENTIAL_RATE = "3/minute"
    client = APIClient()
    for _ in range(3):
        client.post("/api/auth/client/", {"api_key": "fa_x", "secret_key": "y"}, format="json")
    response = client.post(
        "/api/auth/client/",
        {"api_key": credentials.api_key, "secret_key": credentials.secret_key},
        format="json",
    )
    assert response.status_code == 429 and error_code(response) == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0


def test_oversized_bodies_are_refused(credentials):
    response = APIClient().post(
        "/api/auth/client/", {"api_key": "a" * 70_000, "secret_key": "b"}, format="json"
    )
    assert response.status_code == 413 and error_code(response) == "request_too_large"


# --- POST /api/auth/enrollment/ ---
def test_enrollment_session_as_in_the_seed(api):
    response = api.post(
        "/api/auth/enrollment/",
        {"user_id": "user123", "metadata": {"target_samples": 3}},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert {"session_token", "enrollment_id", "websocket_url", "status", "target_samples",
            "expires_at"} <= set(body)
    assert body["status"] == "pending" and body["target_samples"] == 3
    assert body["websocket_url"] == (
        f"ws://testserver/ws/auth/process-image/{body['session_token']}/"
    )
    assert AuthSession.objects.get(pk=body["enrollment_id"]).target_samples == 3


def test_websocket_url_follows_https(api):
    response = api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json", secure=True)
    assert response.json()["websocket_url"].startswith("wss://testserver/ws/auth/process-image/")


def test_websocket_url_follows_proxy_headers_when_trusted(api, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    settings.ALLOWED_HOSTS = ["auth.example.com", "testserver"]
    response = api.post(
        "/api/auth/enrollment/", {"user_id": "u"}, format="json",
        HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="auth.example.com",
    )
    assert response.json()["websocket_url"].startswith("wss://auth.example.com/ws/")


def test_default_target_samples(api, settings):
    response = api.post("/api/auth/enrollment/", {"user_id": "user123"}, format="json")
    assert response.json()["target_samples"] == settings.FACEAUTH_DEFAULT_TARGET_SAMPLES


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user_id": ""},
        {"user_id": "has space"},
        {"user_id": "x" * 129},
        {"user_id": "u", "metadata": {"target_samples": 0}},
        {"user_id": "u", "metadata": {"target_samples": 11}},
        {"user_id": "u", "metadata": {"target_samples": "3"}},
        {"user_id": "u", "metadata": {"target_samples": True}},
        {"user_id": "u", "metadata": {"enrollment_mode": "merge"}},
        {"user_id": "u", "metadata": "not an object"},
        {"user_id": "u", "metadata": {"blob": "x" * 5000}},
    ],
)
def test_enrollment_validation(api, body):
    response = api.post("/api/auth/enrollment/", body, format="json")
    assert response.status_code == 400 and error_code(response) == "invalid_request"


@pytest.mark.parametrize("key", ["match_level", "language", "liveness"])
@pytest.mark.parametrize("value", [{}, [], 3, None])
def test_metadata_options_of_the_wrong_type_are_refused(api, key, value):
    # Found by Schemathesis: {"match_level": {}} made a 500 (a dict cannot be looked up).
    response = api.post("/api/auth/authentication/", {"metadata": {key: value}}, format="json")
    assert response.status_code == 400 and error_code(response) == "invalid_request"


@pytest.mark.parametrize(
    "header, code",
    [
        (None, "not_authenticated"),
        ("Bearer garbage", "invalid_token"),
        ("Bearer a.b.c", "invalid_token"),
        ("Bearer two tokens", "invalid_token"),
        ("Basic dXNlcjpwYXNz", "not_authenticated"),
    ],
)
def test_session_endpoints_need_a_valid_jwt(credentials, header, code):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    for path in ("/api/auth/enrollment/", "/api/auth/authentication/"):
        response = client.post(path, {"user_id": "u"}, format="json")
        assert response.status_code == 401 and error_code(response) == code


def test_expired_jwt_and_api_key_bearer_are_refused_for_session_creation(credentials):
    client = APIClient()
    old = tokens.issue_client_token(
        client_id=credentials.client.client_id, now=timezone.now() - timedelta(hours=2)
    )
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {old.token}")
    response = client.post("/api/auth/enrollment/", {"user_id": "u"}, format="json")
    assert response.status_code == 401 and error_code(response) == "token_expired"
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credentials.api_key}")
    response = client.post("/api/auth/enrollment/", {"user_id": "u"}, format="json")
    assert response.status_code == 401 and error_code(response) == "invalid_token"


def test_tokens_of_disabled_clients_stop_working(api, credentials):
    credentials.client.is_active = False
    credentials.client.save()
    response = api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json")
    assert response.status_code == 401 and error_code(response) == "invalid_credentials"


def test_too_many_open_sessions(api, settings):
    settings.FACEAUTH_MAX_ACTIVE_SESSIONS_PER_CLIENT = 1
    assert api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json").status_code == 201
    response = api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json")
    assert response.status_code == 429 and error_code(response) == "too_many_sessions"


def test_session_creation_is_throttled_per_client(api, other_api, settings):
    settings.FACEAUTH_SESSION_CREATE_RATE = "2/minute"
    for _ in range(2):
        api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json")
    response = api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json")
    assert response.status_code == 429 and error_code(response) == "rate_limited"
    assert other_api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json").status_code == 201


# --- POST /api/auth/authentication/ ---
def test_verification_and_identification_sessions(api, credentials):
    enroll_someone(credentials)
    verification = api.post("/api/auth/authentication/", {"user_id": "user123"}, format="json")
    assert verification.status_code == 201
    body = verification.json()
    assert {"session_token", "session_id", "websocket_url", "status", "mode", "expires_at"} <= set(body)
    assert body["mode"] == "verification" and body["status"] == "pending"
    for payload in ({}, {"user_id": None}, {"user_id": ""}, {"metadata": {"note": "x"}}):
        identification = api.post("/api/auth/authentication/", payload, format="json")
        assert identification.status_code == 201
        assert identification.json()["mode"] == "identification"


def test_authentication_errors(api, credentials, other_credentials):
    response = api.post("/api/auth/authentication/", {}, format="json")
    assert response.status_code == 409 and error_code(response) == "no_enrolled_users"
    enroll_someone(other_credentials)  # another client's user is invisible
    response = api.post("/api/auth/authentication/", {"user_id": "user123"}, format="json")
    assert response.status_code == 404 and error_code(response) == "user_not_found"


# --- GET /api/auth/sessions/{id}/status/ ---
def test_status_with_jwt_and_with_api_key_as_in_the_seed(api, credentials):
    created = api.post("/api/auth/enrollment/", {"user_id": "user123"}, format="json").json()
    url = f"/api/auth/sessions/{created['enrollment_id']}/status/"
    by_jwt = api.get(url)
    assert by_jwt.status_code == 200
    by_key = APIClient()
    by_key.credentials(HTTP_AUTHORIZATION=f"Bearer {credentials.api_key}")
    assert by_key.get(url).json() == by_jwt.json()
    body = by_jwt.json()
    assert body["status"] == "pending" and body["is_active"] is True
    assert body["progress"]["samples_needed"] == 5 and body["result"] is None
    assert body["session_id"] == body["enrollment_id"] == created["enrollment_id"]


def test_status_of_a_finished_session_carries_the_result(api, credentials):
    created = api.post("/api/auth/enrollment/", {"user_id": "user123"}, format="json").json()
    sessions.session_connect(token=created["session_token"])
    from auth_service.services.frames import Verdict

    sessions.session_finish(
        session_id=uuid.UUID(created["enrollment_id"]), verdict=Verdict("liveness_failed", "still")
    )
    body = api.get(f"/api/auth/sessions/{created['enrollment_id']}/status/").json()
    assert body["status"] == "failed" and body["is_active"] is False
    assert body["result"]["success"] is False and body["reason"] == "liveness_failed"
    assert set(body["encrypted_data"]) >= {"encrypted_payload", "hmac"}


def test_status_by_api_key_alone_hides_the_plaintext_result(api, credentials):
    created = api.post("/api/auth/enrollment/", {"user_id": "user123"}, format="json").json()
    sessions.session_connect(token=created["session_token"])
    from auth_service.services.frames import Verdict

    sessions.session_finish(
        session_id=uuid.UUID(created["enrollment_id"]), verdict=Verdict("liveness_failed", "still")
    )
    by_key = APIClient()
    by_key.credentials(HTTP_AUTHORIZATION=f"Bearer {credentials.api_key}")
    body = by_key.get(f"/api/auth/sessions/{created['enrollment_id']}/status/").json()
    assert body["status"] == "failed" and body["result"] is None
    # The encrypted copy is there: only the holder of the secret key can read it.
    assert set(body["encrypted_data"]) >= {"encrypted_payload", "hmac"}


@pytest.mark.parametrize("header", [None, "Bearer fa_wrong"])
def test_status_needs_credentials(api, header):
    created = api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json").json()
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(f"/api/auth/sessions/{created['session_id']}/status/")
    assert response.status_code == 401


def test_status_of_unknown_malformed_or_foreign_sessions_is_404(api, other_api):
    created = api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json").json()
    for path in (f"/api/auth/sessions/{uuid.uuid4()}/status/", "/api/auth/sessions/xyz/status/"):
        response = api.get(path)
        assert response.status_code == 404 and error_code(response) == "session_not_found"
    foreign = other_api.get(f"/api/auth/sessions/{created['session_id']}/status/")
    assert foreign.status_code == 404 and error_code(foreign) == "session_not_found"


def test_status_of_an_overdue_pending_session_is_expired(api):
    created = api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json").json()
    AuthSession.objects.filter(pk=created["session_id"]).update(expires_at=timezone.now())
    assert api.get(f"/api/auth/sessions/{created['session_id']}/status/").json()["status"] == "expired"


def test_cancel(api, other_api):
    created = api.post("/api/auth/enrollment/", {"user_id": "u"}, format="json").json()
    url = f"/api/auth/sessions/{created['session_id']}/cancel/"
    assert other_api.post(url).status_code == 404
    response = api.post(url)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(url)
    assert again.status_code == 409 and error_code(again) == "session_closed"


# --- users ---
def test_list_get_and_delete_users_of_one_client_only(api, other_api, credentials, other_credentials):
    enroll_someone(credentials, "alice")
    enroll_someone(credentials, "bob")
    enroll_someone(other_credentials, "mallory")
    listing = api.get("/api/auth/users/").json()
    assert listing["count"] == 2
    assert [u["user_id"] for u in listing["results"]] == ["alice", "bob"]
    assert listing["results"][0]["templates"] == 3
    page = api.get("/api/auth/users/?limit=1&offset=1").json()
    assert [u["user_id"] for u in page["results"]] == ["bob"]
    assert api.get("/api/auth/users/?limit=0").status_code == 400
    assert api.get("/api/auth/users/alice/").json()["templates"] == 3
    assert api.get("/api/auth/users/mallory/").status_code == 404
    assert api.delete("/api/auth/users/mallory/").status_code == 404
    deleted = api.delete("/api/auth/users/alice/")
    assert deleted.status_code == 200 and deleted.json()["templates_deleted"] == 3
    missing = api.get("/api/auth/users/alice/")
    assert missing.status_code == 404 and error_code(missing) == "user_not_found"
    assert other_api.get("/api/auth/users/").json()["count"] == 1


# --- CORS, health, demo ---
def test_cors_preflight_and_headers(credentials, settings):
    settings.FACEAUTH_ALLOWED_ORIGINS = ["null", "http://localhost:8080"]
    client = APIClient()
    preflight = client.options(
        "/api/auth/enrollment/", HTTP_ORIGIN="null",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "null"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    response = client.post(
        "/api/auth/client/",
        {"api_key": credentials.api_key, "secret_key": credentials.secret_key},
        format="json", HTTP_ORIGIN="http://localhost:8080",
    )
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert "Origin" in response.headers["Vary"]
    foreign = client.post("/api/auth/client/", {}, format="json", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_health(db):
    assert APIClient().get("/api/health/").json() == {"status": "ok"}


def test_demo_page_and_assets_are_served_without_traversal(db, settings, tmp_path):
    settings.BASE_DIR = tmp_path
    (tmp_path / "websocket_demo.html").write_text("<html>demo</html>")
    (tmp_path / "demo_assets").mkdir()
    (tmp_path / "demo_assets" / "faceauth-client.js").write_text("export {};")
    (tmp_path / "secret.txt").write_text("no")
    client = APIClient()
    page = client.get("/demo/")
    assert page.status_code == 200 and b"demo" in b"".join(page.streaming_content)
    asset = client.get("/demo/demo_assets/faceauth-client.js")
    assert asset.status_code == 200 and "javascript" in asset.headers["Content-Type"]
    for path in ("/demo/demo_assets/../secret.txt", "/demo/demo_assets/%2e%2e/secret.txt",
                 "/demo/demo_assets/..%2fsecret.txt", "/demo/demo_assets//etc/passwd",
                 "/demo/demo_assets/missing.js"):
        assert client.get(path).status_code == 404, path
    assert client.post("/demo/").status_code == 405


def test_demo_page_missing_is_404(db, settings, tmp_path):
    settings.BASE_DIR = tmp_path
    assert APIClient().get("/demo/").status_code == 404

