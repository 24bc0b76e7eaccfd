"""What history keeps of a value: the value itself, escaped where the database cannot hold it,
and beyond a size cap a preview with the original size.

Escaping follows the one rule of `mcp_server.protocol.text_escapes` (U+0000 and lone
surrogates become the text of their JSON escape), applied alike to arguments, request ids,
progress messages, errors, item errors and results, on SQLite and PostgreSQL. The check costs
next to nothing on the common path: the JSON is encoded anyway, orjson writes U+0000 as
`\\u0000` (so a byte search finds it) and refuses lone surrogates (so an exception does).
"""

from typing import Any

import orjson

from mcp_server.protocol.text_escapes import escape_text, escape_value

# A value larger than its cap is stored as {TRUNCATED: true, "original_bytes": n, "preview": s}.
# The key cannot be a tool argument's name (pydantic refuses leading underscores) nor a member
# of a CallToolResult.
TRUNCATED = "_truncated"
_PREVIEW_BYTES = 1024
_NUL = b"\\u0000"


def _encode(value: Any, limit: int | None) -> tuple[bytes, bool]:
    """The JSON history stores for `value`, and whether it differs from `value`'s own."""
    changed = False
    try:
        encoded = orjson.dumps(value)
    except TypeError:
        # A lone surrogate; a value JSON cannot hold at all raises again here.
        encoded, changed = orjson.dumps(escape_value(value)), True
    else:
        if _NUL in encoded:  # may also be an escaped backslash before "u0000": then a no-op
            encoded, changed = orjson.dumps(escape_value(value)), True
    if limit is not None and len(encoded) > limit:
        encoded, changed = orjson.dumps(truncation(encoded, limit)), True
    return encoded, changed


def truncation(encoded: bytes, limit: int) -> dict[str, Any]:
    """What is stored instead of a value whose JSON (`encoded`) is larger than `limit` bytes."""
    preview = encoded[: min(_PREVIEW_BYTES, limit // 2)].decode("utf-8", "ignore")
    return {TRUNCATED: True, "original_bytes": len(encoded), "preview": preview}


def history_json(value: Any, limit: int | None) -> str:
    """The JSON text stored for `value` (not None), at most about `limit` bytes."""
    return _encode(value, limit)[0].decode()


def history_value(value: Any, limit: int | None) -> Any:
    """`value` as history stores it, as a Python value (itself when nothing had to change)."""
    if value is None:
        return None
    encoded, changed = _encode(value, limit)
    return orjson.loads(encoded) if changed else value


def history_text(text: str, *, max_chars: int | None = None, max_bytes: int | None = None) -> str:
    """`text` as a text column stores it: escaped, then cut to `max_bytes` (saying so) and
    to `max_chars` (a column's length)."""
    text = escape_text(text)
    if max_bytes is not None and len(text) * 4 > max_bytes:
        encoded = text.encode()
        if len(encoded) > max_bytes:
            note = f" … [truncated: {len(encoded)} bytes]"
            keep = max(0, max_bytes - len(note.encode()))
            text = encoded[:keep].decode("utf-8", "ignore") + note
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    return text


def truncated_bytes(value: Any) -> int | None:
    """The original size of a value history truncated; None for a value stored whole."""
    if isinstance(value, dict) and value.get(TRUNCATED) is True:
        size = value.get("original_bytes")
        return size if isinstance(size, int) else 0
    return None
