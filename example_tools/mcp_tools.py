"""The example app's tools: `text_stats` (quick) and `checksum_files` (long-running).

mcp_server imports this module at start-up because the app is installed; the `@tool`
decorator registers each function. Nothing else in the service changes to add them.
"""

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from mcp_server.tools import Summarized, ToolContext, ToolError, tool
from mcp_server.tools.data_paths import DataPathError, resolve_tenant_path

CHUNK_BYTES = 1024 * 1024
MAX_TEXT_CHARACTERS = 1_000_000
MAX_PATHS = 1000
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")

Algorithm = Literal["sha256", "sha512", "blake2b", "md5"]


class WordCount(TypedDict):
    """One word and how often it occurs."""

    word: str
    count: int


class TextStats(TypedDict):
    """Counts of one text."""

    characters: int
    words: int
    lines: int
    top_words: list[WordCount]


@tool(title="Text statistics", annotations={"readOnlyHint": True, "openWorldHint": False})
async def text_stats(
    text: Annotated[str, Field(max_length=MAX_TEXT_CHARACTERS, description="The text.")],
    top: Annotated[int, Field(ge=0, le=50, description="How many frequent words.")] = 5,
) -> TextStats:
    """Count the characters, words and lines of a text, and its most frequent words."""
    words = [word.casefold() for word in _WORD.findall(text)]
    return {
        "characters": len(text),
        "words": len(words),
        "lines": len(text.splitlines()),
        "top_words": [
            {"word": word, "count": count} for word, count in Counter(words).most_common(top)
        ],
    }


class FileChecksum(TypedDict):
    """The digest of one file."""

    path: str
    bytes: int
    digest: str


class ChecksumSummary(TypedDict):
    """What a `checksum_files` run did."""

    algorithm: str
    files: list[FileChecksum]
    bytes: int
    errors: int


@tool(
    title="Checksum files",
    # A Summarized return says nothing of its value's shape, so the schema is given.
    output_schema=TypeAdapter(ChecksumSummary).json_schema(),
    annotations={"readOnlyHint": True, "openWorldHint": False},
    task_support="optional",
)
async def checksum_files(
    paths: Annotated[
        list[str],
        Field(min_length=1, max_length=MAX_PATHS, description="Files in your data directory."),
    ],
    ctx: ToolContext,
    algorithm: Annotated[Algorithm, Field(description="The hash function.")] = "sha256",
) -> Summarized:
    """Hash files of your data directory, reporting progress in bytes; a file that is missing,
    refused or unreadable is an item error and the run goes on."""
    files: list[tuple[str, Path, int]] = []
    errors = 0
    for relative in paths:
        try:
            path = resolve_tenant_path(ctx.principal.tenant_slug, relative)
            if not path.is_file():
                raise DataPathError(f"{relative!r} is not a regular file.")
            files.append((relative, path, path.stat().st_size))
        except (DataPathError, OSError) as exc:
            ctx.item_error(relative, _reason(exc))
            errors += 1
    total = sum(size for _, _, size in files)
    ctx.progress(0, total, f"{len(files)} file(s), {total:,} bytes")
    done = 0
    checksums: list[FileChecksum] = []
    for relative, path, _ in files:

        def advanced(count: int, start: int = done, name: str = relative) -> None:
            ctx.progress(start + count, total, name)

        try:
            digest, size = await ctx.run_blocking(_hash_file, path, algorithm, advanced, ctx)
        except OSError as exc:
            ctx.item_error(relative, _reason(exc))
            errors += 1
            continue
        done += size
        checksums.append({"path": relative, "bytes": size, "digest": digest})
    if not checksums and errors:
        raise ToolError(f"None of the {errors} file(s) could be hashed; see the item errors.")
    summary: ChecksumSummary = {
        "algorithm": algorithm,
        "files": checksums,
        "bytes": done,
        "errors": errors,
    }
    text = f"{len(checksums)} file(s) hashed ({done:,} bytes, {algorithm}), {errors} error(s)"
    return Summarized(summary, text)


def _hash_file(
    path: Path, algorithm: str, advanced: Callable[[int], None], ctx: ToolContext
) -> tuple[str, int]:
    """Hash one file chunk by chunk on a worker thread; stops at the next chunk once the call
    is cancelled."""
    digest = hashlib.new(algorithm)
    read = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            ctx.raise_if_cancelled()
            digest.update(chunk)
            read += len(chunk)
            advanced(read)
    return digest.hexdigest(), read


def _reason(exc: Exception) -> str:
    """An item error's text: a refusal as the data paths phrase it, or the system's reason
    (never the server path an OSError's text would hold)."""
    if isinstance(exc, DataPathError):
        return str(exc)
    strerror = exc.strerror if isinstance(exc, OSError) else None
    return f"cannot be read: {strerror or type(exc).__name__}"
