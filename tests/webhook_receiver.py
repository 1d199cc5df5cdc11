"""A webhook receiver for the tests: a real HTTP server on a free loopback port that checks
every delivery's signature with the client guide's Python code (docs/websocket-guide.md,
section 12) and answers with the status the test chooses."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "websocket-guide.md"


def guide_code(language: str, marker: str) -> str:
    """The code block of the client guide in ``language`` that contains ``marker``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def _guide_verifier() -> Callable[..., bool]:
    namespace: dict = {}
    exec(guide_code("python", "def verify_faceauth_webhook"), namespace)
    return namespace["verify_faceauth_webhook"]


# The receiver checks signatures with the guide's own Python code, so the guide is tested.
verify_signature = _guide_verifier()


class Receiver:
    """Answers each POST with the next of ``statuses`` (the last one repeats; assign
    ``statuses`` to change course) and records what it got."""

    def __init__(self, secret: str, statuses: list[int]) -> None:
        self.secret = secret
        self.statuses = list(statuses)
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    statuses = receiver.statuses
                    status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
                    receiver.received.append(
                        {"headers": dict(self.headers), "body": body, "status": status,
                         "verified": verify_signature(receiver.secret, self.headers, body)}
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict]:
        """The deliveries answered with 2xx."""
        with self.lock:
            return [r for r in self.received if 200 <= r["status"] < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
