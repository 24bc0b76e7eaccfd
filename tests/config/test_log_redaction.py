"""Redaction of credentials in log lines, plain or percent-encoded, and in tracebacks."""

import io
import logging
from urllib.parse import quote, unquote

import pytest

from config.log_redaction import RedactSecretsFilter, redact

TOKEN = "mcp_" + "Ab3_-x" * 8
SECRET_PART = TOKEN.removeprefix("mcp_")


def encoded(text: str) -> str:
    """Every byte of `text` percent-encoded, as a hostile client may send it."""
    return "".join(f"%{byte:02X}" for byte in text.encode())


def fully_decoded(text: str) -> str:
    for _ in range(5):
        text = unquote(text)
    return text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f'"WebSocket /mcp?token={TOKEN}" [accepted]',
            '"WebSocket /mcp?token=[redacted]" [accepted]',
        ),
        (
            f'"WebSocket /mcp?%74oken={encoded(TOKEN)}" [accepted]',
            '"WebSocket /mcp?%74oken=[redacted]" [accepted]',
        ),
        (f'"GET /api/runs/?TOKEN={TOKEN}&page_size=2 HTTP/1.1" 200', None),
        (
            '"GET /x?a=1&%2574oken=short HTTP/1.1" 400',
            '"GET /x?a=1&%2574oken=[redacted] HTTP/1.1" 400',
        ),
        ('"GET /x?Access_Token=abc;api_key=def HTTP/1.1"', None),
        (f'"GET /x?q={quote(encoded(TOKEN))} HTTP/1.1" 401', '"GET /x?q=[redacted] HTTP/1.1" 401'),
        (
            f'"GET /x/{encoded(TOKEN[:20])}{TOKEN[20:]} HTTP/1.1" 404',
            '"GET /x/[redacted] HTTP/1.1" 404',
        ),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]"),
        (f"raw {TOKEN} in a message", "raw mcp_[redacted] in a message"),
    ],
)
def test_credentials_are_masked_in_every_encoding(line: str, expected: str | None) -> None:
    cleaned = redact(line)
    assert SECRET_PART not in fully_decoded(cleaned)
    assert "abc" not in cleaned and "short" not in cleaned
    if expected is not None:
        assert cleaned == expected


@pytest.mark.parametrize(
    "line",
    [
        '"GET /api/runs/?page_size=2&ordering=-created HTTP/1.1" 200',
        "plain line at 100% cpu",
        "x" * 30 + "%41" + "y" * 30,
        '"GET /api/runs/?cursor=eyJvIjoiLWNyZWF0ZWQifQ%3D%3D HTTP/1.1" 200',
    ],
)
def test_lines_without_credentials_are_kept(line: str) -> None:
    assert redact(line) == line


def test_a_long_line_is_redacted() -> None:
    # A pattern that backtracks would take hours here (the suite's timeout ends it).
    line = "a" * 2_000_000 + "%" + "?x=" + "b" * 1_000_000
    assert redact(line) == line


def test_tracebacks_are_redacted_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"bad request /mcp?%74oken={encoded(TOKEN)}")
        except ValueError:
            logger.exception("failed for %s", TOKEN)
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "ValueError" in written and "[redacted]" in written
    assert SECRET_PART not in fully_decoded(written)
