"""Every error FaceAuth reports, in one hierarchy.

Each error has a stable machine ``code``, an HTTP status (REST) and a WebSocket close code
(4xxx, used when the error is fatal for the socket). The REST exception handler
(auth_service.api.errors) and the WebSocket consumer both map errors from here, so a code
means the same thing on both transports. ``error_catalogue()`` lists them for the docs.
Messages are for people: marked for translation (lazy), rendered in the language active
where they are sent (a session's own over the WebSocket, auth_service.i18n)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

# The WWW-Authenticate challenge of 401 responses.
BEARER_CHALLENGE = 'Bearer realm="faceauth"'


class FaceAuthError(Exception):
    """Base error. ``fatal`` says whether a WebSocket must close after reporting it."""

    code = "internal_error"
    http_status = 500
    close_code = 4500
    fatal = True
    default_message = _("Internal server error.")

    def __init__(self, message: Any = None, *, code: str | None = None) -> None:
        # ``message``: a str, or a lazy translation (gettext_lazy, format_lazy).
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        super().__init__(self.message)

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": str(self.message)}


# --- request and credential errors (REST) ---
class InvalidRequest(FaceAuthError):
    code = "invalid_request"
    http_status = 400
    close_code = 4000
    fatal = False
    default_message = _("The request is invalid.")

    def __init__(self, message: Any = None, *, code: str | None = None,
                 fields: dict | None = None) -> None:
        super().__init__(message, code=code)
        self.fields = fields

    def as_dict(self) -> dict:
        data: dict = super().as_dict()
        if self.fields:
            data["fields"] = self.fields
        return data


class RequestTooLarge(FaceAuthError):
    code = "request_too_large"
    http_status = 413
    close_code = 4013
    fatal = False
    default_message = _("The request body is too large.")


class NotAuthenticated(FaceAuthError):
    code = "not_authenticated"
    http_status = 401
    close_code = 4001
    default_message = _("Send 'Authorization: Bearer <token>' (get a token from /api/auth/client/).")


class InvalidCredentials(FaceAuthError):
    code = "invalid_credentials"
    http_status = 401
    close_code = 4001
    default_message = _("Unknown API key or wrong secret key.")


class InvalidToken(FaceAuthError):
    code = "invalid_token"
    http_status = 401
    close_code = 4001
    default_message = _("The bearer token is invalid.")


class TokenExpired(InvalidToken):
    code = "token_expired"
    default_message = _("The bearer token has expired; request a new one from /api/auth/client/.")


class PermissionDenied(FaceAuthError):
    code = "permission_denied"
    http_status = 403
    close_code = 4003
    default_message = _("Not allowed.")


class NotFound(FaceAuthError):
    code = "not_found"
    http_status = 404
    close_code = 4004
    default_message = _("Not found.")


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = _("No enrolled user with this user_id.")


class NoEnrolledUsers(FaceAuthError):
    code = "no_enrolled_users"
    http_status = 409
    close_code = 4009
    default_message = _("Identification needs at least one enrolled user.")


class RateLimited(FaceAuthError):
    code = "rate_limited"
    http_status = 429
    close_code = 4029
    default_message = _("Too many requests; slow down.")

    def __init__(self, message: Any = None, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(FaceAuthError):
    """The server is at capacity (services.admission): retry after ``retry_after`` seconds.
    Sessions already streaming are not affected."""

    code = "overloaded"
    http_status = 503
    close_code = 4503
    default_message = _("The server is at capacity; retry shortly.")

    def __init__(self, message: Any = None, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManySessions(FaceAuthError):
    code = "too_many_sessions"
    http_status = 429
    close_code = 4029
    default_message = _("Too many open sessions for this client; finish or cancel some first.")


# --- session errors (REST and WebSocket connect) ---
class SessionNotFound(NotFound):
    code = "session_not_found"
    default_message = _("Unknown session.")


class SessionExpired(FaceAuthError):
    code = "session_expired"
    http_status = 410
    close_code = 4008
    default_message = _("The session has expired; create a new one.")


class SessionClosed(FaceAuthError):
    """The session already finished (completed, failed, cancelled): tokens are single-use."""

    code = "session_closed"
    http_status = 409
    close_code = 4009
    default_message = _("The session is already finished; session tokens are single-use.")


class SessionInUse(FaceAuthError):
    code = "session_in_use"
    http_status = 409
    close_code = 4010
    default_message = _("Another connection is already streaming for this session.")


class InvalidTransition(FaceAuthError):
    """An illegal state change, e.g. completing a session twice (usually a race)."""

    code = "invalid_session_state"
    http_status = 409
    close_code = 4009
    default_message = _("The session cannot change to that state.")


class SessionCancelled(FaceAuthError):
    code = "session_cancelled"
    http_status = 409
    close_code = 4012
    default_message = _("The session was cancelled.")


class IdleTimeout(FaceAuthError):
    code = "idle_timeout"
    http_status = 408
    close_code = 4011
    default_message = _("No message received for too long; the session was closed.")


# --- per-message WebSocket errors (non-fatal unless said otherwise) ---
class InvalidMessage(FaceAuthError):
    code = "invalid_message"
    http_status = 400
    close_code = 4000
    fatal = False
    default_message = _(
        'Send {"type": "frame", "image": "data:image/jpeg;base64,..."}, '
        '{"type": "ping"} or a binary JPEG/PNG message.'
    )


class MessageTooLarge(FaceAuthError):
    code = "message_too_large"
    http_status = 413
    close_code = 4013
    fatal = False
    default_message = _("The message is larger than the limit.")


class FrameRateExceeded(FaceAuthError):
    code = "frame_rate_exceeded"
    http_status = 429
    close_code = 4029
    fatal = False
    default_message = _("Frame dropped: frames must be at least the minimum interval apart.")


class FrameRejected(FaceAuthError):
    """The image could not be used; ``code`` is the engine's: invalid_image,
    image_too_large or unsupported_format (all non-fatal, 400)."""

    code = "invalid_image"
    http_status = 400
    close_code = 4000
    fatal = False
    default_message = _("The frame is not a usable JPEG or PNG image.")


class TooManyInvalidFrames(FaceAuthError):
    code = "too_many_invalid_frames"
    http_status = 400
    close_code = 4014
    default_message = _("Too many unusable messages in a row; the session was closed.")


def error_catalogue() -> list[dict]:
    """Every error class with its code, HTTP status and close code (for the docs)."""
    found: list[dict] = []
    pending = [FaceAuthError]
    while pending:
        cls = pending.pop(0)
        found.append(
            {
                "code": cls.code,
                "http_status": cls.http_status,
                "close_code": cls.close_code,
                "fatal": cls.fatal,
                "message": str(cls.default_message),
            }
        )
        pending.extend(cls.__subclasses__())
    return found
