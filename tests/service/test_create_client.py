from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from auth_service.models import ApiClient
from auth_service.services import clients

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("create_client", *args, stdout=out)
    return out.getvalue()


def test_prints_keys_once_and_they_work():
    output = run("demo")
    api_key = output.split("api_key:")[1].split()[0]
    secret_key = output.split("secret_key:")[1].split()[0]
    assert "not shown again" in output
    client = clients.client_authenticate(api_key=api_key, secret_key=secret_key)
    assert client.name == "demo"


def test_json_output_is_only_the_json_object():
    data = json.loads(run("demo", "--json"))
    assert set(data) == {"client_id", "api_key", "secret_key"}
    client = clients.client_authenticate(api_key=data["api_key"], secret_key=data["secret_key"])
    assert str(client.id) == data["client_id"]


def test_existing_name_fails_unless_rotating():
    first = json.loads(run("demo", "--json"))
    with pytest.raises(CommandError, match="--rotate"):
        run("demo")
    second = json.loads(run("demo", "--json", "--rotate"))
    assert second["client_id"] == first["client_id"]
    assert second["secret_key"] != first["secret_key"]
    assert ApiClient.objects.count() == 1
