"""Face templates of enrolled users, and 1:1 / 1:N matching, always within one API client.

Re-enrollment rule (docs/accuracy.md): a successful enrollment of an existing user_id
replaces all of that user's templates in one transaction (``enrollment_mode: "replace"``,
the default); a failed enrollment changes nothing. With ``enrollment_mode: "append"`` the
new samples must first match the user's current templates (so nobody can add a different
face to an existing user); they are then added, and the oldest templates beyond
FACEAUTH_MAX_TEMPLATES_PER_USER are dropped.

Scoring: a probe session yields several embeddings; a user's score is the median over
probes of the best similarity to any of the user's templates, so one lucky or unlucky
frame does not decide the outcome.

Decisions follow a security level (face_engine.matching): the session's
``metadata.match_level``, else the client's default, else FACEAUTH_DEFAULT_MATCH_LEVEL.
Verification compares the score with the level's threshold. Identification asks the
gallery backend (services.galleries: in memory or pgvector) for each probe's nearest
templates, scores those candidates exactly from the database, and applies the 1:N rule:
the threshold grows with the number of enrolled users, and the best user must lead the
second by FACEAUTH_IDENTIFICATION_MARGIN, else the outcome is ``ambiguous``."""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, QuerySet

import face_engine as fe
from auth_service.errors import UserNotFound
from auth_service.models import ApiClient, AuthSession, EnrolledUser, FaceTemplate
from auth_service.services import galleries
from auth_service.services.galleries import TemplateMatrix, from_bytes, to_bytes
from face_engine import matching

logger = logging.getLogger(__name__)
MODEL_TAG = f"sface-{fe.EMBEDDING_SIZE}"
ENROLLMENT_MODES = ("replace", "append")


@dataclass(frozen=True)
class MatchResult:
    """A decision at a level: ``outcome`` is match, no_match or ambiguous; ``user_id`` is set
    only on a match; ``similarity`` is the best candidate's score; ``runner_up_similarity``
    the second best user's (identification)."""

    user_id: str | None
    similarity: float
    threshold: float
    level: str = matching.DEFAULT_LEVEL
    outcome: str = "no_match"
    runner_up_similarity: float | None = None
    gallery_size: int | None = None

    @property
    def is_match(self) -> bool:
        return self.outcome == "match"


def match_level(*, client: ApiClient | None = None, requested: str | None = None) -> matching.Level:
    """The level that decides: ``requested`` (a session's metadata.match_level), else the
    client's default, else FACEAUTH_DEFAULT_MATCH_LEVEL. Raises matching.UnknownLevel."""
    name = requested or (client.default_match_level if client is not None else "")
    return matching.level(name or settings.FACEAUTH_DEFAULT_MATCH_LEVEL)


def match_threshold(level: matching.Level | None = None) -> float:
    """The 1:1 threshold: FACEAUTH_MATCH_THRESHOLD when set, else the level's."""
    configured = settings.FACEAUTH_MATCH_THRESHOLD
    if configured is not None:
        return float(configured)
    return (level or match_level()).threshold


def _user_matrix(user: EnrolledUser) -> np.ndarray:
    rows = [from_bytes(blob) for blob in user.templates.values_list("embedding", flat=True)]
    return np.stack(rows) if rows else np.empty((0, fe.EMBEDDING_SIZE), np.float32)


def _score(probes: list[np.ndarray], gallery: np.ndarray) -> float:
    return float(statistics.median(fe.match(p, gallery).similarity for p in probes))


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


def verify(
    *, client: ApiClient, user_id: str, probes: list[np.ndarray], level: matching.Level | None = None
) -> MatchResult:
    """1:1: does the probe session match this user of this client?"""
    level = level or match_level(client=client)
    threshold = match_threshold(level)
    gallery = _user_matrix(user_get(client=client, user_id=user_id))
    if len(gallery) == 0:
        raise UserNotFound(f"User {user_id!r} has no templates.")
    decision = matching.decide_verification(_score(probes, gallery), threshold, user_id)
    return MatchResult(decision.user_id, decision.score, threshold, level.name, decision.outcome)


