"""Who is calling: DRF authentication, permission and throttle classes.

- ClientJWTAuthentication: "Authorization: Bearer <JWT from /api/auth/client/>" (every API).
- ApiKeyOrJWTAuthentication: also "Bearer <api_key>", as the seed's troubleshooting curl
  does; used only by the read-only session status endpoint.
- Throttles keep credential guessing and session creation bounded (cache-backed: Redis
  when REDIS_URL is set, so all workers share the counters)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from auth_service.errors import BEARER_CHALLENGE, InvalidToken
from auth_service.models import ApiClient
from auth_service.services import clients, tokens


def _bearer(request: Request) -> str | None:
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise InvalidToken("Use 'Authorization: Bearer <token>' with exactly one token.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidToken() from None


class ClientJWTAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClient, dict] | None:
        token = _bearer(request)
        if token is None:
            return None
        claims = tokens.decode_client_token(token)
        return clients.client_get_active(client_id=claims["sub"]), claims

    def authenticate_header(self, request: Request) -> str:
        return BEARER_CHALLENGE


class ApiKeyOrJWTAuthentication(ClientJWTAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClient, dict | None] | None:
        token = _bearer(request)
        if token is None or tokens.looks_like_jwt(token):
            return super().authenticate(request)
        return clients.client_by_api_key(token), None


class IsApiClient(BasePermission):
    """The caller authenticated as an active API client."""

    def has_permission(self, request: Request, view) -> bool:
        return isinstance(request.user, ApiClient)


class _SettingsRateThrottle(SimpleRateThrottle):
    """A throttle whose rate is a FACEAUTH_* setting (read per request, so tests and
    deployments can change it without touching DRF's settings)."""

    setting_name = ""

    def get_rate(self) -> str:
        return getattr(settings, self.setting_name)


class CredentialCheckThrottle(_SettingsRateThrottle):
    """Bounds POST /api/auth/client/ per client IP: credential guessing gets slow."""

    scope = "credentials"
    setting_name = "FACEAUTH_CREDENTIAL_RATE"

    def get_cache_key(self, request: Request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class SessionCreateThrottle(_SettingsRateThrottle):
    """Bounds session creation per API client."""

    scope = "session_create"
    setting_name = "FACEAUTH_SESSION_CREATE_RATE"

    def get_cache_key(self, request: Request, view) -> str | None:
        if not isinstance(request.user, ApiClient):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.client_id}
