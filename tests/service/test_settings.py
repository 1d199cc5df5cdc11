"""Settings come from the environment; production secrets have no default. Each case runs
in a fresh interpreter, since settings are read once at import."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, config.settings as s; print(json.dumps({"
    "'debug': s.DEBUG, 'secret': s.SECRET_KEY, 'db': s.DATABASES['default']['ENGINE'],"
    "'db_name': s.DATABASES['default']['NAME'], 'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
    "'layer_hosts': s.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('hosts'),"
    "'cache': s.CACHES['default']['BACKEND'], 'origins': s.FACEAUTH_ALLOWED_ORIGINS,"
    "'max_frames': s.FACEAUTH_MAX_FRAMES, 'daphne_max': s.DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE,"
    "'db_pool': s.DATABASES['default'].get('OPTIONS', {}).get('pool'),"
    "'db_max_age': s.DATABASES['default']['CONN_MAX_AGE']}))"
)


def settings_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FACEAUTH_")) and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    clean.update({"FACEAUTH_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=clean, capture_output=True, text=True,
        timeout=60,
    )


def values(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_zero_setup_mode_generates_and_keeps_a_development_key(tmp_path):
    first = settings_with(tmp_path)
    data = values(first)
    assert data["debug"] is True
    assert data["db"] == "django.db.backends.sqlite3"
    assert data["db_name"] == str(tmp_path / "data" / "db.sqlite3")
    assert data["layer"] == "channels.layers.InMemoryChannelLayer"
    assert data["origins"] == ["*"]
    assert "DEVELOPMENT key" in first.stderr  # loudly noted, once
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == data["secret"]
    second = settings_with(tmp_path)
    assert values(second)["secret"] == data["secret"] and "DEVELOPMENT" not in second.stderr


def test_debug_off_without_a_secret_key_refuses_to_start(tmp_path):
    result = settings_with(tmp_path, DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr
    assert not (tmp_path / "data" / "secret_key").exists()


def test_a_configured_secret_means_production_defaults(tmp_path):
    data = values(settings_with(tmp_path, DJANGO_SECRET_KEY="k" * 50))
    assert data["secret"] == "k" * 50 and data["debug"] is False
    assert data["origins"] == []


def test_database_and_redis_urls_switch_backends(tmp_path):
    data = values(settings_with(
        tmp_path, DJANGO_SECRET_KEY="k" * 50,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/faceauth",
        REDIS_URL="redis://127.0.0.1:6379/3",
    ))
    assert data["db"] == "django.db.backends.postgresql" and data["db_name"] == "faceauth"
    assert data["layer"] == "channels_redis.core.RedisChannelLayer"
    # The read timeout must outlast channels-redis's blocking 5 s pop (redis-py 8 defaults 5 s).
    assert data["layer_hosts"] == [{"address": "redis://127.0.0.1:6379/3", "socket_timeout": 15}]
    assert data["cache"] == "django.core.cache.backends.redis.RedisCache"


def test_a_database_pool_size_gives_each_process_a_pool_of_postgresql_connections(tmp_path):
    url = "postgres://postgres@127.0.0.1:5432/faceauth"
    production = {"DJANGO_SECRET_KEY": "k" * 50, "DATABASE_URL": url, "FACEAUTH_DB_POOL_SIZE": "10"}
    data = values(settings_with(tmp_path, **production))
    assert data["db_pool"] == {"min_size": 2, "max_size": 10, "timeout": 10} and data["db_max_age"] == 0
    # SQLite has no pool: the setting is for PostgreSQL.
    assert values(settings_with(tmp_path, FACEAUTH_DB_POOL_SIZE="10"))["db_pool"] is None
    # Pooled connections go back to the pool after each request: they cannot also persist.
    both = settings_with(tmp_path, **production, FACEAUTH_DB_CONN_MAX_AGE="60")
    assert both.returncode != 0
    assert "FACEAUTH_DB_POOL_SIZE and FACEAUTH_DB_CONN_MAX_AGE exclude each other" in both.stderr


def test_limits_are_read_from_the_environment(tmp_path):
    data = values(settings_with(tmp_path, FACEAUTH_MAX_FRAMES="60", FACEAUTH_MAX_MESSAGE_BYTES="5000"))
    assert data["max_frames"] == 60 and data["daphne_max"] == 10_000


@pytest.mark.parametrize(
    "name, value", [("FACEAUTH_MAX_FRAMES", "many"), ("FACEAUTH_MAX_FPS", "0"), ("DJANGO_DEBUG", "maybe")]
)
def test_malformed_values_name_the_variable(tmp_path, name, value):
    result = settings_with(tmp_path, **{name: value})
    assert result.returncode != 0 and name in result.stderr
