"""FaceAuth's data: API clients, capture sessions, enrolled users and their face templates.

Secrets are never stored in plaintext: the API key is kept as a SHA-256 digest (it is a
256-bit random lookup key, so a fast digest suffices), the secret key as a slow password
hash for the credential check plus a Fernet ciphertext under a server key, because results
are encrypted with the secret itself (services.crypto). Templates are embeddings, never
images. State changes of AuthSession go through services.sessions only."""

from __future__ import annotations

import uuid

import numpy as np
from django.db import models


class ApiClient(models.Model):
    """A tenant (a bank, an app) holding an api_key + secret_key pair."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    api_key_digest = models.CharField(max_length=64, unique=True, editable=False)
    api_key_prefix = models.CharField(
        max_length=16, editable=False, help_text="First characters of the API key, to recognise it."
    )
    secret_hash = models.CharField(max_length=256, editable=False)
    secret_encrypted = models.TextField(editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_authenticated_at = models.DateTimeField(null=True, blank=True, editable=False)
    default_match_level = models.CharField(
        max_length=16,
        blank=True,
        default="",
        help_text="Security level of this client's authentications when a session names none "
        "(blank: the server's FACEAUTH_DEFAULT_MATCH_LEVEL).",
    )
    default_language = models.CharField(
        max_length=8,
        blank=True,
        default="",
        help_text="Language of the messages this client's end users see when a session's "
        "metadata names none (blank: the server's FACEAUTH_DEFAULT_LANGUAGE).",
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "API client"

    def __str__(self) -> str:
        return self.name

    @property
    def client_id(self) -> str:
        return str(self.id)

    # DRF's permission checks read request.user.is_authenticated; the client is the principal.
    @property
    def is_authenticated(self) -> bool:
        return True


class SessionKind(models.TextChoices):
    ENROLLMENT = "enrollment"
    AUTHENTICATION = "authentication"


class SessionMode(models.TextChoices):
    ENROLLMENT = "enrollment"
    VERIFICATION = "verification"
    IDENTIFICATION = "identification"


class SessionStatus(models.TextChoices):
    """States of services.sessions' state machine (the only place that changes them)."""

    PENDING = "pending"  # created, no WebSocket yet
    ACTIVE = "active"  # one WebSocket is streaming frames
    COMPLETED = "completed"  # finished with success
    FAILED = "failed"  # finished without success (no match, liveness failed, ...)
    EXPIRED = "expired"  # the time limit passed first
    CANCELLED = "cancelled"  # the client disconnected, was idle, or cancelled it


class AuthSession(models.Model):
    """One enrollment or authentication attempt, driven over one WebSocket."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="sessions")
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=SessionKind.choices)
    mode = models.CharField(max_length=16, choices=SessionMode.choices)
    user_id = models.CharField(max_length=128, blank=True, default="")
    target_samples = models.PositiveSmallIntegerField(default=0)
    enrollment_mode = models.CharField(max_length=8, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    # Language of every human message of the session (hints, errors, result details), fixed
    # at creation: metadata.language, else the client's default, else the server's.
    language = models.CharField(max_length=8, default="en")
    status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.PENDING, db_index=True
    )
    frames_received = models.PositiveIntegerField(default=0)
    frames_processed = models.PositiveIntegerField(default=0)
    samples_collected = models.PositiveSmallIntegerField(default=0)
    liveness = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=64, blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    encrypted_result = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Restart safety: the server process streaming an active session and when it last said
    # so; an active session whose owner stopped heartbeating is ended (services.worker).
    worker_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["client", "status"])]
        verbose_name = "session"

    def __str__(self) -> str:
        return f"{self.mode} {self.user_id or '(identification)'} [{self.status}]"


class EnrolledUser(models.Model):
    """An end user of one API client; user_id is the client's own identifier."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="users")
    user_id = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    enrollments = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["user_id"]
        constraints = [
            models.UniqueConstraint(fields=["client", "user_id"], name="unique_user_per_client")
        ]
        verbose_name = "enrolled user"

    def __str__(self) -> str:
        return self.user_id


class FaceTemplate(models.Model):
    """One identity embedding (float32 little-endian bytes) of an enrolled user."""

    user = models.ForeignKey(EnrolledUser, on_delete=models.CASCADE, related_name="templates")
    session = models.ForeignKey(
        AuthSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="templates"
    )
    embedding = models.BinaryField()
    model = models.CharField(max_length=32, help_text="Engine model that produced the embedding.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "face template"

    def __str__(self) -> str:
        return f"template {self.pk} of {self.user}"

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding), dtype="<f4")


class WebhookEndpoint(models.Model):
    """Where a client wants its session results pushed, and the secret that signs them
    (kept encrypted under the server key, like the client secret)."""

    client = models.OneToOneField(ApiClient, on_delete=models.CASCADE, related_name="webhook")
    url = models.URLField(max_length=500)
    secret_encrypted = models.TextField(editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return f"{self.client}: {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # every attempt failed, or the endpoint was removed


class WebhookDelivery(models.Model):
    """One event for one client in the durable outbox (services.webhooks). Written in the
    same transaction as the session change it reports; the body is stored exactly as sent,
    so every retry carries the same bytes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="webhook_deliveries")
    session = models.ForeignKey(
        AuthSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=32)
    body = models.TextField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A worker claims a delivery by setting a lease; another worker may take it over only
    # after the lease ran out (the claimer died), so one attempt runs at a time.
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} {self.id} [{self.status}]"


class WebhookAttempt(models.Model):
    """The delivery log: one row per HTTP attempt."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    url = models.URLField(max_length=500)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]
        verbose_name = "webhook attempt"

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
