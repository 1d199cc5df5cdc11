"""Capture sessions: creation, the state machine, and completion with an encrypted result.

States (models.SessionStatus) and the only legal moves:

    pending --connect--> active --evidence--> completed | failed
       |                   |--time limit-->   expired
       |                   '--disconnect, idle, fatal error, cancel--> cancelled
       '--time limit--> expired;  --cancel--> cancelled

``transition`` is the one function that changes a state. It is a conditional UPDATE
(``WHERE status = <expected>``), so of two racing callers (two WebSockets connecting with
the same token, a cancel during completion) exactly one wins and the other gets
InvalidTransition. Terminal states never change again: session tokens are single-use."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from auth_service import i18n, metrics
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
from auth_service.models import ApiClient, AuthSession, SessionKind, SessionMode, SessionStatus
from auth_service.services import admission, clients, crypto, gallery, webhooks
from auth_service.services.formats import iso_utc
from auth_service.services.frames import Verdict

logger = logging.getLogger(__name__)

S = SessionStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.ACTIVE, S.EXPIRED, S.CANCELLED}),
    S.ACTIVE: frozenset({S.COMPLETED, S.FAILED, S.EXPIRED, S.CANCELLED}),
}
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.EXPIRED, S.CANCELLED})
OPEN = frozenset({S.PENDING, S.ACTIVE})
# An active session past its expiry is normally ended by its WebSocket; after this grace a
# reader may mark it expired itself (the worker holding it died).
_ACTIVE_EXPIRY_GRACE = timedelta(seconds=15)


def transition(session: AuthSession, to: str, **changes: Any) -> AuthSession:
    """Moves ``session`` to state ``to`` (and sets ``changes``) if that move is legal and
    nobody moved it first; raises InvalidTransition otherwise."""
    current = session.status
    if to not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"A {current} session cannot become {to}.")
    with transaction.atomic():
        updated = AuthSession.objects.filter(pk=session.pk, status=current).update(status=to, **changes)
        if not updated:
            session.refresh_from_db(fields=["status"])
            raise InvalidTransition(f"The session became {session.status} meanwhile; not {to}.")
        session.status = to
        for name, value in changes.items():
            setattr(session, name, value)
        if to in TERMINAL:
            _ended(session)
    return session


def _ended(session: AuthSession) -> None:
    """Side effects of a final state, in its transaction: the webhook goes into the outbox
    (committed together with the state), the metrics count once it is committed."""
    webhooks.enqueue_session_event(session)
    transaction.on_commit(
        functools.partial(
            metrics.session_finished, kind=session.kind, mode=session.mode, status=session.status,
            reason=session.reason, liveness=session.liveness,
        )
    )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def group_name(session_id: uuid.UUID) -> str:
    """The channel-layer group of the WebSocket streaming this session."""
    return f"faceauth.session.{session_id.hex}"


@dataclass(frozen=True)
class CreatedSession:
    session: AuthSession
    token: str  # shown once, in the creation response; only its digest is stored


def _expire_overdue(queryset) -> None:
    now = timezone.now()
    overdue = queryset.filter(
        Q(status=S.PENDING, expires_at__lte=now)
        | Q(status=S.ACTIVE, expires_at__lte=now - _ACTIVE_EXPIRY_GRACE)
    )
    for session in overdue:
        with contextlib.suppress(InvalidTransition):  # ended meanwhile by its own socket
            transition(session, S.EXPIRED, reason="session_expired", completed_at=now)


@transaction.atomic
def _create(
    *, client: ApiClient, kind: str, mode: str, user_id: str, target_samples: int,
    enrollment_mode: str, metadata: dict,
) -> CreatedSession:
    # Lock the client row so concurrent creations cannot both squeeze under the cap.
    ApiClient.objects.select_for_update().filter(pk=client.pk).first()
    open_sessions = AuthSession.objects.filter(client=client, status__in=OPEN)
    _expire_overdue(open_sessions)
    if open_sessions.count() >= settings.FACEAUTH_MAX_ACTIVE_SESSIONS_PER_CLIENT:
        raise TooManySessions(
            f"At most {settings.FACEAUTH_MAX_ACTIVE_SESSIONS_PER_CLIENT} open sessions per "
            "client; finish, cancel or let some expire first."
        )
    admission.admit_new_session()  # Overloaded (503) when the engine is at capacity
    token = secrets.token_urlsafe(32)
    session = AuthSession.objects.create(
        client=client,
        token_digest=token_digest(token),
        kind=kind,
        mode=mode,
        user_id=user_id,
        target_samples=target_samples,
        enrollment_mode=enrollment_mode,
        metadata=metadata,
        language=i18n.session_language(metadata=metadata, client_default=client.default_language),
        expires_at=timezone.now() + timedelta(seconds=settings.FACEAUTH_SESSION_TIMEOUT_SECONDS),
    )
    transaction.on_commit(metrics.SESSIONS_CREATED.labels(kind=kind, mode=mode).inc)
    return CreatedSession(session, token)


def enrollment_session_create(
    *, client: ApiClient, user_id: str, target_samples: int, enrollment_mode: str = "replace",
    metadata: dict | None = None,
) -> CreatedSession:
    """A session that collects ``target_samples`` templates for ``user_id``."""
    return _create(
        client=client, kind=SessionKind.ENROLLMENT, mode=SessionMode.ENROLLMENT, user_id=user_id,
        target_samples=target_samples, enrollment_mode=enrollment_mode, metadata=metadata or {},
    )


def authentication_session_create(
    *, client: ApiClient, user_id: str | None, metadata: dict | None = None
) -> CreatedSession:
    """Verification of ``user_id`` (1:1), or identification among the client's users
    (1:N) when ``user_id`` is None. Fails early when there is nobody to match against."""
    if user_id:
        if not gallery.has_templates(client=client, user_id=user_id):
            raise UserNotFound(f"No enrolled user {user_id!r}; enroll the user first.")
        mode = SessionMode.VERIFICATION
    else:
        if not gallery.has_templates(client=client):
            raise NoEnrolledUsers()
        mode = SessionMode.IDENTIFICATION
    return _create(
        client=client, kind=SessionKind.AUTHENTICATION, mode=mode, user_id=user_id or "",
        target_samples=settings.FACEAUTH_MIN_PROBE_SAMPLES, enrollment_mode="",
        metadata=metadata or {},
    )


def session_connect(*, token: str, worker_id: str = "") -> AuthSession:
    """Claims the session for one WebSocket: pending -> active, owned by ``worker_id``
    (the server process that streams it and keeps its heartbeat, services.worker).

    Raises SessionNotFound (unknown token), SessionExpired, SessionClosed (already used)
    or SessionInUse (another socket holds it)."""
    session = (
        AuthSession.objects.select_related("client").filter(token_digest=token_digest(token)).first()
    )
    if session is None or not session.client.is_active:
        raise SessionNotFound("Unknown session token.")
    if session.status == S.EXPIRED:
        raise SessionExpired()
    if session.status == S.CANCELLED:
        raise SessionClosed("The session was cancelled; create a new one.")
    if session.status in TERMINAL:
        raise SessionClosed()
    now = timezone.now()
    if now >= session.expires_at:
        with contextlib.suppress(InvalidTransition):  # someone else expired it first
            transition(session, S.EXPIRED, reason="session_expired")
        raise SessionExpired()
    if session.status == S.ACTIVE:
        raise SessionInUse()
    try:
        return transition(session, S.ACTIVE, started_at=now, worker_id=worker_id, heartbeat_at=now)
    except InvalidTransition:
        raise SessionInUse() from None


def session_language_for_token(*, token: str) -> str | None:
    """The language of the session behind ``token`` (None when there is none), so that a
    refused connection is told why in it."""
    sessions = AuthSession.objects.filter(token_digest=token_digest(token))
    return sessions.values_list("language", flat=True).first()


def session_record_progress(
    *, session_id: uuid.UUID, frames_received: int, frames_processed: int,
    samples_collected: int, liveness: dict,
) -> None:
    """Saves the counters the status endpoint shows while the session runs."""
    AuthSession.objects.filter(pk=session_id, status=S.ACTIVE).update(
        frames_received=frames_received,
        frames_processed=frames_processed,
        samples_collected=samples_collected,
        liveness=liveness,
    )


def session_abort(*, session_id: uuid.UUID, reason: str) -> bool:
    """Ends an unfinished session without a result (disconnect, idle, fatal error).
    Returns False when it had already ended (nothing to do)."""
    session = AuthSession.objects.filter(pk=session_id).first()
    if session is None or session.status in TERMINAL:
        return False
    to = S.EXPIRED if reason == "session_expired" else S.CANCELLED
    try:
        transition(session, to, reason=reason, completed_at=timezone.now())
    except InvalidTransition:
        return False
    return True


def sessions_heartbeat(*, worker_id: str) -> int:
    """Marks the active sessions this worker streams as still owned; returns how many."""
    return AuthSession.objects.filter(worker_id=worker_id, status=S.ACTIVE).update(
        heartbeat_at=timezone.now()
    )


def sessions_end_orphaned(*, stale_after: timedelta, reason: str = "server_stopped") -> int:
    """Cancels active sessions whose worker stopped heartbeating for ``stale_after`` (it
    was killed or restarted: nobody streams them any more). Sessions of live workers, on
    this host or another, keep fresh heartbeats and are never touched."""
    stale_before = timezone.now() - stale_after
    orphans = AuthSession.objects.filter(status=S.ACTIVE).filter(
        Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True, started_at__lt=stale_before)
    )
    ended = 0
    for session in orphans:
        with contextlib.suppress(InvalidTransition):
            transition(session, S.CANCELLED, reason=reason, completed_at=timezone.now())
            ended += 1
    return ended


def sessions_expire_overdue() -> None:
    """Expires every open session past its time, so that their webhooks go out on time
    rather than when somebody next reads them (the background thread calls this)."""
    _expire_overdue(AuthSession.objects.all())


def sessions_release(*, worker_id: str, reason: str = "server_stopped") -> int:
    """Cancels the active sessions of a worker that is shutting down (their sockets are
    gone with it); returns how many."""
    ended = 0
    for session in AuthSession.objects.filter(worker_id=worker_id, status=S.ACTIVE):
        with contextlib.suppress(InvalidTransition):
            transition(session, S.CANCELLED, reason=reason, completed_at=timezone.now())
            ended += 1
    return ended


def session_cancel(*, client: ApiClient, session_id: uuid.UUID) -> AuthSession:
    """Cancels an open session of this client and tells its WebSocket, wherever it runs."""
    session = session_for_client(client=client, session_id=session_id)
    if session.status in TERMINAL:
        raise SessionClosed(f"The session is already {session.status}.")
    transition(session, S.CANCELLED, reason="cancelled_by_client", completed_at=timezone.now())
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group_name(session.id), {"type": "session.cancelled"})
    return session


def session_for_client(*, client: ApiClient, session_id: uuid.UUID) -> AuthSession:
    """One of this client's sessions (others' are 'not found'), with overdue ones expired."""
    sessions = AuthSession.objects.filter(client=client, pk=session_id)
    _expire_overdue(sessions)
    session = sessions.first()
    if session is None:
        raise SessionNotFound()
    return session


# --- completion ---
def _liveness_summary(liveness: dict) -> dict:
    summary = {
        "mode": liveness.get("mode", "passive"),
        "is_live": bool(liveness.get("is_live", False)),
        "blinks": int(liveness.get("blinks", 0)),
        "head_movement": bool(liveness.get("head_movement", False)),
        # The anti-spoofing verdict (undecided, live, attack, unjudgeable) and the tracker's
        # failure code (presentation_attack, static_image, face_changed, ...), in both modes.
        "presentation": liveness.get("presentation"),
        "failure": liveness.get("failure"),
    }
    if summary["mode"] == "active":
        summary["challenges_passed"] = list(liveness.get("challenges_passed", []))
        summary["challenges_total"] = int(liveness.get("challenges_total", 0))
    return summary


def _enrollment_outcome(session: AuthSession, verdict: Verdict) -> dict:
    outcome: dict[str, Any] = {
        "enrollment_id": str(session.id),
        "user_id": session.user_id,
        "enrollment_mode": session.enrollment_mode,
        "samples": 0,
        "liveness": _liveness_summary(verdict.liveness),
    }
    if verdict.reason is not None:
        return {"success": False, "reason": verdict.reason, "detail": verdict.detail, **outcome}
    result = gallery.enroll(
        client=session.client,
        user_id=session.user_id,
        embeddings=verdict.embeddings,
        session=session,
        mode=session.enrollment_mode or "replace",
    )
    if result.failure is not None:
        return {
            "success": False,
            "reason": result.failure,
            "detail": _("the new samples do not match the templates already enrolled for this user"),
            **outcome,
            "similarity": round(result.similarity, 4),
        }
    return {
        "success": True,
        **outcome,
        "samples": result.templates_added,
        "templates_total": result.templates_total,
    }


def _authentication_outcome(session: AuthSession, verdict: Verdict) -> dict:
    level = gallery.match_level(client=session.client, requested=(session.metadata or {}).get("match_level"))
    outcome: dict[str, Any] = {
        "mode": session.mode,
        "user_id": None,
        "similarity": None,
        "threshold": gallery.match_threshold(level),
        "match_level": level.name,
        "liveness": _liveness_summary(verdict.liveness),
    }
    if verdict.reason is not None:
        return {"success": False, "reason": verdict.reason, "detail": verdict.detail, **outcome}
    try:
        if session.mode == SessionMode.VERIFICATION:
            match = gallery.verify(
                client=session.client, user_id=session.user_id, probes=verdict.embeddings, level=level
            )
        else:
            match = gallery.identify(client=session.client, probes=verdict.embeddings, level=level)
    except UserNotFound:
        return {
            "success": False,
            "reason": "user_not_found",
            "detail": _("the user was deleted during the session"),
            **outcome,
        }
    outcome["similarity"] = round(match.similarity, 4)
    outcome["threshold"] = round(match.threshold, 4)  # 1:N: raised for the gallery's size
    if match.outcome == "ambiguous":
        return {
            "success": False,
            "reason": "ambiguous",
            "detail": _("the face matches more than one enrolled user almost equally well; "
                        "nobody is named (authenticate with a user_id to verify one user)"),
            **outcome,
            "runner_up_similarity": round(match.runner_up_similarity, 4),
        }
    if not match.is_match:
        return {
            "success": False,
            "reason": "no_match",
            "detail": _("the face does not match this user")
            if session.mode == SessionMode.VERIFICATION
            else _("the face does not match any enrolled user"),
            **outcome,
        }
    return {"success": True, **outcome, "user_id": match.user_id}


def _payload(session: AuthSession, outcome: dict, now) -> dict:
    """The plaintext of encrypted_payload: the seed's id and timestamp, then the outcome."""
    return {
        "id": str(session.id),
        "timestamp": iso_utc(now),
        "type": session.kind,
        "session_id": str(session.id),
        **outcome,
    }


