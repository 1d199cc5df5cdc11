"""Input validation (DRF serializers) and output shapes of the REST API."""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from auth_service import i18n
from auth_service.models import AuthSession, EnrolledUser, SessionKind, WebhookDelivery, WebhookEndpoint
from auth_service.services.formats import iso_utc
from auth_service.services.gallery import ENROLLMENT_MODES
from auth_service.services.tokens import IssuedToken
from face_engine import matching

USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+:-]{0,127}$"
user_id_validator = RegexValidator(
    USER_ID_PATTERN,
    "user_id must be 1-128 characters: letters, digits and . _ @ + : - (not first).",
)
MAX_METADATA_BYTES = 4096
LIVENESS_MODES = ("passive", "active")  # metadata.liveness; default FACEAUTH_LIVENESS_MODE


# --- input ---
class ClientCredentialsInput(serializers.Serializer):
    api_key = serializers.CharField(max_length=200, trim_whitespace=True)
    secret_key = serializers.CharField(max_length=200, trim_whitespace=False)


def _one_of(value: object, choices: Iterable[str]) -> bool:
    """Whether ``value`` is one of the string ``choices`` (any JSON may come: a dict or a list
    cannot be looked up in a mapping, and must be refused, not crash)."""
    return isinstance(value, str) and value in choices


class _MetadataMixin(serializers.Serializer):
    metadata = serializers.DictField(required=False, default=dict)

    def validate_metadata(self, value: dict) -> dict:
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise serializers.ValidationError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON.")
        if "liveness" in value and not _one_of(value["liveness"], LIVENESS_MODES):
            raise serializers.ValidationError(
                f"liveness must be one of {', '.join(LIVENESS_MODES)} (omit it for the server's default)."
            )
        languages = i18n.supported_languages()
        if "language" in value and not _one_of(value["language"], languages):
            raise serializers.ValidationError(
                f"language must be one of {', '.join(languages)} (omit it for the client's default)."
            )
        return value


def _metadata_schema(**keys: dict) -> dict:
    """OpenAPI of a creation's metadata: the keys the server reads; any others are stored."""
    return {
        "type": "object",
        "additionalProperties": True,
        "description": "Options of the session; keys other than these are stored with it.",
        "properties": {
            "language": {
                "type": "string",
                "enum": [code for code, _name in settings.LANGUAGES],
                "description": "Language of every message the end user sees in this session (frame "
                "hints, challenge instructions, error messages, result details); codes stay English. "
                "Omitted: the API client's default_language, else FACEAUTH_DEFAULT_LANGUAGE (en).",
            },
            "liveness": {
                "type": "string",
                "enum": list(LIVENESS_MODES),
                "description": "passive (a blink and head movement) or active (random challenges); "
                "omitted: FACEAUTH_LIVENESS_MODE.",
            },
            **keys,
        },
    }


@extend_schema_field(_metadata_schema(
    target_samples={"type": "integer", "minimum": 1, "description": "Good frames to collect "
                    "(at most FACEAUTH_MAX_TARGET_SAMPLES; omitted: FACEAUTH_DEFAULT_TARGET_SAMPLES)."},
    enrollment_mode={"type": "string", "enum": list(ENROLLMENT_MODES), "description": "replace (default) "
                     "the user's templates, or append to them."},
))
class EnrollmentMetadataField(serializers.DictField):
    pass


@extend_schema_field(_metadata_schema(
    match_level={"type": "string", "enum": list(matching.LEVELS), "description": "Security level "
                 "(omitted: the client's default_match_level, else FACEAUTH_DEFAULT_MATCH_LEVEL)."},
))
class AuthenticationMetadataField(serializers.DictField):
    pass


class EnrollmentInput(_MetadataMixin):
    """{user_id, metadata?: {target_samples?, enrollment_mode?: "replace"|"append", language?, ...}}"""

    user_id = serializers.CharField(validators=[user_id_validator])
    metadata = EnrollmentMetadataField(required=False, default=dict)

    def validate_metadata(self, value: dict) -> dict:
        value = super().validate_metadata(value)
        maximum = settings.FACEAUTH_MAX_TARGET_SAMPLES
        target = value.get("target_samples", settings.FACEAUTH_DEFAULT_TARGET_SAMPLES)
        if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= maximum:
            raise serializers.ValidationError(
                f"target_samples must be an integer from 1 to {maximum}."
            )
        mode = value.get("enrollment_mode", "replace")
        if mode not in ENROLLMENT_MODES:
            raise serializers.ValidationError(
                f"enrollment_mode must be one of {', '.join(ENROLLMENT_MODES)}."
            )
        return value

    @property
    def target_samples(self) -> int:
        return self.validated_data["metadata"].get(
            "target_samples", settings.FACEAUTH_DEFAULT_TARGET_SAMPLES
        )

    @property
    def enrollment_mode(self) -> str:
        return self.validated_data["metadata"].get("enrollment_mode", "replace")


