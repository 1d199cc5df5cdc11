"""Wire formats shared by the REST API, the WebSocket messages and encrypted payloads."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with millisecond precision and a Z suffix (2025-10-27T12:34:56.789Z),
    the form the seed shows and JavaScript's Date parses."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
