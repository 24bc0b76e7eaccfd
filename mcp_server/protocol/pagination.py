"""Opaque cursors for list methods."""

import base64
import binascii

from mcp_server.protocol.errors import invalid_params

_CURSOR_PREFIX = b"offset:"


def encode_cursor(offset: int) -> str:
    """An opaque cursor that resumes a listing at `offset`."""
    return base64.urlsafe_b64encode(_CURSOR_PREFIX + str(offset).encode()).decode()


def decode_cursor(cursor: object, size: int) -> int:
    """The offset a cursor stands for; -32602 when it is not one of ours or is out of range."""
    if not isinstance(cursor, str):
        raise invalid_params("cursor must be a string")
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise invalid_params("Invalid cursor") from None
    digits = raw[len(_CURSOR_PREFIX) :]
    # Bounded length: int() refuses strings of thousands of digits with a ValueError.
    if not raw.startswith(_CURSOR_PREFIX) or not digits.isdigit() or len(digits) > 18:
        raise invalid_params("Invalid cursor")
    offset = int(digits)
    if offset <= 0 or offset >= size:
        raise invalid_params("Invalid cursor")
    return offset


def paginate(size: int, cursor: object | None, page_size: int) -> tuple[int, int, str | None]:
    """Start and end of the page for `cursor`, and the next page's cursor if any."""
    start = 0 if cursor is None else decode_cursor(cursor, size)
    end = min(start + page_size, size)
    return start, end, encode_cursor(end) if end < size else None


_KEY_PREFIX = b"after:"


def encode_key_cursor(key: str) -> str:
    """An opaque cursor that resumes a keyset listing after `key`."""
    return base64.urlsafe_b64encode(_KEY_PREFIX + key.encode()).decode()


def decode_key_cursor(cursor: object) -> str:
    """The key a keyset cursor stands for; -32602 when it is not one of ours."""
    if not isinstance(cursor, str) or len(cursor) > 200:
        raise invalid_params("Invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise invalid_params("Invalid cursor") from None
    if not raw.startswith(_KEY_PREFIX):
        raise invalid_params("Invalid cursor")
    try:
        return raw[len(_KEY_PREFIX) :].decode()
    except UnicodeDecodeError:
        raise invalid_params("Invalid cursor") from None
