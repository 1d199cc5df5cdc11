"""OpenAPI: the schema generates without warnings, covers every REST endpoint with its
responses and the shared error body, and the docs page loads nothing from a CDN."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import get_resolver

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema() -> dict:
    return Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def test_generation_has_no_warnings_and_validates():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert out.getvalue().startswith("openapi: 3")


def test_every_api_route_is_described(schema):
    api_routes = {
        "/api/" + re.sub(r"<str:(\w+)>", r"{\1}", str(pattern.pattern))
        for pattern in get_resolver("auth_service.api.urls").url_patterns
    }
    assert api_routes == set(schema["paths"])


def test_errors_share_one_body_and_authenticated_operations_document_401(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, method, status)
            # The only server-side error a client should plan for is overload (503).
            assert not any(s.startswith("5") and s != "503" for s in responses), (path, method)
            if operation.get("security") and {} not in operation["security"]:
                assert "401" in responses, (path, method)


def test_the_seed_shapes_are_in_the_schema(schema):
    components = schema["components"]["schemas"]
    assert {"token", "client_id", "expires_at"} <= set(components["ClientToken"]["properties"])
    assert {"session_token", "enrollment_id", "websocket_url", "status", "target_samples",
            "expires_at"} <= set(components["EnrollmentSessionCreated"]["properties"])
    assert {"session_token", "session_id", "websocket_url", "status", "mode",
            "expires_at"} <= set(components["AuthenticationSessionCreated"]["properties"])
    assert "encrypted_payload" in components["EncryptedData"]["properties"]
    status_security = schema["paths"]["/api/auth/sessions/{session_id}/status/"]["get"]["security"]
    assert {"clientJWTOrApiKey": []} in status_security


def test_docs_page_uses_only_this_servers_assets(settings):
    settings.DEBUG = False  # no static file handler: the server itself must serve them
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/api/schema/" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(not s.startswith(("http://", "https://", "//")) for s in sources), sources
    for source in sources:
        asset = Client().get(source)
        assert asset.status_code == 200, source
        b"".join(asset.streaming_content)
    assert Client().get("/static/drf_spectacular_sidecar/../../../settings.py").status_code == 404
