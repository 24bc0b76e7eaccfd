"""Where a session is in the MCP lifecycle: awaiting its initialize (unless each request
describes itself, 2026-07-28), ready, closed."""

import enum


class SessionState(enum.Enum):
    """Where a session is in the MCP lifecycle."""

    AWAITING_INITIALIZE = "awaiting_initialize"
    READY = "ready"
    CLOSED = "closed"
