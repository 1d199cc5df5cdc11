"""FaceAuth settings, all read from the environment (docs/operations.md documents each).

Two modes:
- Zero-setup development (no DJANGO_SECRET_KEY): DEBUG on, SQLite and a generated secret
  key under .faceauth/, the in-memory channel layer. `python manage.py runserver` just works.
- Production (DJANGO_SECRET_KEY set): DEBUG off unless DJANGO_DEBUG says otherwise;
  DATABASE_URL and REDIS_URL select PostgreSQL and the Redis channel layer and cache.
DEBUG off without DJANGO_SECRET_KEY refuses to start: production secrets have no default."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_str
from face_engine.decode import ALL_FORMATS, DEFAULT_FORMATS
from face_engine.matching import DEFAULT_MARGIN
from face_engine.matching import LEVELS as MATCH_LEVELS

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state of the zero-setup mode (SQLite database, generated secret key); gitignored.
FACEAUTH_DATA_DIR = Path(env_str("FACEAUTH_DATA_DIR") or BASE_DIR / ".faceauth")


def _development_secret_key(data_dir: Path) -> str:
    """Reads the generated development key, creating it (mode 0600) on first use."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    print(
        f"FaceAuth: DJANGO_SECRET_KEY is not set; generated a DEVELOPMENT key in {path}.\n"
        "FaceAuth: never run like this in production: set DJANGO_SECRET_KEY and "
        "FACEAUTH_ENCRYPTION_KEY.",
        file=sys.stderr,
    )
    return key


_secret_from_env = env_str("DJANGO_SECRET_KEY") or None
# With no secret configured we are on a developer's machine: DEBUG defaults on. Once a
# secret is set (a deployment), DEBUG defaults off so a forgotten variable fails safe.
DEBUG = env_bool("DJANGO_DEBUG", default=_secret_from_env is None)
if _secret_from_env is None and not DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (production secrets have no "
        "default). Generate one with: python -c \"import secrets; print(secrets.token_urlsafe(50))\""
    )
SECRET_KEY = _secret_from_env or _development_secret_key(FACEAUTH_DATA_DIR)
FACEAUTH_DEVELOPMENT_SECRET = _secret_from_env is None

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # daphne first: its runserver serves HTTP and WebSockets (ASGI) in one process.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "auth_service",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "auth_service.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_default_database_url = f"sqlite:///{FACEAUTH_DATA_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.config(
        default=_default_database_url,
        conn_max_age=env_int("FACEAUTH_DB_CONN_MAX_AGE", 0, minimum=0),
        conn_health_checks=True,
    )
}
# PostgreSQL: each process keeps a pool of open connections (Django's psycopg_pool option) when
# FACEAUTH_DB_POOL_SIZE (its most connections) is set, as serve-production.sh does. Django serves
# each HTTP request on a thread of its own, and a connection is bound to its thread: without the
# pool every session created opened a connection, and PostgreSQL started a backend for it
# (8-9 ms of its CPU, as much as the request's own 11-12 ms in the worker).
FACEAUTH_DB_POOL_SIZE = env_int("FACEAUTH_DB_POOL_SIZE", 0, minimum=0)
if FACEAUTH_DB_POOL_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured(
            "FACEAUTH_DB_POOL_SIZE and FACEAUTH_DB_CONN_MAX_AGE exclude each other: pooled connections "
            "go back to the pool after each request; set one of them to 0"
        )
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, FACEAUTH_DB_POOL_SIZE), "max_size": FACEAUTH_DB_POOL_SIZE, "timeout": 10,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] != ":memory:":
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the status endpoint read while a WebSocket session writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20}
    )

