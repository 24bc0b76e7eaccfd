"""`LOG_FORMAT=json`: one JSON object per line (python-json-logger), secrets masked.

Each object has `time` (ISO 8601, UTC), `level`, `logger` and `message`, the ids of the log
context where known (`tenant`, `user`, `connection`, `request`, `operation`, `traceparent`),
any `extra` fields, and `exc_info` for a traceback. The message, tracebacks and every text
field go through the same redaction as plain lines (config.log_redaction).
"""

import logging
from types import TracebackType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from config.log_redaction import redact

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
# Masked already: the message and stack by RedactSecretsFilter (on the same handler), the
# traceback by formatException. Masking twice would mangle the marks.
_MASKED = frozenset({"message", "exc_info", "stack_info"})
# Added by uvicorn for its coloured console output: the message again, with escape codes.
_DROPPED = ("color_message",)


class JsonLineFormatter(JsonFormatter):
    """JSON lines with the service's field names and redaction."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            **kwargs,
        )

    def formatException(self, ei: ExcInfo) -> str:
        """The traceback, with secrets masked."""
        return redact(logging.Formatter.formatException(self, ei))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Mask secrets in the text fields not masked yet; drop uvicorn's coloured copy of the
        message."""
        for name in _DROPPED:
            log_data.pop(name, None)
        for key, value in log_data.items():
            if key not in _MASKED and isinstance(value, str):
                log_data[key] = redact(value)
        return log_data
