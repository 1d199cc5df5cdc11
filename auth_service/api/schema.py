"""OpenAPI description of the REST API (drf-spectacular): the response shapes the views
build, the error body every failure shares, and the two bearer schemes.

The serializers here describe output only; the views keep building their JSON with the
functions in api.serializers, so documenting changes no byte of a response."""

from __future__ import annotations

from pathlib import Path

import drf_spectacular_sidecar
from django.http import FileResponse, HttpRequest
from django.views.decorators.http import require_safe
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from auth_service.demo import confined_file


class ClientJWTScheme(OpenApiAuthenticationExtension):
    target_class = "auth_service.api.authentication.ClientJWTAuthentication"
    name = "clientJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The token from POST /api/auth/client/.",
        }


class ApiKeyOrJWTScheme(OpenApiAuthenticationExtension):
    target_class = "auth_service.api.authentication.ApiKeyOrJWTAuthentication"
    name = "clientJWTOrApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The JWT from POST /api/auth/client/, or the API key itself "
            "(then the plaintext result is left out; the encrypted one is included).",
        }


# --- errors ---
class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine code (docs/websocket-guide.md lists them).")
    message = serializers.CharField(help_text="Explanation for people.")
    fields = serializers.DictField(
        required=False, help_text="invalid_request only: the message(s) of each invalid field."
    )


class ErrorBody(serializers.Serializer):
    error = ErrorDetail()


_ERROR_CODES = {
    400: "invalid_request (a field is missing or invalid; see `fields`), invalid_json",
    401: "not_authenticated, invalid_token, token_expired, invalid_credentials",
    404: "not_found, session_not_found, user_not_found, webhook_not_configured",
    409: "no_enrolled_users, session_closed, invalid_session_state",
    413: "request_too_large (bodies are limited to 64 KiB)",
    415: "unsupported_media_type (send application/json)",
    429: "rate_limited (with Retry-After), too_many_sessions",
    503: "overloaded (the server is at capacity; with Retry-After)",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation: the shared body, with the codes it may carry."""
    return {
        status: OpenApiResponse(ErrorBody, description=f"Error codes: {_ERROR_CODES[status]}.")
        for status in statuses
    }


# Every JSON-body endpoint can answer these besides its own errors.
BODY_ERRORS = (400, 413, 415)


# --- responses ---
class ClientToken(serializers.Serializer):
    token = serializers.CharField(help_text="JWT (HS256) for the Authorization: Bearer header.")
    token_type = serializers.CharField()
    client_id = serializers.UUIDField()
    expires_at = serializers.DateTimeField()


class _SessionCreated(serializers.Serializer):
    session_token = serializers.CharField(help_text="Single-use; only in this response.")
    session_id = serializers.UUIDField()
    websocket_url = serializers.CharField(help_text="ws(s)://HOST/ws/auth/process-image/{token}/")
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()
    user_id = serializers.CharField(allow_null=True)


class EnrollmentSessionCreated(_SessionCreated):
    enrollment_id = serializers.UUIDField(help_text="Same as session_id.")
    target_samples = serializers.IntegerField()


class AuthenticationSessionCreated(_SessionCreated):
    mode = serializers.ChoiceField(choices=["verification", "identification"])


class EncryptedData(serializers.Serializer):
    encrypted_payload = serializers.CharField(
        help_text="base64(IV || AES-256-CBC(key=SHA-256(secret_key), PKCS7(JSON)))"
    )
    hmac = serializers.CharField(help_text="hex HMAC-SHA256 over encrypted_payload")
    algorithm = serializers.CharField()
    hmac_algorithm = serializers.CharField()


class SessionProgress(serializers.Serializer):
    frames_received = serializers.IntegerField()
    frames_processed = serializers.IntegerField()
    max_frames = serializers.IntegerField()
    samples_collected = serializers.IntegerField()
    samples_needed = serializers.IntegerField()
    liveness = serializers.DictField(allow_null=True)


class SessionStatus(serializers.Serializer):
    session_id = serializers.UUIDField()
    enrollment_id = serializers.UUIDField(required=False, help_text="Enrollment sessions only.")
    session_type = serializers.ChoiceField(choices=["enrollment", "authentication"])
    mode = serializers.ChoiceField(choices=["enrollment", "verification", "identification"])
    user_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(
        choices=["pending", "active", "completed", "failed", "expired", "cancelled"]
    )
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    progress = SessionProgress()
    reason = serializers.CharField(
        allow_null=True,
        help_text="Why it failed or ended early: liveness_failed, presentation_attack, no_match, ambiguous, "
                  "insufficient_samples, session_expired, ...",
    )
    liveness_explanation = serializers.DictField(
        allow_null=True,
        help_text="Once the session is over: why liveness was or was not confirmed, as reason codes "
                  "(blink.closures_rejected by reason, head_movement, presentation verdict, "
                  "frames_unusable by reason). No images, no measurements.",
    )
    result = serializers.DictField(
        allow_null=True, help_text="The plaintext outcome (JWT callers, finished sessions)."
    )
    encrypted_data = EncryptedData(allow_null=True)


class EnrolledUserOut(serializers.Serializer):
    user_id = serializers.CharField()
    templates = serializers.IntegerField(allow_null=True)
    enrollments = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EnrolledUserPage(serializers.Serializer):
    count = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = EnrolledUserOut(many=True)


class UserDeleted(serializers.Serializer):
    user_id = serializers.CharField()
    deleted = serializers.BooleanField()
    templates_deleted = serializers.IntegerField()


class Health(serializers.Serializer):
    status = serializers.CharField()


class WebhookEndpointOut(serializers.Serializer):
    url = serializers.URLField()
    is_active = serializers.BooleanField()
    secret = serializers.CharField(
        required=False, help_text="Only when the server generated it: shown this once."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WebhookAttemptOut(serializers.Serializer):
    number = serializers.IntegerField()
    url = serializers.CharField()
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class WebhookDeliveryOut(serializers.Serializer):
    delivery_id = serializers.UUIDField()
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "delivered", "failed"])
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    log = WebhookAttemptOut(many=True)


class WebhookDeliveryList(serializers.Serializer):
    session_id = serializers.UUIDField()
    deliveries = WebhookDeliveryOut(many=True)


SEED_CREDENTIALS_EXAMPLE = OpenApiExample(
    "seed", value={"api_key": "YOUR_API_KEY", "secret_key": "YOUR_SECRET_KEY"}, request_only=True
)
SEED_ENROLLMENT_EXAMPLE = OpenApiExample(
    "seed", value={"user_id": "user123", "metadata": {"target_samples": 3}}, request_only=True
)


SIDECAR_STATIC = Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar"


@require_safe
def sidecar_asset(request: HttpRequest, name: str) -> FileResponse:
    """Swagger UI's files from the drf-spectacular-sidecar package, at the static URL the
    docs page names, so /api/docs/ works without a CDN or a static file server."""
    return confined_file(SIDECAR_STATIC, name)
