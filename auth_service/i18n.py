"""The end user's own language: every message a person sees goes through Django's
translation machinery (English is the source; auth_service/locale holds the catalogues).

A session's language is fixed at creation (``session_language``): ``metadata.language``,
else the API client's ``default_language``, else FACEAUTH_DEFAULT_LANGUAGE. Machine codes
(``code``, ``reason``, ``failure``, challenge codes) never change.

The engine (face_engine/) is Django-free and writes its hints in English; they are
translated here, when a message of a session is built, under ``translation.override``.
``ENGINE_MESSAGES`` lists every one of them with gettext_noop so that makemessages keeps
them in the catalogue; tests/service/test_i18n.py fails when the engine can emit a message
that is missing here or has no translation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_noop

from auth_service.errors import FaceAuthError, FrameRejected

SOURCE_LANGUAGE = "en"

# face_engine.quality.HINTS, face_engine.liveness.HINT_*, face_engine.challenge (INSTRUCTIONS,
# FAILURE_HINTS, HINT_SETTLE): the same English text, word for word.
ENGINE_MESSAGES = (
    gettext_noop("no face found: look at the camera"),
    gettext_noop("only one face please"),
    gettext_noop("center your face in the frame"),
    gettext_noop("move closer"),
    gettext_noop("find better lighting"),
    gettext_noop("too much light: avoid direct light on your face"),
    gettext_noop("look straight at the camera"),
    gettext_noop("hold still"),
    gettext_noop("blink naturally"),
    gettext_noop("turn your head slightly"),
    gettext_noop("keep your face in view"),
    gettext_noop("the person changed: start again"),
    gettext_noop("a still image was detected: use a live camera"),
    gettext_noop("a photo or a screen was detected: show your own face to the camera"),
    gettext_noop("hold still for a moment"),
    gettext_noop("turn your head to the left"),
    gettext_noop("turn your head to the right"),
    gettext_noop("look up"),
    gettext_noop("look down"),
    gettext_noop("blink your eyes"),
    gettext_noop("the instruction was not followed in time: start again"),
    gettext_noop("that was not the movement asked for: start again"),
)

# The engine's image errors carry technical English details (byte counts, header names);
# other languages get one translated sentence per code instead.
IMAGE_ERROR_MESSAGES = {
    "invalid_image": gettext_noop("The frame is not a usable JPEG or PNG image."),
    "image_too_large": gettext_noop("The image is too large; send frames of about 640x480."),
    "unsupported_format": gettext_noop("This image format is not accepted; send JPEG or PNG."),
}


def supported_languages() -> tuple[str, ...]:
    return tuple(code for code, _ in settings.LANGUAGES)


def session_language(*, metadata: dict, client_default: str) -> str:
    """The language of a new session: metadata (validated by the API), else the client's
    default, else the server's."""
    return metadata.get("language") or client_default or settings.FACEAUTH_DEFAULT_LANGUAGE


@contextlib.contextmanager
def language(code: str | None) -> Iterator[None]:
    """Messages built inside are in ``code`` (the server's default when None)."""
    with translation.override(code or settings.FACEAUTH_DEFAULT_LANGUAGE):
        yield


def hint(text: str | None) -> str | None:
    """An engine hint in the active language (unknown text stays as it is)."""
    return gettext(text) if text else text


def quality(data: dict) -> dict:
    """Quality.as_dict() with its issue hints in the active language."""
    return {**data, "issues": [{**issue, "hint": hint(issue["hint"])} for issue in data["issues"]]}


def liveness(data: dict) -> dict:
    """A liveness state's as_dict() with the pending challenge's instruction translated."""
    challenge = data.get("challenge")
    if not challenge:
        return data
    return {**data, "challenge": {**challenge, "instruction": hint(challenge["instruction"])}}


def error_message(exc: FaceAuthError) -> str:
    """The error's message for people, in the active language. Messages marked for
    translation (lazy) are translated; a plain string (an engine's detail, a message nobody
    marked) stays English only in English sessions, others get the error's own summary."""
    message: Any = exc.message
    if isinstance(message, str) and translation.get_language() != SOURCE_LANGUAGE:
        if isinstance(exc, FrameRejected) and exc.code in IMAGE_ERROR_MESSAGES:
            return gettext(IMAGE_ERROR_MESSAGES[exc.code])
        message = type(exc).default_message
    return str(message)


def rendered(outcome: dict, code: str) -> dict:
    """A session outcome with its lazy texts (``detail``) rendered in ``code``: it is stored
    and encrypted as JSON, which takes strings only."""
    with language(code):
        return {key: str(value) if isinstance(value, Promise) else value for key, value in outcome.items()}