def identify(
    *, client: ApiClient, probes: list[np.ndarray], level: matching.Level | None = None
) -> MatchResult:
    """1:N over this client's users only, by the rule in the module docstring."""
    level = level or match_level(client=client)
    gallery_size = (
        EnrolledUser.objects.filter(client=client, templates__isnull=False).distinct().count()
    )
    threshold = matching.identification_threshold(level, gallery_size, floor=match_threshold(level))
    rows = FaceTemplate.objects.filter(user__client=client)
    try:
        hits = galleries.backend().search(
            client.client_id, np.stack(probes), settings.FACEAUTH_IDENTIFICATION_CANDIDATES
        )
        rows = rows.filter(user__user_id__in={hit.user_id for row in hits for hit in row})
    except Exception:
        # The backend is only a shortlist: without it, score every template exactly.
        logger.exception("gallery search failed for client %s; scanning all its templates", client.pk)
    templates: dict[str, list[np.ndarray]] = defaultdict(list)
    for owner, blob in rows.values_list("user__user_id", "embedding"):
        templates[owner].append(from_bytes(blob))
    candidates = [
        matching.Candidate(owner, _score(probes, np.stack(rows))) for owner, rows in templates.items()
    ]
    decision = matching.decide_identification(
        candidates, threshold=threshold, margin=settings.FACEAUTH_IDENTIFICATION_MARGIN
    )
    return MatchResult(
        decision.user_id, decision.score, threshold, level.name, decision.outcome,
        decision.runner_up.score if decision.runner_up is not None else None, gallery_size,
    )


def _after_commit_add(client: ApiClient, created: list[FaceTemplate], user_id: str) -> None:
    vectors = np.stack([from_bytes(template.embedding) for template in created])
    templates = TemplateMatrix.build([template.pk for template in created], [user_id] * len(created), vectors)
    # robust: the templates are committed; a backend that fails here is logged and catches up
    # (memory: by expiry; pgvector: the search-time fallback above, and gallery_index).
    transaction.on_commit(lambda: galleries.backend().add(client.client_id, templates), robust=True)


def templates_removed(*, client: ApiClient, template_ids: list[int]) -> None:
    """Tells the gallery backend, once committed, that these templates of the client are gone
    (for deletions made outside this module, such as the admin's)."""
    if template_ids:
        transaction.on_commit(
            lambda: galleries.backend().remove(client.client_id, template_ids), robust=True
        )


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
            similarity = _score(embeddings, existing)
            if similarity < match_threshold(match_level(client=client)):
                return EnrollResult(None, 0, len(existing), similarity, "identity_mismatch")
    else:
        replaced = list(user.templates.values_list("id", flat=True))
        user.templates.all().delete()
        templates_removed(client=client, template_ids=replaced)
    created = FaceTemplate.objects.bulk_create(
        FaceTemplate(user=user, session=session, embedding=to_bytes(e), model=MODEL_TAG)
        for e in embeddings
    )
    _after_commit_add(client, created, user_id)
    surplus = list(
        user.templates.order_by("-created_at", "-id").values_list("id", flat=True)[
            settings.FACEAUTH_MAX_TEMPLATES_PER_USER:
        ]
    )
    if surplus:
        FaceTemplate.objects.filter(id__in=surplus).delete()
        templates_removed(client=client, template_ids=surplus)
    user.enrollments += 1
    user.save(update_fields=["enrollments", "updated_at"])
    return EnrollResult(user, len(embeddings), user.templates.count(), similarity)


def user_delete(*, client: ApiClient, user_id: str) -> int:
    """Deletes the user and all its templates; returns how many templates went."""
    with transaction.atomic():
        user = user_get(client=client, user_id=user_id)
        removed = list(user.templates.values_list("id", flat=True))
        user.delete()
        templates_removed(client=client, template_ids=removed)
    return len(removed)


def users_list(*, client: ApiClient) -> QuerySet[EnrolledUser]:
    """The client's enrolled users with their template counts, by user_id."""
    return EnrolledUser.objects.filter(client=client).annotate(template_count=Count("templates"))
