"""Cryptography of FaceAuth.

1. Results for API clients (the seed's format, decryptable by its Python and CryptoJS code):
   encrypted_payload = base64(IV(16) || AES-256-CBC(key=SHA-256(secret_key), PKCS7(json)))
   hmac = hex HMAC-SHA256(key=SHA-256(b"faceauth-hmac:" + secret_key), encrypted_payload)
   CBC alone is malleable, so clients should check the tag before trusting the payload.
2. Server keys: client secrets are stored encrypted at rest (Fernet) under
   FACEAUTH_ENCRYPTION_KEY, or under a key derived from SECRET_KEY when that is unset.
   Other server keys (JWT signing) are derived from SECRET_KEY per purpose (HKDF)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ALGORITHM = "AES-256-CBC"
HMAC_ALGORITHM = "HMAC-SHA256"
_HMAC_CONTEXT = b"faceauth-hmac:"


# --- results, in the seed's format ---
def result_key(secret_key: str) -> bytes:
    """The AES-256 key of a client's results: SHA-256 of its secret (the seed's derivation)."""
    return hashlib.sha256(secret_key.encode("utf-8")).digest()


def result_hmac(encrypted_payload: str, secret_key: str) -> str:
    """Hex HMAC-SHA256 over the base64 payload text, keyed apart from the AES key."""
    key = hashlib.sha256(_HMAC_CONTEXT + secret_key.encode("utf-8")).digest()
    return hmac.new(key, encrypted_payload.encode("ascii"), hashlib.sha256).hexdigest()


def encrypt_result(payload: dict[str, Any], secret_key: str) -> dict[str, str]:
    """Encrypts a JSON-ready payload for the client owning ``secret_key``.

    Returns the ``encrypted_data`` object of completion messages:
    {encrypted_payload, hmac, algorithm, hmac_algorithm}."""
    plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(result_key(secret_key)), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    encrypted_payload = base64.b64encode(iv + ciphertext).decode("ascii")
    return {
        "encrypted_payload": encrypted_payload,
        "hmac": result_hmac(encrypted_payload, secret_key),
        "algorithm": ALGORITHM,
        "hmac_algorithm": HMAC_ALGORITHM,
    }


def verify_result_hmac(encrypted_data: dict[str, str], secret_key: str) -> bool:
    """Constant-time check of the tag of an ``encrypted_data`` object."""
    expected = result_hmac(encrypted_data["encrypted_payload"], secret_key)
    return hmac.compare_digest(expected, str(encrypted_data.get("hmac", "")))


# --- server keys ---
def derive_key(purpose: str, length: int = 32) -> bytes:
    """A key for one purpose derived from SECRET_KEY (HKDF-SHA256), so purposes never share
    key material and the Django secret itself is never used directly."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=f"faceauth:{purpose}".encode()
    ).derive(settings.SECRET_KEY.encode("utf-8"))


def _at_rest_cipher() -> MultiFernet:
    configured = settings.FACEAUTH_ENCRYPTION_KEY
    if configured:
        try:
            keys = [Fernet(key.strip()) for key in configured.split(",") if key.strip()]
        except ValueError as exc:
            raise ImproperlyConfigured(
                "FACEAUTH_ENCRYPTION_KEY must be comma-separated Fernet keys (generate one with "
                "python -c \"from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())\")"
            ) from exc
    else:
        keys = [Fernet(base64.urlsafe_b64encode(derive_key("secrets-at-rest")))]
    return MultiFernet(keys)


def seal(plaintext: str) -> str:
    """Encrypts a secret for storage with the server key (the first key when rotating)."""
    return _at_rest_cipher().encrypt(plaintext.encode("utf-8")).decode("ascii")


def unseal(token: str) -> str:
    """Decrypts a stored secret; a wrong or missing server key is a configuration error."""
    try:
        return _at_rest_cipher().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored client secret cannot be decrypted: FACEAUTH_ENCRYPTION_KEY (or "
            "DJANGO_SECRET_KEY, when no encryption key is set) changed since it was stored."
        ) from exc
