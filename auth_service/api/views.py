"""REST API views: validate input, call one service, shape the output. Nothing else."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth_service.api import schema as doc
from auth_service.api import serializers as s
from auth_service.api.authentication import (
    ApiKeyOrJWTAuthentication,
    CredentialCheckThrottle,
    SessionCreateThrottle,
)
from auth_service.errors import RequestTooLarge, SessionNotFound
from auth_service.routing import websocket_path
from auth_service.services import admission, clients, gallery, sessions, tokens, webhooks


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


class SessionCreateView(ApiView):
    """Base of the views that create a session: their CPU is the session's own work, which
    admission control counts once a session rather than in its frames."""

    throttle_classes = [SessionCreateThrottle]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with admission.engine_load.session_work():
            return super().dispatch(request, *args, **kwargs)


def _session_uuid(value: str) -> uuid.UUID:
    """Path ids are parsed here, not by a URL converter, so a malformed id gets the same
    JSON 'session_not_found' as an unknown one."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise SessionNotFound() from None


SESSION_ID = OpenApiParameter(
    "session_id", str, OpenApiParameter.PATH,
    description="session_id (or enrollment_id) from the creation response",
)


def _websocket_url(request: Request, token: str) -> str:
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{request.get_host()}{websocket_path(token)}"


class ClientTokenView(ApiView):
    """POST /api/auth/client/ {api_key, secret_key} -> {token, client_id, expires_at}"""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [CredentialCheckThrottle]

    @extend_schema(
        summary="Exchange the API key and secret key for a JWT",
        request=s.ClientCredentialsInput,
        responses={200: doc.ClientToken, **doc.errors(*doc.BODY_ERRORS, 401, 429)},
        examples=[doc.SEED_CREDENTIALS_EXAMPLE],
        tags=["clients"],
    )
    def post(self, request: Request) -> Response:
        data = s.ClientCredentialsInput(data=request.data)
        data.is_valid(raise_exception=True)
        client = clients.client_authenticate(**data.validated_data)
        issued = tokens.issue_client_token(client_id=client.client_id)
        return Response(s.client_token_data(issued, client.client_id))


class EnrollmentSessionView(SessionCreateView):
    """POST /api/auth/enrollment/ {user_id, metadata?: {target_samples?, enrollment_mode?}}"""

    @extend_schema(
        summary="Create an enrollment session",
        description="metadata may hold target_samples (1 to FACEAUTH_MAX_TARGET_SAMPLES), "
        "enrollment_mode (replace or append), liveness (passive or active) and language (en or id: "
        "the end user's messages; default the client's default_language, then "
        "FACEAUTH_DEFAULT_LANGUAGE); other keys are stored with the session.",
        request=s.EnrollmentInput,
        responses={201: doc.EnrollmentSessionCreated, **doc.errors(*doc.BODY_ERRORS, 401, 429, 503)},
        examples=[doc.SEED_ENROLLMENT_EXAMPLE],
        tags=["sessions"],
    )
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