REDIS_URL = env_str("REDIS_URL") or None
FACEAUTH_CACHE_KEY_PREFIX = env_str("FACEAUTH_CACHE_KEY_PREFIX", "faceauth")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 defaults socket_timeout to 5 s, which aborts channels-redis's
                # blocking 5 s BZPOPMIN and tears consumers down (channels_redis#422); the
                # read timeout must outlast the blocking pop.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "prefix": f"{FACEAUTH_CACHE_KEY_PREFIX}:asgi",
            },
        }
    }
    # Throttling counters must be shared by all worker processes.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": FACEAUTH_CACHE_KEY_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_PREFIX": FACEAUTH_CACHE_KEY_PREFIX,
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Languages of the messages end users see (hints, instructions, errors, session results);
# English is the source, auth_service/locale holds the Indonesian catalogue (auth_service.i18n).
LANGUAGES = [("en", "English"), ("id", "Bahasa Indonesia")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT") or FACEAUTH_DATA_DIR / "static")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Behind a TLS-terminating proxy: trust X-Forwarded-Proto/Host so that websocket_url says
# wss://public-host, and X-Forwarded-For for per-IP throttling.
FACEAUTH_TRUST_PROXY_HEADERS = env_bool("FACEAUTH_TRUST_PROXY_HEADERS", False)
if FACEAUTH_TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

# API bodies are small JSON documents; frames travel over the WebSocket only.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["auth_service.api.authentication.ClientJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["auth_service.api.authentication.IsApiClient"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "auth_service.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": 1 if FACEAUTH_TRUST_PROXY_HEADERS else None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI 3 at /api/schema/, browsable at /api/docs/ (Swagger UI served from this server).
SPECTACULAR_SETTINGS = {
    "TITLE": "FaceAuth API",
    "DESCRIPTION": "Face enrollment and authentication sessions. Frames are streamed over the "
    "WebSocket described in docs/websocket-guide.md; errors are always "
    '{"error": {"code", "message"}}.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- FaceAuth: every limit and threshold (docs/operations.md documents this table) ---
# Server-side key that encrypts client secrets at rest: comma-separated Fernet keys, the
# first encrypts, all decrypt (rotation). Unset: derived from SECRET_KEY.
FACEAUTH_ENCRYPTION_KEY = env_str("FACEAUTH_ENCRYPTION_KEY") or None
FACEAUTH_JWT_TTL_SECONDS = env_int("FACEAUTH_JWT_TTL_SECONDS", 3600, minimum=60)
FACEAUTH_JWT_ISSUER = env_str("FACEAUTH_JWT_ISSUER", "faceauth")
FACEAUTH_JWT_AUDIENCE = env_str("FACEAUTH_JWT_AUDIENCE", "faceauth-api")
FACEAUTH_CREDENTIAL_RATE = env_str("FACEAUTH_CREDENTIAL_RATE", "20/minute")
FACEAUTH_SESSION_CREATE_RATE = env_str("FACEAUTH_SESSION_CREATE_RATE", "60/minute")
FACEAUTH_MAX_ACTIVE_SESSIONS_PER_CLIENT = env_int(
    "FACEAUTH_MAX_ACTIVE_SESSIONS_PER_CLIENT", 20, minimum=1
)
# Origins allowed for CORS (REST) and WebSocket handshakes; "*" any, "null" file:// pages.
FACEAUTH_ALLOWED_ORIGINS = env_list("FACEAUTH_ALLOWED_ORIGINS", ["*"] if DEBUG else [])

FACEAUTH_MAX_FPS = env_int("FACEAUTH_MAX_FPS", 10, minimum=1)
# Token bucket: frames average at most FACEAUTH_MAX_FPS a second, with up to this many
# sent early (network and scheduling jitter bring arrivals closer than 1000/fps ms).
FACEAUTH_FRAME_BURST = env_int("FACEAUTH_FRAME_BURST", 3, minimum=1)
# Admission control (services.admission): new sessions get 503 "overloaded" when frames wait
# longer than this for an engine thread (p95; 0 turns admission control off) or when all open
# sessions and the new one would take the engine CPU past this share of the cores.
FACEAUTH_ADMISSION_LATENCY_MS = env_int("FACEAUTH_ADMISSION_LATENCY_MS", 100, minimum=0)
FACEAUTH_ADMISSION_CPU_SHARE = env_float("FACEAUTH_ADMISSION_CPU_SHARE", 0.85)
# Follow the face between detections (face_engine.FaceTracker) while liveness does not need the
# detector's landmarks (LivenessTracker.needs_detection); off detects every frame (docs/operations.md).
FACEAUTH_FACE_TRACKING = env_bool("FACEAUTH_FACE_TRACKING", True)
FACEAUTH_MAX_FRAMES = env_int("FACEAUTH_MAX_FRAMES", 120, minimum=1)
FACEAUTH_MIN_FRAMES = env_int("FACEAUTH_MIN_FRAMES", 3, minimum=1)
FACEAUTH_SESSION_TIMEOUT_SECONDS = env_int("FACEAUTH_SESSION_TIMEOUT_SECONDS", 300, minimum=10)
FACEAUTH_IDLE_TIMEOUT_SECONDS = env_int("FACEAUTH_IDLE_TIMEOUT_SECONDS", 30, minimum=1)
# A 1 MiB JPEG as a base64 data URL inside {"type":"frame"} is about 1.4 MB.
FACEAUTH_MAX_MESSAGE_BYTES = env_int("FACEAUTH_MAX_MESSAGE_BYTES", 1_400_000, minimum=1024)
FACEAUTH_MAX_IMAGE_BYTES = env_int("FACEAUTH_MAX_IMAGE_BYTES", 1_048_576, minimum=1024)
FACEAUTH_MAX_IMAGE_SIDE = env_int("FACEAUTH_MAX_IMAGE_SIDE", 4096, minimum=64)
FACEAUTH_MAX_IMAGE_PIXELS = env_int("FACEAUTH_MAX_IMAGE_PIXELS", 16_777_216, minimum=4096)
FACEAUTH_MAX_INVALID_FRAMES = env_int("FACEAUTH_MAX_INVALID_FRAMES", 10, minimum=1)
FACEAUTH_DEFAULT_TARGET_SAMPLES = env_int("FACEAUTH_DEFAULT_TARGET_SAMPLES", 5, minimum=1)
FACEAUTH_MAX_TARGET_SAMPLES = env_int("FACEAUTH_MAX_TARGET_SAMPLES", 10, minimum=1)
FACEAUTH_MIN_PROBE_SAMPLES = env_int("FACEAUTH_MIN_PROBE_SAMPLES", 3, minimum=1)
FACEAUTH_SAMPLE_INTERVAL_MS = env_int("FACEAUTH_SAMPLE_INTERVAL_MS", 250, minimum=0)
# Liveness of sessions whose metadata names none: "passive" (a blink and 3D head movement) or
# "active" (a random sequence of 2-3 challenges drawn at connection, face_engine.challenge).
FACEAUTH_LIVENESS_MODE = env_str("FACEAUTH_LIVENESS_MODE", "passive")
if FACEAUTH_LIVENESS_MODE not in ("passive", "active"):
    raise ImproperlyConfigured(
        f"FACEAUTH_LIVENESS_MODE must be passive or active, not {FACEAUTH_LIVENESS_MODE!r}"
    )
# The anti-spoofing check (face_engine/liveness/presentation.py): on by default in both modes; the
# threshold on the mean real-probability of a session's scored frames, unset = the engine's
# calibrated value (`python -m face_engine pad-eval --calibrate-bpcer` recalibrates on your frames).
FACEAUTH_PRESENTATION_CHECK = env_bool("FACEAUTH_PRESENTATION_CHECK", True)
FACEAUTH_PRESENTATION_THRESHOLD = env_str("FACEAUTH_PRESENTATION_THRESHOLD", "") or None
if FACEAUTH_PRESENTATION_THRESHOLD is not None:
    try:
        FACEAUTH_PRESENTATION_THRESHOLD = float(FACEAUTH_PRESENTATION_THRESHOLD)
    except ValueError as exc:
        raise ImproperlyConfigured("FACEAUTH_PRESENTATION_THRESHOLD must be a number from 0 to 1") from exc
    if not 0.0 <= FACEAUTH_PRESENTATION_THRESHOLD <= 1.0:
        raise ImproperlyConfigured("FACEAUTH_PRESENTATION_THRESHOLD must be a number from 0 to 1")
# Language of sessions whose metadata and client name none (en or id, settings.LANGUAGES).
FACEAUTH_DEFAULT_LANGUAGE = env_str("FACEAUTH_DEFAULT_LANGUAGE", "en")
if FACEAUTH_DEFAULT_LANGUAGE not in dict(LANGUAGES):
    raise ImproperlyConfigured(
        f"FACEAUTH_DEFAULT_LANGUAGE must be one of {', '.join(dict(LANGUAGES))}, "
        f"not {FACEAUTH_DEFAULT_LANGUAGE!r}"
    )
# Matching (docs/accuracy.md): the level of authentications
# whose session and client name none; each level is a target false match rate with a
# calibrated threshold (face_engine.matching.LEVELS).
FACEAUTH_DEFAULT_MATCH_LEVEL = env_str("FACEAUTH_DEFAULT_MATCH_LEVEL", "high")
if FACEAUTH_DEFAULT_MATCH_LEVEL not in MATCH_LEVELS:
    raise ImproperlyConfigured(
        f"FACEAUTH_DEFAULT_MATCH_LEVEL must be one of {', '.join(MATCH_LEVELS)}, "
        f"not {FACEAUTH_DEFAULT_MATCH_LEVEL!r}"
    )
# An explicit cosine threshold that replaces every level's (unset: the levels decide).
FACEAUTH_MATCH_THRESHOLD = env_float("FACEAUTH_MATCH_THRESHOLD", None)
# 1:N: the best user must lead the second best by this much similarity, else "ambiguous";
# each probe fetches this many nearest templates from the gallery before exact scoring.
FACEAUTH_IDENTIFICATION_MARGIN = env_float("FACEAUTH_IDENTIFICATION_MARGIN", DEFAULT_MARGIN)
FACEAUTH_IDENTIFICATION_CANDIDATES = env_int("FACEAUTH_IDENTIFICATION_CANDIDATES", 10, minimum=1)
# Where 1:N search runs: "memory" (each process keeps a client's templates as a matrix,
# reloaded when the channel layer says they changed, or after FACEAUTH_GALLERY_CACHE_SECONDS)
# or "pgvector" (an HNSW index in PostgreSQL at FACEAUTH_PGVECTOR_URL, default DATABASE_URL).
FACEAUTH_GALLERY_BACKEND = env_str("FACEAUTH_GALLERY_BACKEND", "memory")
if FACEAUTH_GALLERY_BACKEND not in ("memory", "pgvector"):
    raise ImproperlyConfigured(
        f"FACEAUTH_GALLERY_BACKEND must be memory or pgvector, not {FACEAUTH_GALLERY_BACKEND!r}"
    )
FACEAUTH_GALLERY_CACHE_SECONDS = env_int("FACEAUTH_GALLERY_CACHE_SECONDS", 600, minimum=1)
FACEAUTH_PGVECTOR_URL = env_str("FACEAUTH_PGVECTOR_URL") or (
    env_str("DATABASE_URL") if DATABASES["default"]["ENGINE"].endswith("postgresql") else None
)
if FACEAUTH_GALLERY_BACKEND == "pgvector" and not FACEAUTH_PGVECTOR_URL:
    raise ImproperlyConfigured(
        "FACEAUTH_GALLERY_BACKEND=pgvector needs PostgreSQL with pgvector: set FACEAUTH_PGVECTOR_URL "
        "or a postgresql:// DATABASE_URL"
    )
# HNSW search breadth (pgvector's hnsw.ef_search, at least the candidates fetched): higher is
# slower and finds more (bench/gallery.py: 200 finds the right person 99% of the time at 1M).
FACEAUTH_PGVECTOR_EF_SEARCH = env_int("FACEAUTH_PGVECTOR_EF_SEARCH", 200, minimum=10)
# Image formats the WebSocket accepts (jpeg, png, webp, bmp, tiff); the CLI reads them all.
FACEAUTH_ACCEPTED_IMAGE_FORMATS = tuple(env_list("FACEAUTH_ACCEPTED_IMAGE_FORMATS", list(DEFAULT_FORMATS)))
if not FACEAUTH_ACCEPTED_IMAGE_FORMATS or set(FACEAUTH_ACCEPTED_IMAGE_FORMATS) - set(ALL_FORMATS):
    raise ImproperlyConfigured(
        f"FACEAUTH_ACCEPTED_IMAGE_FORMATS must list some of {', '.join(ALL_FORMATS)}, "
        f"not {FACEAUTH_ACCEPTED_IMAGE_FORMATS!r}"
    )
FACEAUTH_SAMPLE_AGREEMENT_THRESHOLD = env_float("FACEAUTH_SAMPLE_AGREEMENT_THRESHOLD", None)
FACEAUTH_MAX_TEMPLATES_PER_USER = env_int("FACEAUTH_MAX_TEMPLATES_PER_USER", 20, minimum=1)
FACEAUTH_ENGINE_THREADS = env_int("FACEAUTH_ENGINE_THREADS", os.cpu_count() or 2, minimum=1)
FACEAUTH_WARM_UP_MODELS = env_bool("FACEAUTH_WARM_UP_MODELS", True)

# Daphne refuses larger WebSocket messages at the protocol level (close 1009); ours is a
# friendlier, non-fatal "message_too_large" for anything between the two limits.
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = 2 * FACEAUTH_MAX_MESSAGE_BYTES
DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = 2 * FACEAUTH_MAX_MESSAGE_BYTES

# --- Operations: metrics, webhooks, restart safety (docs/operations.md) ---
# /metrics (Prometheus): with a token it needs "Authorization: Bearer <token>"; without one
# it is served only when enabled explicitly or with DEBUG on (production: off unless asked).
FACEAUTH_METRICS_TOKEN = env_str("FACEAUTH_METRICS_TOKEN") or None
FACEAUTH_METRICS_ENABLED = env_bool("FACEAUTH_METRICS_ENABLED", DEBUG or FACEAUTH_METRICS_TOKEN is not None)
# Each server process runs one background thread: webhook delivery, heartbeats of the
# sessions it streams, and ending sessions whose process stopped (services.worker).
FACEAUTH_BACKGROUND_WORKER = env_bool("FACEAUTH_BACKGROUND_WORKER", True)
FACEAUTH_WORKER_HEARTBEAT_SECONDS = env_float("FACEAUTH_WORKER_HEARTBEAT_SECONDS", 5.0)
FACEAUTH_WEBHOOK_TIMEOUT_SECONDS = env_float("FACEAUTH_WEBHOOK_TIMEOUT_SECONDS", 5.0)
FACEAUTH_WEBHOOK_MAX_ATTEMPTS = env_int("FACEAUTH_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
FACEAUTH_WEBHOOK_BACKOFF_SECONDS = env_float("FACEAUTH_WEBHOOK_BACKOFF_SECONDS", 2.0)
FACEAUTH_WEBHOOK_BACKOFF_MAX_SECONDS = env_float("FACEAUTH_WEBHOOK_BACKOFF_MAX_SECONDS", 600.0)
FACEAUTH_WEBHOOK_POLL_SECONDS = env_float("FACEAUTH_WEBHOOK_POLL_SECONDS", 1.0)
# Webhook URLs on loopback or private networks (SSRF): allowed in development only.
FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS", DEBUG)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"redact_tokens": {"()": "auth_service.logging.RedactSessionTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Daphne's access lines (one per request / WebSocket event), once, tokens redacted.
        "django.channels.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "auth_service": {
            "handlers": ["console"],
            "level": env_str("FACEAUTH_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}
