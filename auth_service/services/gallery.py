"""Face templates of enrolled users, and 1:1 / 1:N search, always within one API client.

Re-enrollment rule (README "Re-enrollment"): a successful enrollment of an existing user_id
replaces all of that user's templates in one transaction (``enrollment_mode: "replace"``,
the default); a failed enrollment changes nothing. With ``enrollment_mode: "append"`` the
new samples must first match the user's current templates (so nobody can add a different
face to an existing user); they are then added, and the oldest templates beyond
FACEAUTH_MAX_TEMPLATES_PER_USER are dropped.

Scoring: a probe session yields several embeddings; a user's score is the median over
probes of the best similarity to any of the user's templates, so one lucky or unlucky
frame does not decide the outcome."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, QuerySet

import face_engine as fe
from auth_service.errors import UserNotFound
from auth_service.models import ApiClient, AuthSession, EnrolledUser, FaceTemplate

MODEL_TAG = f"sface-{fe.EMBEDDING_SIZE}"
ENROLLMENT_MODES = ("replace", "append")


@dataclass(frozen=True)
class MatchResult:
    """The best candidate (None when nobody qualifies) and its score against the threshold."""

    user_id: str | None
    similarity: float
    threshold: float

    @property
    def is_match(self) -> bool:
        return self.user_id is not None and self.similarity >= self.threshold


def match_threshold() -> float:
    configured = settings.FACEAUTH_MATCH_THRESHOLD
    return fe.DEFAULT_THRESHOLD if configured is None else float(configured)


def to_bytes(embedding: np.ndarray) -> bytes:
    return np.asarray(embedding, dtype="<f4").reshape(-1).tobytes()


def from_bytes(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype="<f4")


def _user_matrix(user: EnrolledUser) -> np.ndarray:
    rows = [from_bytes(blob) for blob in user.templates.values_list("embedding", flat=True)]
    return np.stack(rows) if rows else np.empty((0, fe.EMBEDDING_SIZE), np.float32)


def _score(probes: list[np.ndarray], gallery: np.ndarray, threshold: float) -> float:
    return float(statistics.median(fe.match(p, gallery, threshold).similarity for p in probes))


def user_get(*, client: ApiClient, user_id: str) -> EnrolledUser:
    """One of the client's users (with ``template_count``); other clients' users are
    'not found' like nonexistent ones."""
    user = users_list(client=client).filter(user_id=user_id).first()
    if user is None:
        raise UserNotFound(f"No enrolled user {user_id!r}.")
    return user


def has_templates(*, client: ApiClient, user_id: str | None = None) -> bool:
    """Whether the client has a user (that user, when given) with at least one template."""
    templates = FaceTemplate.objects.filter(user__client=client)
    if user_id is not None:
        templates = templates.filter(user__user_id=user_id)
    return templates.exists()


def verify(*, client: ApiClient, user_id: str, probes: list[np.ndarray]) -> MatchResult:
    """1:1: does the probe session match this user of this client?"""
    threshold = match_threshold()
    gallery = _user_matrix(user_get(client=client, user_id=user_id))
    if len(gallery) == 0:
        raise UserNotFound(f"User {user_id!r} has no templates.")
    similarity = _score(probes, gallery, threshold)
    return MatchResult(user_id if similarity >= threshold else None, similarity, threshold)


def identify(*, client: ApiClient, probes: list[np.ndarray]) -> MatchResult:
    """1:N over this client's users only: each probe votes for the owner of its best
    template; the most voted user (ties: best score) is then scored like a verification."""
    threshold = match_threshold()
    rows = list(
        FaceTemplate.objects.filter(user__client=client).values_list("user__user_id", "embedding")
    )
    if not rows:
        return MatchResult(None, 0.0, threshold)
    owners = [owner for owner, _ in rows]
    gallery = np.stack([from_bytes(blob) for _, blob in rows])
    votes = Counter(owners[fe.match(p, gallery, threshold).index] for p in probes)
    scores = {}
    for owner in votes:
        own = gallery[[i for i, o in enumerate(owners) if o == owner]]
        scores[owner] = _score(probes, own, threshold)
    best = max(votes, key=lambda owner: (votes[owner], scores[owner]))
    similarity = scores[best]
    return MatchResult(best if similarity >= threshold else None, similarity, threshold)


@dataclass(frozen=True)
class EnrollResult:
    user: EnrolledUser | None
    templates_added: int
    templates_total: int
    similarity: float | None = None  # append mode: how well the new samples matched
    failure: str | None = None  # "identity_mismatch" when an append did not match


@transaction.atomic
def enroll(
    *,
    client: ApiClient,
    user_id: str,
    embeddings: list[np.ndarray],
    session: AuthSession | None,
    mode: str = "replace",
) -> EnrollResult:
    """Stores the embeddings as the user's templates by the re-enrollment rule above."""
    if mode not in ENROLLMENT_MODES:
        raise ValueError(f"unknown enrollment mode {mode!r}")
    user, _ = EnrolledUser.objects.select_for_update().get_or_create(client=client, user_id=user_id)
    similarity = None
    if mode == "append":
        existing = _user_matrix(user)
        if len(existing):
            threshold = match_threshold()
            similarity = _score(embeddings, existing, threshold)
            if similarity < threshold:
                return EnrollResult(None, 0, len(existing), similarity, "identity_mismatch")
    else:
        user.templates.all().delete()
    FaceTemplate.objects.bulk_create(
        FaceTemplate(user=user, session=session, embedding=to_bytes(e), model=MODEL_TAG)
        for e in embeddings
    )
    surplus = list(
        user.templates.order_by("-created_at", "-id").values_list("id", flat=True)[
            settings.FACEAUTH_MAX_TEMPLATES_PER_USER:
        ]
    )
    if surplus:
        FaceTemplate.objects.filter(id__in=surplus).delete()
    user.enrollments += 1
    user.save(update_fields=["enrollments", "updated_at"])
    return EnrollResult(user, len(embeddings), user.templates.count(), similarity)


def user_delete(*, client: ApiClient, user_id: str) -> int:
    """Deletes the user and all its templates; returns how many templates went."""
    user = user_get(client=client, user_id=user_id)
    count = user.templates.count()
    user.delete()
    return count


def users_list(*, client: ApiClient) -> QuerySet[EnrolledUser]:
    """The client's enrolled users with their template counts, by user_id."""
    return EnrolledUser.objects.filter(client=client).annotate(template_count=Count("templates"))
