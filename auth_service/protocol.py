"""The WebSocket protocol: parsing client messages and building server messages.

Client -> server: {"type": "frame", "image": "<data URL or bare base64>"}, a binary message
holding raw JPEG/PNG bytes (same as a frame), {"type": "ping"}.
Server -> client: connection_established, frame_processed, enrollment_complete,
authentication_complete, error, pong (documented in docs/websocket-guide.md).

Messages for people are built in the session's language (``language``, auth_service.i18n);
codes stay English."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

import face_engine as fe
from auth_service import i18n
from auth_service.errors import FaceAuthError, InvalidMessage, MessageTooLarge
from auth_service.models import AuthSession, SessionKind
from auth_service.services.formats import iso_utc
from auth_service.services.frames import FrameReport, SessionLimits


@dataclass(frozen=True)
class ClientMessage:
    type: str  # "frame" or "ping"
    image: bytes | str | None = None


def parse_client_message(
    text_data: str | None, bytes_data: bytes | None, *, max_bytes: int
) -> ClientMessage:
    """Validates one incoming message; raises InvalidMessage or MessageTooLarge."""
    if bytes_data is not None:
        if len(bytes_data) > max_bytes:
            raise MessageTooLarge(
                format_lazy(_("The message has {size} bytes; the limit is {limit}."),
                            size=len(bytes_data), limit=max_bytes)
            )
        if not bytes_data:
            raise InvalidMessage(_("Empty binary message."))
        return ClientMessage("frame", bytes_data)
    text = text_data or ""
    # Characters, not bytes: valid frames are ASCII, where the two agree.
    if len(text) > max_bytes:
        raise MessageTooLarge(
            format_lazy(_("The message has {size} characters; the limit is {limit}."),
                        size=len(text), limit=max_bytes)
        )
    try:
        message = json.loads(text)
    except ValueError:
        raise InvalidMessage(
            format_lazy(_("The message is not JSON. {usage}"), usage=InvalidMessage.default_message)
        ) from None
    if not isinstance(message, dict):
        raise InvalidMessage()
    kind = message.get("type")
    if kind == "ping":
        return ClientMessage("ping")
    if kind == "frame":
        image = message.get("image")
        if not isinstance(image, str) or not image:
            raise InvalidMessage(_('A frame needs "image": a data URL or base64 JPEG/PNG string.'))
        return ClientMessage("frame", image)
    raise InvalidMessage(
        format_lazy(_("Unknown message type {kind}. {usage}"),
                    kind=repr(kind), usage=InvalidMessage.default_message)
    )


# What the session is for, as connection_established says it.
_PURPOSES = {
    "enrollment": gettext_noop("enrollment"),
    "verification": gettext_noop("verification"),
    "identification": gettext_noop("identification"),
}
HINT_HOLD_STILL = gettext_noop("hold still, looking at the camera")


def connection_established(
    session: AuthSession, limits: SessionLimits, *, liveness: dict, language: str | None = None
) -> dict:
    """``liveness`` is {"mode": "passive"|"active", "challenges": how many} (FrameProcessor)."""
    with i18n.language(language):
        what = gettext(_PURPOSES["enrollment" if session.kind == SessionKind.ENROLLMENT else session.mode])
        if liveness["mode"] == "active":
            how = gettext("follow the %(count)s instructions as they appear") % {
                "count": liveness["challenges"]
            }
        else:
            how = gettext("blink naturally and move your head a little")
        text = gettext("Connected; send frames for %(what)s (at most %(fps)s per second, %(how)s).") % {
            "what": what, "fps": limits.max_fps, "how": how,
        }
    return {
        "type": "connection_established",
        "session_id": str(session.id),
        "session_type": session.kind,
        "mode": session.mode,
        "user_id": session.user_id or None,
        "target_samples": session.target_samples,
        "limits": limits.as_dict(),
        "expires_at": iso_utc(session.expires_at),
        "liveness": liveness,
        "message": text,
    }


def frame_processed(report: FrameReport, *, samples_needed: int, language: str | None = None) -> dict:
    analysis = report.analysis
    liveness = report.liveness
    if analysis is None or liveness is None:
        raise ValueError("frame_processed needs an analysed frame, not a rejected one")
    face = analysis.face
    if isinstance(liveness, fe.ActiveLivenessState) and liveness.challenge is not None:
        hint = liveness.hint  # the pending instruction (a turned head is not "not frontal" then)
    else:
        hint = analysis.hint or liveness.hint
    if hint is None and report.samples_collected < samples_needed:
        hint = HINT_HOLD_STILL
    with i18n.language(language):
        hint = i18n.hint(hint)
        quality = i18n.quality(analysis.quality.as_dict())
        liveness_data = i18n.liveness(liveness.as_dict())
    return {
        "type": "frame_processed",
        "frame_number": report.frame_number,
        "face_detected": face is not None,
        "face_count": len(analysis.faces),
        "face_box": face.box.as_dict() if face is not None else None,
        "frame_size": {"width": analysis.image_size[0], "height": analysis.image_size[1]},
        "quality": quality,
        "liveness": liveness_data,
        "sample_accepted": report.sample_accepted,
        "samples_collected": report.samples_collected,
        "samples_needed": samples_needed,
        "hint": hint,
        "status": "active",
    }


_COMPLETE_MESSAGES = {
    (SessionKind.ENROLLMENT, True): gettext_noop("Enrollment complete."),
    (SessionKind.ENROLLMENT, False): gettext_noop("Enrollment failed."),
    (SessionKind.AUTHENTICATION, True): gettext_noop("Authentication successful."),
    (SessionKind.AUTHENTICATION, False): gettext_noop("Authentication failed."),
}


def completion(session: AuthSession) -> dict:
    """enrollment_complete / authentication_complete for a finished session, in its language
    (the result's ``detail`` was written in it). Secret-ish details (the similarity of a
    failed attempt) stay inside the encrypted payload."""
    result = session.result or {}
    success = bool(result.get("success"))
    with i18n.language(session.language):
        text = gettext(_COMPLETE_MESSAGES[(session.kind, success)])
    message: dict = {
        "type": f"{session.kind}_complete",
        "success": success,
        "session_id": str(session.id),
        "status": session.status,
        "message": text,
    }
    if not success:
        message["reason"] = result.get("reason")
        message["detail"] = result.get("detail")
    if session.kind == SessionKind.ENROLLMENT:
        message.update(
            enrollment_id=str(session.id),
            user_id=session.user_id,
            samples=result.get("samples", 0),
        )
    else:
        message.update(
            mode=session.mode,
            user_id=result.get("user_id") if success else None,
            similarity=result.get("similarity") if success else None,
            threshold=result.get("threshold"),
            match_level=result.get("match_level"),
        )
    message["encrypted_data"] = session.encrypted_result
    return message


def error(exc: FaceAuthError, *, language: str | None = None) -> dict:
    """An ``error`` message; its text in ``language`` (the server's default when None)."""
    with i18n.language(language):
        return {"type": "error", **exc.as_dict(), "message": i18n.error_message(exc), "fatal": exc.fatal}


def pong() -> dict:
    return {"type": "pong", "timestamp": iso_utc(timezone.now())}


def dumps(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))
