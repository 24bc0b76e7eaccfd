"""A logging filter that keeps credentials out of every log line."""

import logging
import re

# token=... in a query string, and Bearer credentials in any echoed header.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)([?&](?:token|access_token|api_key)=)[^&\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"mcp_[A-Za-z0-9_-]{20,}"), "mcp_[redacted]"),
)


def redact(text: str) -> str:
    """Return `text` with query-string tokens, bearer credentials and raw API tokens masked."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites each record's final message with secrets masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the formatted message (and its arguments) of `record`."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