class AuthenticationInput(_MetadataMixin):
    """{user_id?, metadata?: {match_level?, ...}}: with user_id 1:1 verification, without 1:N
    identification; match_level is one of face_engine.matching.LEVELS."""

    user_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, validators=[user_id_validator]
    )
    metadata = AuthenticationMetadataField(required=False, default=dict)

    def validate_user_id(self, value: str | None) -> str | None:
        return value or None

    def validate_metadata(self, value: dict) -> dict:
        value = super().validate_metadata(value)
        if "match_level" in value and not _one_of(value["match_level"], matching.LEVELS):
            raise serializers.ValidationError(
                f"match_level must be one of {', '.join(matching.LEVELS)} "
                "(omit it for the client's default)."
            )
        return value


class UserListInput(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=1000)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=1_000_000_000)


# --- output ---
def client_token_data(issued: IssuedToken, client_id: str) -> dict:
    return {
        "token": issued.token,
        "token_type": "Bearer",
        "client_id": client_id,
        "expires_at": iso_utc(issued.expires_at),
    }


def session_created_data(session: AuthSession, token: str, websocket_url: str) -> dict:
    data = {
        "session_token": token,
        "session_id": str(session.id),
        "websocket_url": websocket_url,
        "status": session.status,
        "expires_at": iso_utc(session.expires_at),
    }
    if session.kind == SessionKind.ENROLLMENT:
        data.update(enrollment_id=str(session.id), user_id=session.user_id,
                    target_samples=session.target_samples)
    else:
        data.update(mode=session.mode, user_id=session.user_id or None)
    return data


def session_status_data(session: AuthSession, *, max_frames: int, include_result: bool) -> dict:
    """The status document. ``include_result`` is False for callers who showed only the API
    key (an identifier, as the seed's troubleshooting call does): they get the progress and
    the encrypted result, which needs the secret key to read, but not the plaintext."""
    data = {
        "session_id": str(session.id),
        "session_type": session.kind,
        "mode": session.mode,
        "user_id": session.user_id or None,
        "status": session.status,
        "is_active": session.status in ("pending", "active"),
        "created_at": iso_utc(session.created_at),
        "expires_at": iso_utc(session.expires_at),
        "started_at": iso_utc(session.started_at),
        "completed_at": iso_utc(session.completed_at),
        "progress": {
            "frames_received": session.frames_received,
            "frames_processed": session.frames_processed,
            "max_frames": max_frames,
            "samples_collected": session.samples_collected,
            "samples_needed": session.target_samples,
            "liveness": _liveness_progress(session),
        },
        "reason": session.reason or None,
        # Once the session is over: why liveness was (not) confirmed, as reason codes (what each
        # signal rejected, frames without a usable face), so support can answer "why was I refused".
        "liveness_explanation": (session.liveness or {}).get("explanation") if session.status not in (
            "pending", "active") else None,
        "result": session.result if include_result else None,
        "encrypted_data": session.encrypted_result,
    }
    if session.kind == SessionKind.ENROLLMENT:
        data["enrollment_id"] = str(session.id)
    return data


def _liveness_progress(session: AuthSession) -> dict | None:
    """The saved liveness state, its pending challenge's instruction in the session's language."""
    if not session.liveness:
        return None
    with i18n.language(session.language):
        return i18n.liveness(session.liveness)


def user_data(user: EnrolledUser) -> dict:
    return {
        "user_id": user.user_id,
        "templates": getattr(user, "template_count", None),
        "enrollments": user.enrollments,
        "created_at": iso_utc(user.created_at),
        "updated_at": iso_utc(user.updated_at),
    }


# --- webhooks ---
class WebhookEndpointInput(serializers.Serializer):
    """{url, secret?}: without a secret the server generates one and shows it once."""

    url = serializers.URLField(max_length=500)
    secret = serializers.CharField(required=False, min_length=16, max_length=200, trim_whitespace=False)


def webhook_endpoint_data(endpoint: WebhookEndpoint, *, secret: str | None = None) -> dict:
    data = {
        "url": endpoint.url,
        "is_active": endpoint.is_active,
        "created_at": iso_utc(endpoint.created_at),
        "updated_at": iso_utc(endpoint.updated_at),
    }
    if secret is not None:
        data["secret"] = secret
    return data


def webhook_delivery_data(delivery: WebhookDelivery) -> dict:
    return {
        "delivery_id": str(delivery.id),
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "created_at": iso_utc(delivery.created_at),
        "next_attempt_at": iso_utc(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "delivered_at": iso_utc(delivery.delivered_at),
        "log": [
            {
                "number": attempt.number,
                "url": attempt.url,
                "started_at": iso_utc(attempt.started_at),
                "duration_ms": attempt.duration_ms,
                "status_code": attempt.status_code,
                "error": attempt.error or None,
            }
            for attempt in delivery.log.all()
        ],
    }
