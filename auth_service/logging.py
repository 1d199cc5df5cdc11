"""Logging helpers: session tokens are credentials and must not land in server logs."""

from __future__ import annotations

import logging
import re

_TOKEN_IN_PATH = re.compile(r"(/ws/auth/process-image/)[^/\s]+")


def redact_tokens(text: str) -> str:
    return _TOKEN_IN_PATH.sub(r"\1<token>", text)


class RedactSessionTokens(logging.Filter):
    """Replaces the session token in logged WebSocket paths (Daphne's access lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict) and isinstance(record.args.get("path"), str):
            record.args = {**record.args, "path": redact_tokens(record.args["path"])}
        elif isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        return True
