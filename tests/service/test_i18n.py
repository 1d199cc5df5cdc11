"""The end user's own language (auth_service.i18n): the catalogue covers every English message
the engine can emit, the committed .mo is the compiled .po, a session's language comes from
metadata > client default > setting, and an Indonesian session gets Indonesian messages with
English codes, over the WebSocket and in the status endpoint."""

from __future__ import annotations

import ast
import gettext
import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.utils import translation

import face_engine
from auth_service import i18n, protocol
from auth_service.errors import FrameRejected, InvalidMessage, SessionExpired
from auth_service.models import ApiClient, AuthSession
from auth_service.services import sessions

from .conftest import bearer
from .test_consumers import closed_with, connect, data_url, run

LOCALE = Path(i18n.__file__).parent / "locale"
PO = LOCALE / "id" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
INDONESIAN = {"kedipkan mata secara alami", "tolehkan kepala sedikit", "dekatkan wajah Anda",
              "pastikan wajah Anda tetap terlihat", "tetap diam sambil melihat ke kamera",
              "lihat lurus ke kamera", "terdeteksi gambar diam: gunakan kamera langsung"}


# --- the catalogue ---
def engine_messages() -> dict[str, str]:
    """Every English text the engine's runtime modules hold for people, by where it is:
    module constants HINT_*, and the values of dicts named HINTS, *_HINTS or INSTRUCTIONS.
    A new hint added in one of these forms is found without touching this test."""
    found: dict[str, str] = {}
    for info in pkgutil.walk_packages(face_engine.__path__, "face_engine."):
        if info.name.startswith("face_engine.evaluation") or info.name.endswith(("__main__", ".cli")):
            continue  # the measuring tools and the CLI speak to engineers, not end users
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.startswith("HINT_") and isinstance(value, str):
                found[value] = f"{info.name}.{name}"
            elif (name in ("HINTS", "INSTRUCTIONS") or name.endswith("_HINTS")) and isinstance(value, dict):
                texts = [text for text in value.values() if isinstance(text, str)]
                found.update(dict.fromkeys(texts, f"{info.name}.{name}"))
    return found


def test_the_engine_message_finder_finds_the_known_ones():
    found = engine_messages()
    for text in ("blink naturally", "move closer", "turn your head to the left", "hold still",
                 "the instruction was not followed in time: start again", "look straight at the camera"):
        assert text in found
    assert len(found) >= 19


@pytest.mark.parametrize("text", sorted(engine_messages()))
def test_every_engine_message_is_listed_and_has_an_indonesian_translation(text):
    where = engine_messages()[text]
    assert text in i18n.ENGINE_MESSAGES, (
        f"{where} ({text!r}) is not in auth_service.i18n.ENGINE_MESSAGES: add it there with "
        "gettext_noop, run makemessages -l id, translate it in django.po and compilemessages"
    )
    with translation.override("id"):
        translated = i18n.hint(text)
    assert translated and translated != text, f"{where} ({text!r}) has no Indonesian translation"


def read_po(path: Path) -> dict[str, tuple[str, bool]]:
    """msgid -> (msgstr, fuzzy) of a .po file without plurals or contexts (ours has none)."""
    entries: dict[str, tuple[str, bool]] = {}
    fuzzy, field, parts = False, None, {"msgid": [], "msgstr": []}

    def flush() -> None:
        nonlocal fuzzy
        if parts["msgid"] or parts["msgstr"]:
            entries["".join(parts["msgid"])] = ("".join(parts["msgstr"]), fuzzy)
        parts["msgid"], parts["msgstr"], fuzzy = [], [], False

    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        elif line.startswith("msgid "):
            flush()
            field, rest = "msgid", line[6:]
            parts[field].append(ast.literal_eval(rest))
        elif line.startswith("msgstr "):
            field = "msgstr"
            parts[field].append(ast.literal_eval(line[7:]))
        elif line.startswith('"') and field:
            parts[field].append(ast.literal_eval(line))
        elif line.startswith(("msgctxt", "msgid_plural")):
            raise AssertionError(f"read_po does not handle {line.split()[0]}; extend it")
    flush()
    return entries


def test_every_message_of_the_catalogue_is_translated():
    entries = read_po(PO)
    untranslated = [msgid for msgid, (msgstr, fuzzy) in entries.items() if msgid and (not msgstr or fuzzy)]
    assert not untranslated


def test_translations_keep_their_placeholders():
    placeholder = re.compile(r"\{\w+\}|%\(\w+\)s")
    for msgid, (msgstr, _fuzzy) in read_po(PO).items():
        assert sorted(placeholder.findall(msgid)) == sorted(placeholder.findall(msgstr)), msgid


