"""The quick start's CryptoJS decryptResponse, run under Node with the crypto-js npm package,
decrypts what the server's encrypt_result produces; so does the demo's client module, which
also checks the HMAC tag and refuses a wrong secret.

Needs node and tests/node/node_modules (scripts/test.sh runs `npm ci` there; this test runs it
too when npm is available)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from auth_service.services.crypto import encrypt_result

NODE_DIR = Path(__file__).resolve().parent
SCRIPT = NODE_DIR / "decrypt.js"


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/test.sh installs Debian's nodejs)")
    if not (NODE_DIR / "node_modules" / "crypto-js").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("tests/node/node_modules is missing and npm is absent: run `npm ci` there")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True,
            timeout=300,
        )
    return node


def decrypt_in_node(node: str, encrypted_data: dict, secret_key: str) -> dict:
    completed = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps({"encrypted_data": encrypted_data, "secret_key": secret_key}),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


ENROLLMENT = {
    "id": "3f1c2a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f",
    "timestamp": "2025-10-27T12:34:56.789Z",
    "type": "enrollment",
    "success": True,
    "session_id": "0b9d8c7e-6f5a-4b3c-2d1e-0f9a8b7c6d5e",
    "enrollment_id": "3f1c2a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f",
    "user_id": "user123",
    "samples": 5,
}
AUTHENTICATION = {
    "id": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
    "timestamp": "2025-10-27T12:40:00.000Z",
    "type": "authentication",
    "success": True,
    "session_id": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
    "mode": "verification",
    # Non-ASCII on purpose: the server writes UTF-8 JSON and CryptoJS must read it as UTF-8.
    "user_id": "józef-ünïcödé-用户-🙂",
    "similarity": 0.8123,
    "threshold": 0.363,
    "liveness": {"is_live": True, "blinks": 2, "head_movement": True},
}


@pytest.mark.parametrize(
    ("payload", "secret_key"),
    [
        (ENROLLMENT, "sk_live_4b7f0c2e9a1d8e6f"),
        (AUTHENTICATION, "päss-wörd 🔑 with spaces"),
        # Plaintext lengths of 15, 16 and 17 bytes cover the PKCS7 block boundary.
        ({"a": "123456789"}, "k"),
        ({"a": "1234567890"}, "k"),
        ({"a": "12345678901"}, "k"),
    ],
    ids=["enrollment", "authentication-unicode", "pad-15", "pad-16", "pad-17"],
)
def test_node_cryptojs_decrypts_server_payload(node: str, payload: dict, secret_key: str) -> None:
    encrypted_data = encrypt_result(payload, secret_key)

    out = decrypt_in_node(node, encrypted_data, secret_key)

    assert out["seed"] == payload          # the quick start's function, verbatim
    assert out["client"] == payload        # demo_assets/faceauth-client.js
    assert out["hmac_verified"] is True
    assert out["wrong_key_error"] == "hmac_mismatch"


def test_client_module_rejects_a_tampered_payload(node: str) -> None:
    encrypted_data = encrypt_result(ENROLLMENT, "secret")
    # Flip one base64 character of the ciphertext: CBC would decrypt garbage; the tag catches it.
    payload = encrypted_data["encrypted_payload"]
    index = len(payload) // 2
    flipped = "A" if payload[index] != "A" else "B"
    tampered = dict(encrypted_data, encrypted_payload=payload[:index] + flipped + payload[index + 1:])

    completed = subprocess.run(
        [node, "-e", _TAMPER_CHECK],
        input=json.dumps({"encrypted_data": tampered, "secret_key": "secret"}),
        capture_output=True, text=True, timeout=60, check=False, cwd=NODE_DIR,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "hmac_mismatch"


_TAMPER_CHECK = """
globalThis.CryptoJS = require('crypto-js');
const FaceAuth = require('../../demo_assets/faceauth-client.js');
let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  const { encrypted_data, secret_key } = JSON.parse(input);
  try { FaceAuth.decryptResult(encrypted_data, secret_key); console.log('accepted'); }
  catch (e) { console.log(e.code); }
});
"""


def test_vendored_cryptojs_is_the_pinned_npm_release(node: str) -> None:
    """demo_assets/crypto-js.js is the npm package's file, byte for byte, at the version
    tests/node pins (and demo_assets/README.md records)."""
    installed = NODE_DIR / "node_modules" / "crypto-js"
    version = json.loads((installed / "package.json").read_text())["version"]
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["crypto-js"]
    vendored = NODE_DIR.parents[1] / "demo_assets"

    assert version == pinned == "4.2.0"
    assert (vendored / "crypto-js.js").read_bytes() == (installed / "crypto-js.js").read_bytes()
    assert (vendored / "crypto-js.LICENSE").read_bytes() == (installed / "LICENSE").read_bytes()
    assert f"**{version}**" in (vendored / "README.md").read_text()


def test_client_close_codes_mirror_the_server(node: str) -> None:
    """Every 4xxx close code the client module explains is the server's, with its code."""
    from auth_service.errors import error_catalogue

    completed = subprocess.run(
        [node, "-e", "globalThis.CryptoJS = require('crypto-js');"
         "process.stdout.write(JSON.stringify(require('../../demo_assets/faceauth-client.js').CLOSE_CODES))"],
        capture_output=True, text=True, timeout=60, check=False, cwd=NODE_DIR,
    )
    assert completed.returncode == 0, completed.stderr
    client_codes = {int(k): v["code"] for k, v in json.loads(completed.stdout).items() if int(k) >= 4000}
    server = {(e["close_code"], e["code"]) for e in error_catalogue() if e["fatal"]}

    assert client_codes
    for close_code, code in client_codes.items():
        assert (close_code, code) in server, f"{close_code} {code} is not a fatal server error"
