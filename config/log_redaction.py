"""A logging filter that keeps credentials out of every log line, in any encoding a URL allows.

A client may percent-encode any character of a query string (`?%74oken=%6D%63%70…` is
`?token=mcp…` to the server), so redaction looks at decoded names and values: a query
parameter whose decoded name is a credential's is masked whatever its value, and any run of
URL characters that decodes (once or several times) to an API token is masked wherever it is.
"""

import logging
import re
from urllib.parse import unquote_plus

# Query parameter names (decoded, any case) whose values are credentials.
SECRET_PARAMETERS = frozenset(
    {"token", "access_token", "api_key", "apikey", "authorization", "password", "secret"}
)
REDACTED = "[redacted]"
# Decoding rounds for values: a doubly encoded token is still a token to whoever reads the log.
_DECODE_ROUNDS = 3

_TOKEN = re.compile(r"mcp_[A-Za-z0-9_-]{20,}")
_BEARER = re.compile(r"(?i)(bearer(?:\s|%20|\+)+)[A-Za-z0-9._~+/=%-]+")
# A query string: after "?", up to whitespace, a quote or a bracket (how log lines end a URL).
_QUERY = re.compile(r"\?([^\s\"'<>\[\]]+)")
# A run of the characters a URL can carry a token in, escapes included; one character class, so
# matching stays linear however long the line.
_URL_RUN = re.compile(r"[A-Za-z0-9_.~+%-]{24,}")
# Lines with none of these cannot hold a secret: most lines skip every pattern.
_MARKERS = ("?", "%", "mcp_", "earer", "EARER")


def _decoded(text: str) -> str:
    """`text` percent-decoded until it no longer changes (a few rounds at most)."""
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _redact_query(match: re.Match[str]) -> str:
    pieces = re.split(r"([&;])", match.group(1))
    for index, piece in enumerate(pieces):
        name, equals, _value = piece.partition("=")
        if equals and _decoded(name).strip().lower() in SECRET_PARAMETERS:
            pieces[index] = f"{name}={REDACTED}"
    return "?" + "".join(pieces)


def _redact_encoded_token(match: re.Match[str]) -> str:
    run = match.group(0)
    if "%" not in run and "+" not in run:
        return run  # a plain token is _TOKEN's
    return REDACTED if _TOKEN.search(_decoded(run)) else run


def redact(text: str) -> str:
    """Return `text` with query-string credentials, bearer credentials and API tokens masked,
    whether written plainly or percent-encoded."""
    if not any(marker in text for marker in _MARKERS):
        return text
    if "?" in text:
        text = _QUERY.sub(_redact_query, text)
    if "%" in text:
        text = _URL_RUN.sub(_redact_encoded_token, text)
    text = _TOKEN.sub("mcp_" + REDACTED, text)
    return _BEARER.sub(r"\1" + REDACTED, text)


_TRACEBACKS = logging.Formatter()


class RedactSecretsFilter(logging.Filter):
    """Rewrites each record's final message and traceback with secrets masked; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the formatted message (and its arguments) and traceback of `record`."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set, so the masked traceback is the one written.
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
