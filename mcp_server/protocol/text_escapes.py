"""One rule for code points a destination cannot hold: they are written as their JSON escape.

JSON strings may hold any code point, so the wire carries U+0000 as a client sent it. But UTF-8
cannot encode a lone surrogate (no client can send one through a JSON parser, yet a tool can
make one, e.g. a file name decoded with `surrogateescape`), and PostgreSQL refuses U+0000 in
text and jsonb. Wherever such a code point must go where it cannot be held, it is replaced by
the six characters of its JSON escape (U+0000 becomes `\\u0000`, U+DC80 `\\udc80`): visible to
a reader, never an error, and everything else kept exactly.
"""

import re
from typing import Any

import orjson

_SURROGATES = re.compile("[\ud800-\udfff]")
_SURROGATES_AND_NUL = re.compile("[\x00\ud800-\udfff]")


def _escape(match: "re.Match[str]") -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_text(text: str, *, nul: bool = True) -> str:
    """`text` with lone surrogates (and U+0000, unless `nul` is False) written as escapes."""
    if text.isascii() and (not nul or "\x00" not in text):
        return text
    return (_SURROGATES_AND_NUL if nul else _SURROGATES).sub(_escape, text)


def escape_value(value: Any, *, nul: bool = True) -> Any:
    """A copy of a JSON-like value with every string in it, keys too, passed to escape_text."""
    if isinstance(value, str):
        return escape_text(value, nul=nul)
    if isinstance(value, dict):
        return {
            escape_text(key, nul=nul) if isinstance(key, str) else key: escape_value(item, nul=nul)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [escape_value(item, nul=nul) for item in value]
    return value


def json_text(value: Any) -> str:
    """`value` as JSON text (orjson); a lone surrogate, which UTF-8 cannot carry (a tool made
    it, e.g. a file name decoded with surrogateescape), as the text of its escape. Anything
    else JSON cannot hold raises TypeError."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return orjson.dumps(escape_value(value, nul=False)).decode()
