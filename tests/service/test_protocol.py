from __future__ import annotations

import json

import pytest

from auth_service.errors import InvalidMessage, MessageTooLarge, error_catalogue
from auth_service.protocol import parse_client_message


def parse(text=None, data=None, max_bytes=1000):
    return parse_client_message(text, data, max_bytes=max_bytes)


def test_frames_as_data_url_bare_base64_and_binary():
    assert parse(json.dumps({"type": "frame", "image": "data:image/png;base64,AAAA"})).image == (
        "data:image/png;base64,AAAA"
    )
    assert parse(json.dumps({"type": "frame", "image": "/9j/AAAA"})).image == "/9j/AAAA"
    assert parse(data=b"\xff\xd8\xff").image == b"\xff\xd8\xff"
    assert parse(json.dumps({"type": "ping"})).type == "ping"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        json.dumps({"type": "hello"}),
        json.dumps({"image": "abc"}),
        json.dumps({"type": "frame"}),
        json.dumps({"type": "frame", "image": ""}),
        json.dumps({"type": "frame", "image": 42}),
    ],
)
def test_malformed_messages_are_refused_with_a_clear_code(text):
    with pytest.raises(InvalidMessage) as caught:
        parse(text)
    assert caught.value.code == "invalid_message" and not caught.value.fatal


def test_empty_binary_message_is_refused():
    with pytest.raises(InvalidMessage):
        parse(data=b"")


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_oversized_messages_are_refused(kind):
    with pytest.raises(MessageTooLarge):
        if kind == "text":
            parse(json.dumps({"type": "frame", "image": "A" * 2000}))
        else:
            parse(data=b"\xff" * 2000)


def test_error_codes_and_close_codes_are_unique_and_4xxx():
    catalogue = error_catalogue()
    codes = [entry["code"] for entry in catalogue]
    assert len(codes) == len(set(codes))
    assert all(4000 <= entry["close_code"] < 5000 for entry in catalogue)
    fatal = {e["code"]: e["close_code"] for e in catalogue if e["fatal"]}
    assert fatal["session_not_found"] == 4004 and fatal["session_expired"] == 4008
    assert fatal["session_closed"] == 4009
