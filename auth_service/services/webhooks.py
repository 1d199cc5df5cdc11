"""Signed webhooks: a client's endpoint, the durable outbox, and delivery with retries.

When a session ends, ``enqueue_session_event`` writes a WebhookDelivery row in the same
transaction as the session's final state, so a crash or restart can lose neither the
state nor its notification. Every server process runs ``deliver_due`` in its background
thread (services.worker): it claims due deliveries with a lease (a conditional UPDATE, safe
on SQLite and PostgreSQL alike, so two workers never send the same attempt), POSTs them,
logs each attempt (WebhookAttempt) and schedules a retry with exponential backoff after a
non-2xx answer or a network error, until FACEAUTH_WEBHOOK_MAX_ATTEMPTS. Delivery is at
least once: a receiver that answered but whose acknowledgement was lost (the worker died
first) gets the same delivery id again and should ignore it.

Request: POST, the JSON body stored at enqueue time (the status document of the session,
with its encrypted result), and the headers
    X-FaceAuth-Event: session.completed | session.failed | session.expired | session.cancelled
    X-FaceAuth-Delivery: <delivery id, the same on every retry>
    X-FaceAuth-Timestamp: <unix seconds of this attempt>
    X-FaceAuth-Signature: v1=<hex HMAC-SHA256(webhook secret, timestamp + "." + body)>"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import requests
import requests.adapters
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from auth_service import metrics
from auth_service.errors import InvalidRequest, NotFound
from auth_service.models import (
    ApiClient,
    AuthSession,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from auth_service.services import crypto
from auth_service.services.formats import iso_utc

logger = logging.getLogger(__name__)

EVENT_HEADER = "X-FaceAuth-Event"
DELIVERY_HEADER = "X-FaceAuth-Delivery"
TIMESTAMP_HEADER = "X-FaceAuth-Timestamp"
SIGNATURE_HEADER = "X-FaceAuth-Signature"
SIGNATURE_VERSION = "v1"
MIN_SECRET_LENGTH = 16
# Set when a delivery is committed in this process: the background thread wakes at once
# instead of at its next poll.
outbox_signal = threading.Event()


# --- signing ---
def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 keyed with the webhook secret over ``timestamp.body``.
    The timestamp is signed too, so a captured request cannot be replayed later with a
    fresh timestamp; receivers reject timestamps far from their clock."""
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(*, secret: str, body: bytes, event: str, delivery_id: uuid.UUID,
                   timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "FaceAuth-Webhook/1",
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


# --- the client's endpoint ---
def check_url(url: str) -> None:
    """Webhook urls are absolute http(s) URLs (where they may point is checked at each
    delivery, after DNS resolution)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        message = "The webhook url must be an absolute http:// or https:// URL."
        raise InvalidRequest(message, fields={"url": [message]})


@dataclass(frozen=True)
class EndpointSet:
    endpoint: WebhookEndpoint
    secret: str | None  # the generated secret, shown once; None when the client chose it


def endpoint_set(*, client: ApiClient, url: str, secret: str | None = None) -> EndpointSet:
    """Creates or replaces the client's endpoint and its signing secret. Without
    ``secret`` a new one is generated and returned once; only its ciphertext is stored."""
    check_url(url)
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        message = f"The webhook secret must have at least {MIN_SECRET_LENGTH} characters."
        raise InvalidRequest(message, fields={"secret": [message]})
    generated = None
    if secret is None:
        generated = secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint, _ = WebhookEndpoint.objects.update_or_create(
        client=client,
        defaults={"url": url, "secret_encrypted": crypto.seal(secret), "is_active": True},
    )
    return EndpointSet(endpoint, generated)


def endpoint_get(*, client: ApiClient) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(client=client).first()
    if endpoint is None:
        raise NotFound("No webhook is configured for this client.", code="webhook_not_configured")
    return endpoint


def endpoint_delete(*, client: ApiClient) -> None:
    """Removes the endpoint; deliveries still pending fail at their next attempt."""
    endpoint_get(client=client).delete()


def endpoint_secret(endpoint: WebhookEndpoint) -> str:
    return crypto.unseal(endpoint.secret_encrypted)


# --- the outbox ---
def enqueue_session_event(session: AuthSession) -> WebhookDelivery | None:
    """Queues the notification of a session that reached a final state, if its client has
    an active endpoint. Call inside the transaction that ends the session."""
    if not WebhookEndpoint.objects.filter(client_id=session.client_id, is_active=True).exists():
        return None
    # The status document, as GET .../status/ shows it to a JWT caller.
    from auth_service.api.serializers import session_status_data

    delivery_id = uuid.uuid4()
    event = f"session.{session.status}"
    now = timezone.now()
    document = {
        "id": str(delivery_id),
        "event": event,
        "created_at": iso_utc(now),
        "data": session_status_data(
            session, max_frames=settings.FACEAUTH_MAX_FRAMES, include_result=True
        ),
    }
    delivery = WebhookDelivery.objects.create(
        id=delivery_id,
        client_id=session.client_id,
        session=session,
        event=event,
        body=json.dumps(document, separators=(",", ":")),
        next_attempt_at=now,
    )
    transaction.on_commit(outbox_signal.set)
    return delivery


def backoff_delay(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: base, 2 base, 4 base, ...
    capped at FACEAUTH_WEBHOOK_BACKOFF_MAX_SECONDS."""
    base = settings.FACEAUTH_WEBHOOK_BACKOFF_SECONDS
    return min(base * 2 ** max(attempts - 1, 0), settings.FACEAUTH_WEBHOOK_BACKOFF_MAX_SECONDS)


def _lease() -> timedelta:
    # Longer than any attempt can take, so a live worker never loses its claim.
    return timedelta(seconds=2 * settings.FACEAUTH_WEBHOOK_TIMEOUT_SECONDS + 30)


def _due(now) -> Q:
    return Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) & (
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )


