"""What history keeps of a value: escapes where the database cannot hold it, caps by size."""

import orjson
import pytest

from mcp_server.history_values import (
    TRUNCATED,
    history_json,
    history_text,
    history_value,
    truncated_bytes,
)
from mcp_server.protocol.text_escapes import escape_text, escape_value


def test_nul_and_lone_surrogates_become_their_escape_text_and_nothing_else_changes() -> None:
    assert escape_text("a\u0000b\udc80c\ud800") == "a\\u0000b\\udc80c\\ud800"
    assert escape_text("plain ascii") == "plain ascii"
    assert escape_text("ünïcode 🎉 \\u0000 typed by hand") == "ünïcode 🎉 \\u0000 typed by hand"
    # Where only UTF-8 matters (the wire), U+0000 is kept: JSON carries it.
    assert escape_text("a\u0000\udc80", nul=False) == "a\u0000\\udc80"


def test_every_string_of_a_value_is_escaped_keys_too() -> None:
    value = {"k\u0000": ["\udcff", 1, 2.5, None, True, {"x": "y\u0000"}]}
    assert escape_value(value) == {"k\\u0000": ["\\udcff", 1, 2.5, None, True, {"x": "y\\u0000"}]}


def test_history_json_escapes_and_is_the_plain_encoding_otherwise() -> None:
    assert history_json({"a": [1, "é"]}, None) == orjson.dumps({"a": [1, "é"]}).decode()
    assert orjson.loads(history_json({"p": "a\u0000b"}, None)) == {"p": "a\\u0000b"}
    assert orjson.loads(history_json({"p": "name-\udc80.png"}, None)) == {"p": "name-\\udc80.png"}
    # A hand-typed backslash-u0000 is not a NUL: kept as it is.
    assert orjson.loads(history_json({"p": "\\u0000"}, None)) == {"p": "\\u0000"}


def test_a_value_over_its_cap_becomes_a_preview_with_its_original_size() -> None:
    value = {"text": "x" * 100_000}
    stored = orjson.loads(history_json(value, 65_536))
    original = len(orjson.dumps(value))
    assert stored[TRUNCATED] is True
    assert stored["original_bytes"] == original
    assert stored["preview"].startswith('{"text":"xxx')
    assert len(history_json(value, 65_536)) < 4096
    assert truncated_bytes(stored) == original
    assert truncated_bytes(value) is None
    assert truncated_bytes({"content": []}) is None


def test_history_value_returns_the_value_itself_when_nothing_changes() -> None:
    value = {"a": 1}
    assert history_value(value, 1000) is value
    assert history_value(None, 1000) is None
    assert history_value({"a": "\u0000"}, 1000) == {"a": "\\u0000"}


def test_history_text_escapes_then_cuts_to_the_column_and_to_the_byte_cap() -> None:
    assert history_text("\u0000" * 200, max_chars=128) == ("\\u0000" * 22)[:128]
    long = "é" * 50_000  # 100,000 bytes
    cut = history_text(long, max_bytes=1000)
    assert cut.endswith(" … [truncated: 100000 bytes]")
    assert len(cut.encode()) <= 1000
    assert history_text("short", max_bytes=1000) == "short"


def test_a_value_json_cannot_hold_at_all_still_raises() -> None:
    with pytest.raises(TypeError):
        history_json({"x": object()}, None)
