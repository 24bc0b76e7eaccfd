"""Opaque list cursors: round trip, refusal of anything not ours, page edges."""

import base64
from typing import Any

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError
from mcp_server.protocol.pagination import decode_cursor, encode_cursor, paginate


def _raw_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _assert_invalid(cursor: Any, size: int = 10) -> None:
    with pytest.raises(JsonRpcError) as caught:
        decode_cursor(cursor, size)
    assert caught.value.code == INVALID_PARAMS


@pytest.mark.parametrize(("offset", "size"), [(1, 2), (5, 10), (49, 50), (1000, 1001)])
def test_round_trip(offset: int, size: int) -> None:
    cursor = encode_cursor(offset)
    assert isinstance(cursor, str)
    assert str(offset) not in cursor  # opaque, not a bare number
    assert decode_cursor(cursor, size) == offset


@pytest.mark.parametrize("cursor", [None, 5, 5.0, ["b2Zmc2V0OjE="], {"offset": 1}, b"x", True])
def test_non_string_cursor(cursor: Any) -> None:
    _assert_invalid(cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "!!!!",
        "é-not-ascii",
        "b2Zmc2V0OjE",  # padding missing
        _raw_cursor(b"offset:"),
        _raw_cursor(b"offset:abc"),
        _raw_cursor(b"offset:-1"),
        _raw_cursor(b"offset:+3"),
        _raw_cursor(b"offset: 3"),
        _raw_cursor(b"offset:3.0"),
        _raw_cursor(b"page:3"),
        _raw_cursor(b"3"),
        _raw_cursor(b"\xff\xfe"),
    ],
)
def test_garbage_cursor(cursor: str) -> None:
    _assert_invalid(cursor)


@pytest.mark.parametrize(("offset", "size"), [(0, 10), (10, 10), (11, 10), (1, 0), (1, 1)])
def test_out_of_range_cursor(offset: int, size: int) -> None:
    _assert_invalid(encode_cursor(offset), size)


def test_cursor_with_huge_number_is_invalid_params() -> None:
    # More digits than int() converts by default (4300): must still be a clean -32602,
    # not a ValueError that turns into an internal error.
    _assert_invalid(_raw_cursor(b"offset:" + b"9" * 5000))


def test_paginate_first_page() -> None:
    start, end, next_cursor = paginate(5, None, 2)
    assert (start, end) == (0, 2)
    assert next_cursor is not None
    assert decode_cursor(next_cursor, 5) == 2


def test_paginate_walks_every_item_once() -> None:
    size, page_size = 7, 3
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        start, end, cursor = paginate(size, cursor, page_size)
        seen.extend(range(start, end))
        pages += 1
        if cursor is None:
            break
    assert seen == list(range(size))
    assert pages == 3


def test_paginate_exact_multiple_has_no_empty_last_page() -> None:
    _, end, cursor = paginate(4, None, 2)
    assert end == 2
    assert cursor is not None
    start, end, cursor = paginate(4, cursor, 2)
    assert (start, end, cursor) == (2, 4, None)


def test_paginate_everything_fits() -> None:
    assert paginate(3, None, 50) == (0, 3, None)
    assert paginate(3, None, 3) == (0, 3, None)


def test_paginate_empty_listing() -> None:
    assert paginate(0, None, 50) == (0, 0, None)


def test_paginate_bad_cursor() -> None:
    with pytest.raises(JsonRpcError) as caught:
        paginate(5, "nonsense", 2)
    assert caught.value.code == INVALID_PARAMS


def test_paginate_stale_cursor_after_listing_shrank() -> None:
    _, _, cursor = paginate(10, None, 5)
    assert cursor is not None
    with pytest.raises(JsonRpcError):
        paginate(5, cursor, 5)