def test_the_committed_mo_is_the_compiled_po():
    """The runtime reads the .mo (no GNU gettext needed): it must say what the .po says.
    After editing django.po run `cd auth_service && ../manage.py compilemessages`."""
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    catalogue = {k: v for k, v in compiled._catalog.items() if k}  # "" is the header
    entries = read_po(PO).items()
    source = {msgid: msgstr for msgid, (msgstr, fuzzy) in entries if msgid and msgstr and not fuzzy}
    assert catalogue == source


def test_the_catalogue_holds_every_marked_message():
    """Each gettext_noop / gettext_lazy text of i18n, protocol and errors is in the .po (so
    makemessages was run after the last change)."""
    entries = read_po(PO)
    for text in [*i18n.ENGINE_MESSAGES, *i18n.IMAGE_ERROR_MESSAGES.values(), protocol.HINT_HOLD_STILL]:
        assert text in entries, text
    assert str(InvalidMessage.default_message) in entries


# --- translation of a session's messages ---
def test_hints_quality_and_challenges_in_indonesian_codes_unchanged():
    with translation.override("id"):
        assert i18n.hint("blink naturally") == "kedipkan mata secara alami"
        assert i18n.hint("move closer") == "dekatkan wajah Anda"
        assert i18n.hint(None) is None
        quality = i18n.quality({"ok": False, "issues": [{"code": "too_small", "hint": "move closer"}]})
        live = i18n.liveness({"is_live": False, "failure": None, "challenge": {
            "code": "turn_left", "instruction": face_engine.challenge.INSTRUCTIONS["turn_left"]}})
    assert quality["issues"] == [{"code": "too_small", "hint": "dekatkan wajah Anda"}]
    assert live["challenge"] == {"code": "turn_left", "instruction": "tolehkan kepala ke kiri"}
    with translation.override("en"):
        assert i18n.hint("move closer") == "move closer"


def test_error_messages_follow_the_language_and_keep_their_code():
    english = protocol.error(SessionExpired(), language="en")
    indonesian = protocol.error(SessionExpired(), language="id")
    assert english["code"] == indonesian["code"] == "session_expired"
    assert english["message"] == "The session has expired; create a new one."
    assert indonesian["message"] == "Sesi sudah kedaluwarsa; buat sesi baru."
    # The engine's technical English detail stays in English sessions only.
    rejected = FrameRejected("JPEG data is truncated (no end-of-image marker)", code="invalid_image")
    assert protocol.error(rejected, language="en")["message"].startswith("JPEG data is truncated")
    assert protocol.error(rejected, language="id")["message"] == (
        "Gambar ini bukan JPEG atau PNG yang dapat dipakai."
    )
    too_large = protocol.parse_client_message
    with pytest.raises(Exception) as raised:
        too_large(None, b"x" * 20, max_bytes=10)
    assert protocol.error(raised.value, language="id")["message"] == "Pesan berukuran 20 byte; batasnya 10."


# --- which language a session gets ---
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("metadata", "client_default", "setting", "expected"),
    [
        ({"language": "id"}, "en", "en", "id"),  # metadata first
        ({"language": "en"}, "id", "id", "en"),
        ({}, "id", "en", "id"),  # then the client's default
        ({}, "", "id", "id"),  # then the setting
        ({}, "", "en", "en"),
    ],
)
def test_language_precedence_metadata_then_client_then_setting(
    api, credentials, settings, metadata, client_default, setting, expected
):
    settings.FACEAUTH_DEFAULT_LANGUAGE = setting
    ApiClient.objects.filter(pk=credentials.client.pk).update(default_language=client_default)
    response = api.post("/api/auth/enrollment/", {"user_id": "u1", "metadata": metadata}, format="json")
    assert response.status_code == 201, response.json()
    assert AuthSession.objects.get(pk=response.json()["session_id"]).language == expected


@pytest.mark.parametrize(("value", "accepted"), [("id", True), ("en", True), ("fr", False)])
def test_the_default_language_setting_is_validated(tmp_path, value, accepted):
    from .test_settings import settings_with

    result = settings_with(tmp_path, FACEAUTH_DEFAULT_LANGUAGE=value)
    assert (result.returncode == 0) is accepted, result.stderr
    if not accepted:
        assert "FACEAUTH_DEFAULT_LANGUAGE must be one of en, id" in result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["fr", "ID", "", 7, None])
