"""The one place where exceptions become HTTP error responses:
{"error": {"code": "...", "message": "..."}} with the status of the error (errors.py)."""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from auth_service.errors import (
    BEARER_CHALLENGE,
    FaceAuthError,
    InvalidRequest,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
)

logger = logging.getLogger(__name__)

# DRF's own exceptions, in our codes.
_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "invalid_json",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
}


def _flatten(detail, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _flatten(value, f"{prefix}{key}.")]
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item, prefix)]
    return [f"{prefix[:-1]}: {detail}" if prefix else str(detail)]


def as_faceauth_error(exc: Exception) -> FaceAuthError | None:
    """Our error for ``exc``, or None for an unexpected exception."""
    if isinstance(exc, FaceAuthError):
        return exc
    if isinstance(exc, Http404):
        return NotFound()
    if isinstance(exc, exceptions.ValidationError):
        messages = _flatten(exc.detail)
        fields = exc.detail if isinstance(exc.detail, dict) else None
        return InvalidRequest("; ".join(messages) or None, fields=fields)
    if isinstance(exc, exceptions.NotAuthenticated):
        return NotAuthenticated()
    if isinstance(exc, exceptions.AuthenticationFailed):
        return InvalidToken(str(exc.detail))
    if isinstance(exc, exceptions.PermissionDenied):
        return PermissionDenied(str(exc.detail))
    if isinstance(exc, exceptions.NotFound):
        return NotFound()
    if isinstance(exc, exceptions.Throttled):
        return RateLimited(
            f"Too many requests; retry in {exc.wait:.0f} s." if exc.wait else None,
            retry_after=int(exc.wait) + 1 if exc.wait else None,
        )
    if isinstance(exc, exceptions.APIException):
        code = _DRF_CODES.get(type(exc)) or str(exc.default_code)
        error = FaceAuthError(str(exc.detail), code=code)
        error.http_status = exc.status_code
        return error
    return None


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: every error of every API view goes through here."""
    error = as_faceauth_error(exc)
    if error is None:
        view = context.get("view")
        logger.exception("unexpected error in %s", type(view).__name__ if view else "API")
        error = FaceAuthError()
    headers = {}
    if error.http_status == 401:
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    if isinstance(error, (RateLimited, Overloaded)) and error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    set_rollback()
    return Response({"error": error.as_dict()}, status=error.http_status, headers=headers)


# Django-level handlers (URLs outside DRF views, DEBUG off): JSON too, the service is an API.
def _json_error(error: FaceAuthError) -> JsonResponse:
    return JsonResponse({"error": error.as_dict()}, status=error.http_status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error(InvalidRequest("Bad request."))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error(NotFound(f"Nothing at {request.path}."))


def server_error(request: HttpRequest) -> JsonResponse:
    return _json_error(FaceAuthError())