class AuthenticationSessionView(SessionCreateView):
    """POST /api/auth/authentication/ {user_id?, metadata?}"""

    @extend_schema(
        summary="Create an authentication session",
        description="With user_id: 1:1 verification of that user; without: 1:N identification "
        "among this client's enrolled users. metadata may hold match_level, liveness and language "
        "(en or id: the end user's messages; default the client's default_language, then "
        "FACEAUTH_DEFAULT_LANGUAGE).",
        request=s.AuthenticationInput,
        responses={
            201: doc.AuthenticationSessionCreated,
            **doc.errors(*doc.BODY_ERRORS, 401, 404, 409, 429, 503),
        },
        tags=["sessions"],
    )
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

    @extend_schema(
        summary="Status, progress and (once finished) the result of a session",
        parameters=[SESSION_ID],
        responses={200: doc.SessionStatus, **doc.errors(401, 404)},
        tags=["sessions"],
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = sessions.session_for_client(
            client=request.user, session_id=_session_uuid(session_id)
        )
        return _status_response(request, session)


class SessionCancelView(ApiView):
    """POST /api/auth/sessions/{session_id}/cancel/: ends an open session at once."""

    @extend_schema(
        summary="Cancel an open session (its WebSocket closes with 4012)",
        parameters=[SESSION_ID],
        request=None,
        responses={200: doc.SessionStatus, **doc.errors(401, 404, 409)},
        tags=["sessions"],
    )
    def post(self, request: Request, session_id: str) -> Response:
        session = sessions.session_cancel(client=request.user, session_id=_session_uuid(session_id))
        return _status_response(request, session)


class UserListView(ApiView):
    """GET /api/auth/users/?limit=&offset=: this client's enrolled users."""

    @extend_schema(
        summary="List this client's enrolled users",
        operation_id="auth_users_list",
        parameters=[s.UserListInput],
        responses={200: doc.EnrolledUserPage, **doc.errors(400, 401)},
        tags=["users"],
    )
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

    @extend_schema(
        summary="One enrolled user", responses={200: doc.EnrolledUserOut, **doc.errors(401, 404)},
        tags=["users"],
    )
    def get(self, request: Request, user_id: str) -> Response:
        return Response(s.user_data(gallery.user_get(client=request.user, user_id=user_id)))

    @extend_schema(
        summary="Delete an enrolled user and all its templates",
        responses={200: doc.UserDeleted, **doc.errors(401, 404)},
        tags=["users"],
    )
    def delete(self, request: Request, user_id: str) -> Response:
        removed = gallery.user_delete(client=request.user, user_id=user_id)
        return Response({"user_id": user_id, "deleted": True, "templates_deleted": removed})


class HealthView(ApiView):
    """GET /api/health/: the process is up and the database answers (no auth)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(summary="Liveness probe", responses={200: doc.Health}, tags=["operations"])
    def get(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Response({"status": "ok"})


class WebhookEndpointView(ApiView):
    """GET / PUT / DELETE /api/auth/webhook/: where this client's session results are
    pushed (signed POSTs, docs/websocket-guide.md "Webhooks")."""

    @extend_schema(
        summary="This client's webhook endpoint (the secret is never shown again)",
        responses={200: doc.WebhookEndpointOut, **doc.errors(401, 404)},
        tags=["webhooks"],
    )
    def get(self, request: Request) -> Response:
        return Response(s.webhook_endpoint_data(webhooks.endpoint_get(client=request.user)))

    @extend_schema(
        summary="Set the webhook url and signing secret",
        description="Without `secret` the server generates one and returns it once. Every "
        "session that ends afterwards is POSTed to `url`, signed with the secret.",
        request=s.WebhookEndpointInput,
        responses={200: doc.WebhookEndpointOut, **doc.errors(*doc.BODY_ERRORS, 401)},
        tags=["webhooks"],
    )
    def put(self, request: Request) -> Response:
        data = s.WebhookEndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = webhooks.endpoint_set(client=request.user, **data.validated_data)
        return Response(s.webhook_endpoint_data(result.endpoint, secret=result.secret))

    @extend_schema(
        summary="Remove the webhook endpoint", responses={204: None, **doc.errors(401, 404)},
        tags=["webhooks"],
    )
    def delete(self, request: Request) -> Response:
        webhooks.endpoint_delete(client=request.user)
        return Response(status=204)


class SessionWebhooksView(ApiView):
    """GET /api/auth/sessions/{session_id}/webhooks/: the delivery log of one session."""

    @extend_schema(
        summary="Webhook deliveries of a session, with every attempt",
        parameters=[SESSION_ID],
        responses={200: doc.WebhookDeliveryList, **doc.errors(401, 404)},
        tags=["webhooks"],
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = sessions.session_for_client(client=request.user, session_id=_session_uuid(session_id))
        deliveries = webhooks.deliveries_for_session(client=request.user, session_id=session.id)
        return Response(
            {
                "session_id": str(session.id),
                "deliveries": [s.webhook_delivery_data(d) for d in deliveries],
            }
        )