def test_an_unsupported_language_is_a_clear_400(api, language):
    response = api.post(
        "/api/auth/enrollment/", {"user_id": "u1", "metadata": {"language": language}}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "language must be one of en, id" in error["message"]


@pytest.mark.django_db
def test_an_operator_sets_the_client_default_language_in_the_admin(admin_client, credentials):
    client = admin_client  # pytest-django's logged-in superuser
    page = f"/admin/auth_service/apiclient/{credentials.client.pk}/change/"
    form = client.get(page).content.decode()
    assert 'name="default_language"' in form and "Bahasa Indonesia" in form
    response = client.post(page, {"name": credentials.client.name, "is_active": "on",
                                  "default_match_level": "", "default_language": "id"})
    assert response.status_code == 302, response.content.decode()[:2000]
    credentials.client.refresh_from_db()
    assert credentials.client.default_language == "id"
    refused = client.post(page, {"name": credentials.client.name, "is_active": "on",
                                 "default_match_level": "", "default_language": "fr"})
    assert refused.status_code == 200  # the form comes back with the error
    credentials.client.refresh_from_db()
    assert credentials.client.default_language == "id"


@pytest.mark.django_db
def test_the_schema_describes_metadata_language(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for name in ("EnrollmentInputRequest", "AuthenticationInputRequest"):
        language = schema["components"]["schemas"][name]["properties"]["metadata"]["properties"]["language"]
        assert language["enum"] == ["en", "id"] and "default_language" in language["description"]


# --- a whole Indonesian session, over the WebSocket and the status endpoint ---
pytestmark_ws = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast(settings):
    settings.FACEAUTH_MAX_FPS = 1000
    settings.FACEAUTH_SAMPLE_INTERVAL_MS = 0


@pytestmark_ws
async def test_an_indonesian_session_gets_indonesian_hints_and_english_codes(credentials, faces_dir, fast):
    photo = (faces_dir / "obama" / "obama.jpg").read_bytes()
    created = await sync_to_async(sessions.enrollment_session_create)(
        client=credentials.client, user_id="budi", target_samples=3, metadata={"language": "id"}
    )
    communicator = await connect(created.token)
    hello = await communicator.receive_json_from()
    assert hello["message"].startswith("Terhubung; kirim gambar untuk pendaftaran wajah")
    assert hello["session_type"] == "enrollment" and hello["liveness"]["mode"] == "passive"

    # A bad message: Indonesian text, English code.
    await communicator.send_json_to({"type": "nonsense"})
    error = await communicator.receive_json_from()
    assert error["code"] == "invalid_message"
    assert error["message"].startswith("Jenis pesan 'nonsense' tidak dikenal")

    # A still photo: Indonesian hints until the engine calls it a still image.
    answers, done = await run(communicator, [photo] * 60)
    hints = {answer["hint"] for answer in answers}
    assert hints & INDONESIAN, hints
    assert not hints & {"blink naturally", "turn your head slightly", "hold still, looking at the camera"}
    assert all(set(answer["liveness"]["missing"]) <= {"blink", "head_movement"} for answer in answers)
    assert done["type"] == "enrollment_complete" and done["message"] == "Pendaftaran wajah gagal."
    assert done["reason"] == "liveness_failed"  # the code stays English
    assert done["detail"] == "terdeteksi gambar diam (gambar yang sama dikirim berulang kali)"
    assert await closed_with(communicator) == 1000

    # The status endpoint: the same detail, in the session's language.
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=await sync_to_async(bearer)(credentials))
    status = (await sync_to_async(client.get)(f"/api/auth/sessions/{created.session.id}/status/")).json()
    assert status["reason"] == "liveness_failed" and status["status"] == "failed"
    assert status["result"]["detail"] == done["detail"]

    # The used token is refused in the session's language too.
    again = await connect(created.token)
    refused = await again.receive_json_from()
    assert refused["code"] == "session_closed"
    assert refused["message"] == "Sesi sudah selesai; token sesi hanya dapat dipakai sekali."
    assert await closed_with(again) == 4009


@pytestmark_ws
async def test_an_english_session_stays_english(credentials, faces_dir, fast):
    photo = (faces_dir / "obama" / "obama.jpg").read_bytes()
    created = await sync_to_async(sessions.enrollment_session_create)(
        client=credentials.client, user_id="bob", target_samples=3
    )
    communicator = await connect(created.token)
    hello = await communicator.receive_json_from()
    assert hello["message"].startswith("Connected; send frames for enrollment")
    await communicator.send_json_to({"type": "frame", "image": data_url(photo)})
    answer = await communicator.receive_json_from(timeout=10)
    assert answer["hint"] in {"blink naturally", "turn your head slightly", "keep your face in view",
                              "move closer", "hold still, looking at the camera"}
    await communicator.disconnect()
