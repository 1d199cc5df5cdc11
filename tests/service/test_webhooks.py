"""Webhooks: signing, the outbox written with the session's final state, claims, retries
with backoff, the delivery log, and the REST endpoint. Deliveries go to a real HTTP
receiver on 127.0.0.1 that verifies signatures as the client guide shows."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.db import transaction
from django.utils import timezone

from auth_service.models import AuthSession, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from auth_service.services import crypto, sessions, webhooks
from auth_service.services.frames import Verdict
from tests.webhook_receiver import Receiver

from .test_sessions import enroll_session, vectors

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
def receiver_factory() -> Iterator:
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(SECRET, statuses))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.FACEAUTH_WEBHOOK_BACKOFF_SECONDS = 2.0
    settings.FACEAUTH_WEBHOOK_BACKOFF_MAX_SECONDS = 60.0
    settings.FACEAUTH_WEBHOOK_MAX_ATTEMPTS = 3
    settings.FACEAUTH_WEBHOOK_TIMEOUT_SECONDS = 2.0


def finished_enrollment(creds) -> AuthSession:
    """An enrollment that really completes (templates stored, result encrypted)."""
    session = enroll_session(creds).session
    sessions.transition(session, "active")
    verdict = Verdict(reason=None, detail=None, embeddings=vectors(1, 3),
                      liveness={"is_live": True, "blinks": 1, "head_movement": True})
    return sessions.session_finish(session_id=session.id, verdict=verdict)


def make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"a":1}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.signature("k" * 16, 1700000000, body) == f"v1={expected}"
    # Any change of body, timestamp or secret changes the signature.
    assert webhooks.signature("k" * 16, 1700000001, body) != f"v1={expected}"
    assert webhooks.signature("k" * 16, 1700000000, b'{"a":2}') != f"v1={expected}"
    assert webhooks.signature("j" * 16, 1700000000, body) != f"v1={expected}"


def test_backoff_doubles_from_the_base_up_to_the_cap(settings):
    settings.FACEAUTH_WEBHOOK_BACKOFF_SECONDS = 2.0
    settings.FACEAUTH_WEBHOOK_BACKOFF_MAX_SECONDS = 30.0
    assert [webhooks.backoff_delay(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_no_endpoint_no_delivery(credentials):
    finished_enrollment(credentials)
    assert not WebhookDelivery.objects.exists()


def test_the_delivery_is_written_with_the_final_state_and_carries_the_status_document(credentials):
    webhooks.endpoint_set(client=credentials.client, url="http://127.0.0.1:9/hook", secret=SECRET)
    session = finished_enrollment(credentials)
    delivery = WebhookDelivery.objects.get()
    assert delivery.session_id == session.id and delivery.event == "session.completed"
    document = json.loads(delivery.body)
    assert document["id"] == str(delivery.id) and document["event"] == "session.completed"
    data = document["data"]
    assert data["session_id"] == str(session.id) and data["status"] == "completed"
    assert data["result"]["success"] is True and data["result"]["samples"] == 3
    # The encrypted payload decrypts with the client's secret; no secret travels.
    assert crypto.verify_result_hmac(data["encrypted_data"], credentials.secret_key)
    assert credentials.secret_key not in delivery.body and SECRET not in delivery.body


def test_a_rolled_back_ending_leaves_no_delivery(credentials):
    webhooks.endpoint_set(client=credentials.client, url="http://127.0.0.1:9/hook", secret=SECRET)
    session = enroll_session(credentials).session
    with pytest.raises(RuntimeError), transaction.atomic():
        sessions.transition(session, "cancelled", reason="cancelled_by_client")
        raise RuntimeError("crash before commit")
    assert not WebhookDelivery.objects.exists()
    assert AuthSession.objects.get(pk=session.pk).status == "pending"


def test_every_final_state_is_notified(credentials):
    webhooks.endpoint_set(client=credentials.client, url="http://127.0.0.1:9/hook", secret=SECRET)
    cancelled = enroll_session(credentials, user_id="a").session
    sessions.session_cancel(client=credentials.client, session_id=cancelled.id)
    overdue = enroll_session(credentials, user_id="b").session
    AuthSession.objects.filter(pk=overdue.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    sessions.session_for_client(client=credentials.client, session_id=overdue.id)
    events = dict(WebhookDelivery.objects.values_list("session_id", "event"))
    assert events == {cancelled.id: "session.cancelled", overdue.id: "session.expired"}


def test_delivery_retries_after_500_with_backoff_then_succeeds(credentials, receiver_factory):
    receiver = receiver_factory([500, 200])
    webhooks.endpoint_set(client=credentials.client, url=receiver.url, secret=SECRET)
    session = finished_enrollment(credentials)
    assert webhooks.deliver_due(worker_id="w1") == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 1.0 < wait <= 2.0  # the first backoff step
    assert webhooks.deliver_due(worker_id="w1") == 0  # not due yet
    make_due(delivery)
    assert webhooks.deliver_due(worker_id="w1") == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2
    assert [r["status"] for r in receiver.received] == [500, 200]
    assert all(r["verified"] for r in receiver.received)
    first, second = receiver.received
    assert first["body"] == second["body"]  # the same bytes on every retry
    delivery_ids = {r["headers"]["X-FaceAuth-Delivery"] for r in receiver.received}
    assert delivery_ids == {str(delivery.id)}
    assert first["headers"]["X-FaceAuth-Event"] == "session.completed"
    log = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("number", "status_code", "error"))
    assert log == [(1, 500, "HTTP 500"), (2, 200, "")]
    assert json.loads(second["body"])["data"]["session_id"] == str(session.id)


def test_delivery_gives_up_after_the_last_attempt(credentials, receiver_factory):
    receiver = receiver_factory([503])
    webhooks.endpoint_set(client=credentials.client, url=receiver.url, secret=SECRET)
    finished_enrollment(credentials)
    delivery = WebhookDelivery.objects.get()
    for _ in range(3):
        make_due(delivery)
        webhooks.deliver_due(worker_id="w1")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    make_due(delivery)
    assert webhooks.deliver_due(worker_id="w1") == 0 and len(receiver.received) == 3


def test_an_unreachable_receiver_is_retried(credentials, receiver_factory):
    receiver = receiver_factory([200])
    url = receiver.url
    receiver.close()  # nobody listens there any more
    webhooks.endpoint_set(client=credentials.client, url=url, secret=SECRET)
    finished_enrollment(credentials)
    webhooks.deliver_due(worker_id="w1")
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert "ConnectionError" in delivery.log.get().error


def test_a_claimed_delivery_is_not_claimed_twice_until_its_lease_runs_out(credentials):
    webhooks.endpoint_set(client=credentials.client, url="http://127.0.0.1:9/hook", secret=SECRET)
    finished_enrollment(credentials)
    assert len(webhooks.claim_due(worker_id="a")) == 1
    assert webhooks.claim_due(worker_id="b") == []
    WebhookDelivery.objects.update(lease_until=timezone.now() - timedelta(seconds=1))  # "a" died
    assert [d.lease_owner for d in webhooks.claim_due(worker_id="b")] == ["b"]


def test_private_addresses_are_refused_unless_allowed(credentials, receiver_factory, settings):
    settings.FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS = False
    receiver = receiver_factory([200])
    webhooks.endpoint_set(client=credentials.client, url=receiver.url, secret=SECRET)
    finished_enrollment(credentials)
    webhooks.deliver_due(worker_id="w1")
    assert receiver.received == []
    assert "public address" in WebhookAttempt.objects.get().error


class FakeDns:
    """Answers for one made-up host name, a different answer on each lookup (as a DNS
    rebinding attacker would give); every other name resolves as usual."""

    def __init__(self, host: str, answers: list[str]) -> None:
        self.host, self.answers, self.lookups = host, answers, 0
        self.real = socket.getaddrinfo

    def __call__(self, host, port, *args, **kwargs):
        if host != self.host:
            return self.real(host, port, *args, **kwargs)
        address = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]


def test_a_delivery_connects_to_the_address_that_was_checked(credentials, receiver_factory, monkeypatch):
    receiver = receiver_factory([200])
    port = urlsplit(receiver.url).port
    # The first lookup (the check) gives the receiver; any later one an address where nothing listens.
    dns = FakeDns("hooks.faceauth.test", ["127.0.0.1", "127.0.0.2"])
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    url = f"http://hooks.faceauth.test:{port}/hook"
    webhooks.endpoint_set(client=credentials.client, url=url, secret=SECRET)
    finished_enrollment(credentials)
    assert webhooks.deliver_due(worker_id="w1") == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED
    assert dns.lookups == 1  # resolved once, for the check; the connection used that answer
    assert receiver.received[0]["headers"]["Host"] == f"hooks.faceauth.test:{port}"
    assert receiver.received[0]["verified"]


def test_dns_rebinding_cannot_turn_a_public_host_into_a_local_one(
    credentials, receiver_factory, monkeypatch, settings
):
    settings.FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS = False
    settings.FACEAUTH_WEBHOOK_TIMEOUT_SECONDS = 1.0
    receiver = receiver_factory([200])
    port = urlsplit(receiver.url).port
    # Public for the check (TEST-NET would not pass: it is reserved), loopback afterwards.
    dns = FakeDns("hooks.faceauth.test", ["203.0.113.200", "127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    monkeypatch.setattr(webhooks.ipaddress, "ip_address", _global_test_net)
    url = f"http://hooks.faceauth.test:{port}/hook"
    webhooks.endpoint_set(client=credentials.client, url=url, secret=SECRET)
    finished_enrollment(credentials)
    webhooks.deliver_due(worker_id="w1")
    assert receiver.received == []  # never reached through the second answer
    assert dns.lookups == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING  # retried later


def _global_test_net(address: str):
    """ipaddress.ip_address, except that 203.0.113.200 (TEST-NET-3, unroutable) counts as a
    public address, so the test never sends anything to a real host."""
    if address == "203.0.113.200":
        return SimpleNamespace(is_global=True)
    return _REAL_IP_ADDRESS(address)


_REAL_IP_ADDRESS = ipaddress.ip_address


def test_removed_endpoint_fails_pending_deliveries(credentials):
    webhooks.endpoint_set(client=credentials.client, url="http://127.0.0.1:9/hook", secret=SECRET)
    finished_enrollment(credentials)
    webhooks.endpoint_delete(client=credentials.client)
    webhooks.deliver_due(worker_id="w1")
    assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED


# --- REST ---
def test_put_generates_a_secret_shown_once_and_stores_it_encrypted(api, credentials):
    response = api.put("/api/auth/webhook/", {"url": "https://example.com/hook"}, format="json")
    assert response.status_code == 200
    secret = response.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    stored = WebhookEndpoint.objects.get(client=credentials.client)
    assert secret not in stored.secret_encrypted and webhooks.endpoint_secret(stored) == secret
    shown = api.get("/api/auth/webhook/").json()
    assert shown["url"] == "https://example.com/hook" and "secret" not in shown


def test_put_with_own_secret_then_delete(api):
    body = {"url": "https://example.com/h", "secret": SECRET}
    response = api.put("/api/auth/webhook/", body, format="json")
    assert response.status_code == 200 and "secret" not in response.json()
    assert api.delete("/api/auth/webhook/").status_code == 204
    missing = api.get("/api/auth/webhook/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "webhook_not_configured"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/x", "secret": "short"}, "secret"),
        ({}, "url"),
    ],
)
def test_put_refuses_bad_input(api, body, field):
    response = api.put("/api/auth/webhook/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_delivery_log_of_a_session_is_the_clients_own(api, other_api, credentials, receiver_factory):
    receiver = receiver_factory([500, 200])
    webhooks.endpoint_set(client=credentials.client, url=receiver.url, secret=SECRET)
    session = finished_enrollment(credentials)
    webhooks.deliver_due(worker_id="w1")
    log = api.get(f"/api/auth/sessions/{session.id}/webhooks/").json()
    (delivery,) = log["deliveries"]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["log"][0]["status_code"] == 500 and delivery["next_attempt_at"]
    assert other_api.get(f"/api/auth/sessions/{session.id}/webhooks/").status_code == 404


# --- admin ---
def test_operators_set_the_endpoint_in_the_admin_without_seeing_the_secret(client, credentials):
    from django.contrib.auth.models import User

    User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client.login(username="operator", password="pw-for-tests-only")
    form = {"client": credentials.client.pk, "url": "https://example.com/hook", "is_active": "on"}
    refused = client.post("/admin/auth_service/webhookendpoint/add/", form)
    assert refused.status_code == 200 and "needs a signing secret" in refused.content.decode()
    added = client.post("/admin/auth_service/webhookendpoint/add/", {**form, "new_secret": SECRET})
    assert added.status_code == 302
    endpoint = WebhookEndpoint.objects.get(client=credentials.client)
    assert webhooks.endpoint_secret(endpoint) == SECRET
    finished_enrollment(credentials)
    delivery = WebhookDelivery.objects.get()
    for page in [f"/admin/auth_service/webhookendpoint/{endpoint.pk}/change/",
                 "/admin/auth_service/webhookdelivery/",
                 f"/admin/auth_service/webhookdelivery/{delivery.pk}/change/"]:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert SECRET not in html and endpoint.secret_encrypted not in html
        assert credentials.secret_key not in html