def session_finish(*, session_id: uuid.UUID, verdict: Verdict) -> AuthSession:
    """Ends an active session: decides the outcome (stores templates for an enrollment,
    matches for an authentication), encrypts the result for the client, and moves the
    session to completed, failed or expired, all in one transaction."""
    with transaction.atomic():
        session = (
            AuthSession.objects.select_for_update().select_related("client").filter(pk=session_id)
        ).first()
        if session is None:
            raise SessionNotFound()
        if session.status == S.CANCELLED:
            raise SessionCancelled()
        if session.status != S.ACTIVE:
            raise InvalidTransition(f"A {session.status} session cannot complete.")
        if session.kind == SessionKind.ENROLLMENT:
            outcome = _enrollment_outcome(session, verdict)
        else:
            outcome = _authentication_outcome(session, verdict)
        outcome = i18n.rendered(outcome, session.language)  # details in the end user's language
        now = timezone.now()
        encrypted = crypto.encrypt_result(
            _payload(session, outcome, now), clients.client_secret(session.client)
        )
        if outcome["success"]:
            status = S.COMPLETED
        elif outcome["reason"] == "session_expired":
            status = S.EXPIRED
        else:
            status = S.FAILED
        transition(
            session,
            status,
            completed_at=now,
            reason=outcome.get("reason") or "",
            result=outcome,
            encrypted_result=encrypted,
            frames_received=verdict.frames_received,
            frames_processed=verdict.frames_processed,
            samples_collected=len(verdict.embeddings),
            liveness=verdict.liveness,
        )
    logger.info(
        "session %s (%s) ended %s%s", session.id, session.mode, status,
        f" ({outcome['reason']})" if outcome.get("reason") else "",
    )
    return session
