"""Results must decrypt with the seed's own Python function, unchanged, and with OpenSSL."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from auth_service.services import crypto

SECRET = "fas_example-secret-key"
PAYLOAD = {
    "id": "abc123",
    "timestamp": "2025-10-27T12:34:56.789Z",
    "success": True,
    "user_id": "user123",
    "note": "ünïcødé ✓",
}


# The client script carries the seed's decrypt function unchanged and none of the server's
# code: decrypting with it checks the format against an independent implementation.
from test_websocket_auth import decrypt_response  # noqa: E402


def test_seed_decrypt_function_reads_our_payload():
    encrypted = crypto.encrypt_result(PAYLOAD, SECRET)
    assert decrypt_response(encrypted["encrypted_payload"], SECRET) == PAYLOAD
    assert encrypted["algorithm"] == "AES-256-CBC"
    assert encrypted["hmac_algorithm"] == "HMAC-SHA256"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_openssl_command_line_decrypts_our_payload():
    raw = base64.b64decode(crypto.encrypt_result(PAYLOAD, SECRET)["encrypted_payload"])
    key = hashlib.sha256(SECRET.encode()).hexdigest()
    result = subprocess.run(
        ["openssl", "enc", "-d", "-aes-256-cbc", "-K", key, "-iv", raw[:16].hex()],
        input=raw[16:], capture_output=True, check=True,
    )
    assert json.loads(result.stdout.decode("utf-8")) == PAYLOAD


def test_every_result_has_a_fresh_iv():
    first = base64.b64decode(crypto.encrypt_result(PAYLOAD, SECRET)["encrypted_payload"])
    second = base64.b64decode(crypto.encrypt_result(PAYLOAD, SECRET)["encrypted_payload"])
    assert first[:16] != second[:16]
    assert len(first) % 16 == 0 and len(first) >= 32


def test_wrong_secret_does_not_decrypt():
    encrypted = crypto.encrypt_result(PAYLOAD, SECRET)
    with pytest.raises(ValueError):
        decrypt_response(encrypted["encrypted_payload"], SECRET + "x")


def test_hmac_matches_an_independent_computation_and_detects_tampering():
    import hmac

    encrypted = crypto.encrypt_result(PAYLOAD, SECRET)
    key = hashlib.sha256(b"faceauth-hmac:" + SECRET.encode()).digest()
    expected = hmac.new(key, encrypted["encrypted_payload"].encode(), hashlib.sha256).hexdigest()
    assert encrypted["hmac"] == expected
    assert crypto.verify_result_hmac(encrypted, SECRET)

    raw = bytearray(base64.b64decode(encrypted["encrypted_payload"]))
    raw[0] ^= 1  # flipping an IV bit changes the first plaintext block undetectably in CBC
    tampered = {**encrypted, "encrypted_payload": base64.b64encode(bytes(raw)).decode()}
    assert not crypto.verify_result_hmac(tampered, SECRET)
    assert not crypto.verify_result_hmac(encrypted, "another-secret")


def test_secrets_at_rest_round_trip_and_are_not_plaintext(settings):
    settings.FACEAUTH_ENCRYPTION_KEY = None
    sealed = crypto.seal("fas_topsecret")
    assert "topsecret" not in sealed
    assert crypto.unseal(sealed) == "fas_topsecret"


def test_encryption_key_rotation_keeps_old_secrets_readable(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FACEAUTH_ENCRYPTION_KEY = old
    sealed_with_old = crypto.seal("fas_a")
    settings.FACEAUTH_ENCRYPTION_KEY = f"{new},{old}"
    assert crypto.unseal(sealed_with_old) == "fas_a"
    assert Fernet(new.encode()).decrypt(crypto.seal("fas_b").encode()) == b"fas_b"


def test_a_changed_server_key_is_a_clear_configuration_error(settings):
    settings.FACEAUTH_ENCRYPTION_KEY = Fernet.generate_key().decode()
    sealed = crypto.seal("fas_a")
    settings.FACEAUTH_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(ImproperlyConfigured, match="FACEAUTH_ENCRYPTION_KEY"):
        crypto.unseal(sealed)


def test_malformed_encryption_key_is_a_clear_configuration_error(settings):
    settings.FACEAUTH_ENCRYPTION_KEY = "not-a-fernet-key"
    with pytest.raises(ImproperlyConfigured, match="Fernet"):
        crypto.seal("x")


def test_derived_keys_differ_per_purpose():
    assert crypto.derive_key("jwt") != crypto.derive_key("secrets-at-rest")
    assert len(crypto.derive_key("jwt")) == 32
