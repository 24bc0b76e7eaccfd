"""MCP logging levels (RFC 5424 order) and their comparison."""

from mcp_server.protocol.errors import invalid_params

LOG_LEVELS: tuple[str, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
_RANK = {name: index for index, name in enumerate(LOG_LEVELS)}
DEFAULT_LEVEL = "info"
# Above every level: no message passes (a 2026-07-28 request that asked for none).
SILENT_RANK = len(LOG_LEVELS)


def level_rank(level: str) -> int:
    """The severity of a level name; raises -32602 for a name that is not a level."""
    try:
        return _RANK[level]
    except (KeyError, TypeError):
        raise invalid_params(
            f"Unknown logging level {level!r}; expected one of {', '.join(LOG_LEVELS)}"
        ) from None


def request_log_rank(level: str | None) -> int:
    """The threshold of a 2026-07-28 request: its `logLevel`'s rank, or (none asked for, the
    spec's "MUST NOT send") SILENT_RANK."""
    return SILENT_RANK if level is None else level_rank(level)
