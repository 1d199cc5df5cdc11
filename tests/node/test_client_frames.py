"""demo_assets/faceauth-client.js under Node with a fake WebSocket and a fake camera: frames go
as binary messages of raw JPEG bytes by default, as the quick start's data URL JSON with
frameFormat 'dataUrl'; createEnrollment / createAuthentication put `language` in metadata.

Needs node only (no npm packages: the module loads CryptoJS only to decrypt)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent

# Streams three frames through FaceAuthStream and prints what the fake socket was sent.
_STREAM = """
const FaceAuth = require('../../demo_assets/faceauth-client.js');
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
const sent = [];
class FakeSocket {
  constructor(url) {
    this.readyState = 1;
    setTimeout(() => {
      this.onopen();
      this.onmessage({ data: JSON.stringify({ type: 'connection_established',
        limits: { max_fps: 100, min_frame_interval_ms: 10, max_frames: 3, max_message_bytes: 100000 } }) });
    }, 0);
  }
  send(data) {
    sent.push(data);
    // Answer each frame, as the server does.
    setTimeout(() => this.onmessage({ data: JSON.stringify({ type: 'frame_processed', hint: 'x' }) }), 1);
  }
  close() {}
}
const options = JSON.parse(process.argv[1]);
const stream = new FaceAuth.FaceAuthStream('ws://test/', null,
  Object.assign({ WebSocket: FakeSocket }, options));
const events = [];
stream.on('frame_sent', (e) => events.push(e));
stream.start().catch(() => {});
// No DOM under Node: a camera that always has a picture.
stream._grabber = {
  ready: () => true,
  grab: () => 'data:image/jpeg;base64,' + JPEG.toString('base64'),
  grabBlob: () => Promise.resolve(new Blob([JPEG], { type: 'image/jpeg' })),
};
setTimeout(async () => {
  const out = [];
  for (const data of sent) {
    if (typeof data === 'string') out.push({ kind: 'text', value: JSON.parse(data) });
    else {
      const bytes = Buffer.from(await data.arrayBuffer());
      out.push({ kind: data.constructor.name, value: bytes.toString('hex') });
    }
  }
  console.log(JSON.stringify({ sent: out, events }));
  process.exit(0);
}, 500);
"""

_METADATA = """
const FaceAuth = require('../../demo_assets/faceauth-client.js');
const bodies = [];
const fetch = async (url, init) => {
  bodies.push([url, JSON.parse(init.body)]);
  return { ok: true, status: 201, text: async () => '{}' };
};
const client = new FaceAuth.FaceAuthClient('http://test', { token: 't', fetch });
(async () => {
  await client.createEnrollment('u1', { language: 'id', liveness: 'active' });
  await client.createAuthentication(null, { language: 'id' });
  await client.createAuthentication('u1');
  console.log(JSON.stringify(bodies));
})();
"""


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/test.sh installs Debian's nodejs)")
    return node


def run_node(node: str, script: str, *args: str) -> object:
    completed = subprocess.run(
        [node, "-e", script, *args], capture_output=True, text=True, timeout=60, check=False, cwd=NODE_DIR
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_frames_are_binary_jpeg_by_default(node: str) -> None:
    out = run_node(node, _STREAM, "{}")
    assert [message["kind"] for message in out["sent"]] == ["Blob"] * 3
    assert {message["value"] for message in out["sent"]} == {"ffd8ffe0010203ffd9"}
    assert [event["format"] for event in out["events"]] == ["binary"] * 3
    assert [event["bytes"] for event in out["events"]] == [9] * 3


def test_data_urls_remain_selectable(node: str) -> None:
    out = run_node(node, _STREAM, json.dumps({"frameFormat": "dataUrl"}))
    assert [message["kind"] for message in out["sent"]] == ["text"] * 3
    assert out["sent"][0]["value"] == {"type": "frame", "image": "data:image/jpeg;base64,/9j/4AECA//Z"}
    assert out["events"][0]["format"] == "dataUrl"


def test_language_goes_into_the_session_metadata(node: str) -> None:
    bodies = run_node(node, _METADATA)
    assert bodies == [
        ["http://test/api/auth/enrollment/",
         {"user_id": "u1", "metadata": {"liveness": "active", "language": "id"}}],
        ["http://test/api/auth/authentication/", {"metadata": {"language": "id"}}],
        ["http://test/api/auth/authentication/", {"user_id": "u1"}],
    ]
