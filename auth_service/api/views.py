"""REST API views: validate input, call one service, shape the output. Nothing else."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import connection
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_service.api import serializers as s
from auth_service.api.authentication import (
    ApiKeyOrJWTAuthentication,
    CredentialCheckThrottle,
    SessionCreateThrottle,
)
from auth_service.errors import RequestTooLarge, SessionNotFound
from auth_service.routing import websocket_path
from auth_service.services import clients, gallery, sessions, tokens


class ApiView(APIView):
    """Base of every API view: bounded request bodies."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        # DRF's JSON parser reads the stream directly, bypassing Django's upload limit.
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestTooLarge(
                f"The body is {length} bytes; the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE}."
            )
        super().initial(request, *args, **kwargs)


def _session_uuid(value: str) -> uuid.UUID:
    """Path ids are parsed here, not by a URL converter, so a malformed id gets the same
    JSON 'session_not_found' as an unknown one."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise SessionNotFound() from None


def _websocket_url(request: Request, token: str) -> str:
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{request.get_host()}{websocket_path(token)}"


class ClientTokenView(ApiView):
    """POST /api/auth/client/ {api_key, secret_key} -> {token, client_id, expires_at}"""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [CredentialCheckThrottle]

    def post(self, request: Request) -> Response:
        data = s.ClientCredentialsInput(data=request.data)
        data.is_valid(raise_exception=True)
        client = clients.client_authenticate(**data.validated_data)
        issued = tokens.issue_client_token(client_id=client.client_id)
        return Response(s.client_token_data(issued, client.client_id))


class EnrollmentSessionView(ApiView):
    """POST /api/auth/enrollment/ {user_id, metadata?: {target_samples?, enrollment_mode?}}"""

    throttle_classes = [SessionCreateThrottle]

    def post(self, request: Request) -> Response:
        data = s.EnrollmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = sessions.enrollment_session_create(
            client=request.user,
            user_id=data.validated_data["user_id"],
            target_samples=data.target_samples,
            enrollment_mode=data.enrollment_mode,
            metadata=data.validated_data["metadata"],
        )
        body = s.session_created_data(
            created.session, created.token, _websocket_url(request, created.token)
        )
        return Response(body, status=201)


class AuthenticationSessionView(ApiView):
    """POST /api/auth/authentication/ {user_id?, metadata?}"""

    throttle_classes = [SessionCreateThrottle]

    def post(self, request: Request) -> Response:
        data = s.AuthenticationInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = sessions.authentication_session_create(
            client=request.user,
            user_id=data.validated_data.get("user_id"),
            metadata=data.validated_data["metadata"],
        )
        body = s.session_created_data(
            created.session, created.token, _websocket_url(request, created.token)
        )
        return Response(body, status=201)


def _status_response(request: Request, session) -> Response:
    # request.auth holds the JWT's claims; it is None when the API key alone was shown.
    return Response(
        s.session_status_data(
            session, max_frames=settings.FACEAUTH_MAX_FRAMES, include_result=request.auth is not None
        )
    )


class SessionStatusView(ApiView):
    """GET /api/auth/sessions/{session_id or enrollment_id}/status/ (JWT or API key)"""

    authentication_classes = [ApiKeyOrJWTAuthentication]

    def get(self, request: Request, session_id: str) -> Response:
        session = sessions.session_for_client(
            client=request.user, session_id=_session_uuid(session_id)
        )
        return _status_response(request, session)


class SessionCancelView(ApiView):
    """POST /api/auth/sessions/{session_id}/cancel/: ends an open session at once."""

    def post(self, request: Request, session_id: str) -> Response:
        session = sessions.session_cancel(client=request.user, session_id=_session_uuid(session_id))
        return _status_response(request, session)


class UserListView(ApiView):
    """GET /api/auth/users/?limit=&offset=: this client's enrolled users."""

    def get(self, request: Request) -> Response:
        page = s.UserListInput(data=request.query_params)
        page.is_valid(raise_exception=True)
        limit, offset = page.validated_data["limit"], page.validated_data["offset"]
        users = gallery.users_list(client=request.user)
        return Response(
            {
                "count": users.count(),
                "limit": limit,
                "offset": offset,
                "results": [s.user_data(u) for u in users[offset : offset + limit]],
            }
        )


class UserDetailView(ApiView):
    """GET /api/auth/users/{user_id}/ and DELETE (removes the user and all its templates)."""

    def get(self, request: Request, user_id: str) -> Response:
        return Response(s.user_data(gallery.user_get(client=request.user, user_id=user_id)))

    def delete(self, request: Request, user_id: str) -> Response:
        removed = gallery.user_delete(client=request.user, user_id=user_id)
        return Response({"user_id": user_id, "deleted": True, "templates_deleted": removed})


class HealthView(ApiView):
    """GET /api/health/: the process is up and the database answers (no auth)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Response({"status": "ok"})
