"""/metrics: protection by setting, the Prometheus text format, and the counters the
service updates."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from auth_service.services import sessions

from .test_sessions import enroll_session

pytestmark = pytest.mark.django_db
METRIC_NAMES = {
    "faceauth_sessions_created", "faceauth_sessions_finished", "faceauth_liveness_failures",
    "faceauth_frame_round_trip_seconds", "faceauth_frame_engine_seconds", "faceauth_engine_backlog",
    "faceauth_websockets_open", "faceauth_websocket_errors", "faceauth_webhook_attempts",
}


def scrape(**headers) -> dict[tuple[str, tuple], float]:
    response = Client().get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_disabled_metrics_are_not_found(settings):
    settings.FACEAUTH_METRICS_ENABLED = False
    response = Client().get("/metrics")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_token_is_required_when_configured(settings):
    settings.FACEAUTH_METRICS_ENABLED = True
    settings.FACEAUTH_METRICS_TOKEN = "metrics-token-123"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    scrape(HTTP_AUTHORIZATION="Bearer metrics-token-123")


def test_every_documented_metric_is_exposed(settings):
    settings.FACEAUTH_METRICS_ENABLED = True
    settings.FACEAUTH_METRICS_TOKEN = None
    families = {
        family.name
        for family in text_string_to_metric_families(Client().get("/metrics").content.decode())
    }
    assert families >= METRIC_NAMES


def test_sessions_are_counted_when_created_and_when_they_end(
    settings, credentials, django_capture_on_commit_callbacks
):
    settings.FACEAUTH_METRICS_ENABLED = True
    created = ("faceauth_sessions_created_total", (("kind", "enrollment"), ("mode", "enrollment")))
    ended = ("faceauth_sessions_finished_total", (("kind", "enrollment"), ("mode", "enrollment"),
                                                  ("reason", "cancelled_by_client"), ("status", "cancelled")))
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        session = enroll_session(credentials).session
    with django_capture_on_commit_callbacks(execute=True):
        sessions.session_cancel(client=credentials.client, session_id=session.id)
    after = scrape()
    assert after[created] - before.get(created, 0) == 1
    assert after[ended] - before.get(ended, 0) == 1


def test_liveness_failures_are_counted_by_the_trackers_failure(settings):
    from auth_service import metrics

    settings.FACEAUTH_METRICS_ENABLED = True
    key = ("faceauth_liveness_failures_total", (("reason", "static_image"),))
    before = scrape().get(key, 0)
    metrics.session_finished(kind="authentication", mode="verification", status="failed",
                             reason="liveness_failed", liveness={"failure": "static_image"})
    assert scrape()[key] - before == 1