def claim_due(*, worker_id: str, limit: int = 20) -> list[WebhookDelivery]:
    """Claims up to ``limit`` due deliveries for this worker. Each claim is a conditional
    UPDATE on one row: of two workers racing for a delivery exactly one gets it."""
    now = timezone.now()
    candidates = list(
        WebhookDelivery.objects.filter(_due(now)).order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    claimed = []
    for pk in candidates:
        if WebhookDelivery.objects.filter(_due(now), pk=pk).update(
            lease_owner=worker_id, lease_until=now + _lease()
        ):
            claimed.append(pk)
    return list(WebhookDelivery.objects.filter(pk__in=claimed).order_by("next_attempt_at"))


def _delivery_address(url: str) -> str | None:
    """The address a delivery to ``url`` connects to, or None when it must not be sent:
    the host does not resolve, or (unless FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS) one of its
    addresses is not public (loopback, private, link-local, reserved: a client must not make
    the server call its own network)."""
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except OSError:
        return None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        return None
    if not settings.FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS and not all(
        ipaddress.ip_address(address.split("%")[0]).is_global for address in addresses
    ):
        return None
    return addresses[0]


class _PinnedAddressAdapter(requests.adapters.HTTPAdapter):
    """Connects to the address that was checked instead of resolving the host again, so a
    DNS answer that changes between the check and the connection (DNS rebinding) cannot
    point the request at another address. TLS still verifies the certificate for the host
    name (SNI and hostname check)."""

    def __init__(self, address: str) -> None:
        super().__init__(max_retries=0)
        self.address = address

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        hostname = host_params["host"]
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
        return host_params, pool_kwargs


def _post_pinned(url: str, address: str, *, body: bytes, headers: dict[str, str],
                 timeout: float) -> requests.Response:
    """POST ``body`` to ``url`` over a connection to ``address``. Environment proxies are
    not used: the address check must apply to the address actually connected to."""
    with requests.Session() as http:
        http.trust_env = False
        adapter = _PinnedAddressAdapter(address)
        http.mount("http://", adapter)
        http.mount("https://", adapter)
        host = urlsplit(url).netloc.rpartition("@")[2]  # host[:port], without credentials
        return http.post(url, data=body, headers={**headers, "Host": host}, timeout=timeout,
                         allow_redirects=False)


def attempt(delivery: WebhookDelivery, *, worker_id: str) -> WebhookAttempt:
    """Sends one claimed delivery once and records the outcome."""
    number = delivery.attempts + 1
    started = timezone.now()
    clock = time.perf_counter()
    endpoint = WebhookEndpoint.objects.filter(client_id=delivery.client_id, is_active=True).first()
    status_code: int | None = None
    error = ""
    url = endpoint.url if endpoint is not None else ""
    give_up = False
    if endpoint is None:
        error, give_up = "no active webhook endpoint for this client", True
    elif (address := _delivery_address(url)) is None:
        error = ("the webhook host does not resolve" if settings.FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS
                 else "the webhook host does not resolve to a public address")
    else:
        body = delivery.body.encode("utf-8")
        headers = signed_headers(
            secret=endpoint_secret(endpoint), body=body, event=delivery.event,
            delivery_id=delivery.id, timestamp=int(time.time()),
        )
        timeout = settings.FACEAUTH_WEBHOOK_TIMEOUT_SECONDS
        try:
            response = _post_pinned(url, address, body=body, headers=headers, timeout=timeout)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
    duration_ms = round((time.perf_counter() - clock) * 1000)
    delivered = not error
    changes: dict = {"attempts": number, "lease_owner": "", "lease_until": None}
    if delivered:
        outcome = "delivered"
        changes.update(status=DeliveryStatus.DELIVERED, delivered_at=timezone.now())
    elif give_up or number >= settings.FACEAUTH_WEBHOOK_MAX_ATTEMPTS:
        outcome = "failed"
        changes.update(status=DeliveryStatus.FAILED)
    else:
        outcome = "retry"
        changes.update(next_attempt_at=timezone.now() + timedelta(seconds=backoff_delay(number)))
    with transaction.atomic():
        record = WebhookAttempt.objects.create(
            delivery=delivery, number=number, url=url, started_at=started,
            duration_ms=duration_ms, status_code=status_code, error=error,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk, lease_owner=worker_id).update(**changes)
    metrics.WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()
    if outcome != "delivered":
        logger.warning("webhook %s attempt %d to %s: %s (%s)", delivery.id, number, url, error, outcome)
    return record


def deliver_due(*, worker_id: str) -> int:
    """One pass of the outbox: claims and sends every due delivery. Returns how many were
    attempted."""
    done = 0
    while True:
        batch = claim_due(worker_id=worker_id)
        if not batch:
            return done
        for delivery in batch:
            attempt(delivery, worker_id=worker_id)
            done += 1


def deliveries_for_session(*, client: ApiClient, session_id: uuid.UUID):
    """The webhook deliveries of one of this client's sessions, with their attempts."""
    return (
        WebhookDelivery.objects.filter(client=client, session_id=session_id)
        .prefetch_related("log").order_by("created_at")
    )
