"""The client guide's webhook verification code, in both languages, accepts what the
server signs and refuses a changed body, a wrong secret and an old timestamp. The Python
function is the one the test receiver uses (tests/webhook_receiver.py); the JavaScript one
runs under Node exactly as printed in the guide."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid

import pytest

from auth_service.services.webhooks import signed_headers
from tests.webhook_receiver import guide_code, verify_signature

SECRET = "whsec_guide_test_secret_123"
BODY = json.dumps({"id": "x", "event": "session.completed", "data": {"é": "ü"}}).encode()


def cases() -> list[tuple[str, str, dict, bytes, bool]]:
    now = int(time.time())
    good = signed_headers(secret=SECRET, body=BODY, event="session.completed",
                          delivery_id=uuid.uuid4(), timestamp=now)
    old = signed_headers(secret=SECRET, body=BODY, event="session.completed",
                         delivery_id=uuid.uuid4(), timestamp=now - 3600)
    return [
        ("signed", SECRET, good, BODY, True),
        ("changed body", SECRET, good, BODY.replace(b"completed", b"failed"), False),
        ("wrong secret", "whsec_another_secret_456", good, BODY, False),
        ("an hour old", SECRET, old, BODY, False),
        ("no signature", SECRET, {k: v for k, v in good.items() if "Signature" not in k}, BODY, False),
    ]


def test_the_python_verification():
    # Signed now, not at collection time: the suite may run long after collecting.
    for name, secret, headers, body, valid in cases():
        assert verify_signature(secret, headers, body) is valid, name


def test_the_javascript_verification(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/test.sh installs Debian's nodejs)")
    script = tmp_path / "verify.js"
    script.write_text(guide_code("javascript", "function verifyFaceAuthWebhook") + """
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(c => verifyFaceAuthWebhook(
  c.secret, c.headers, Buffer.from(c.body, "base64")))));
""")
    payload = [
        {"secret": secret, "body": base64.b64encode(body).decode(),
         # Node's HTTP server hands over header names in lower case.
         "headers": {k.lower(): v for k, v in headers.items()}}
        for _, secret, headers, body, _ in cases()
    ]
    completed = subprocess.run([node, str(script)], input=json.dumps(payload), capture_output=True,
                               text=True, timeout=60, check=True)
    assert json.loads(completed.stdout) == [valid for *_, valid in cases()]
