"""`process_images`: thumbnails for every image in a tenant directory, with an error log."""

import contextlib
import os
import shutil
import stat
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, BinaryIO

import orjson
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from mcp_server.protocol.text_escapes import escape_value
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.fanout import ItemFailed, chunk_function
from mcp_server.tools.data_paths import (
    NAME_MAX,
    DataPathError,
    resolve_tenant_path,
    tenant_root,
)
from mcp_server.tools.registry import Summarized, tool

THUMBNAILS_DIR = "thumbnails"
THUMBNAIL_SUFFIX = ".jpg"


class ImagesSummary(TypedDict):
    """What a `process_images` run did."""

    total: int
    succeeded: int
    errors: int
    duration_s: float
    images_per_s: float
    formats: dict[str, int]
    thumbnails: str
    error_log: str


_OUTPUT_SCHEMA = TypeAdapter(ImagesSummary).json_schema()


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """Size and format of one source image."""

    name: str
    width: int
    height: int
    format: str
    bytes: int


class NotARegularFile(Exception):
    """A directory entry that is a FIFO, socket, device or link: never opened for reading."""


def _open_regular_file(path: Path) -> BinaryIO:
    """Open `path` for reading only if it is a regular file, without ever blocking.

    O_NONBLOCK makes opening a FIFO return at once (a blocking open waits for a writer
    forever, and a thread cannot be cancelled); O_NOFOLLOW refuses a link swapped in since
    the directory was listed. The type is checked on the open descriptor, so no race.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile()
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def thumbnail_name(source_name: str) -> str:
    """The thumbnail's file name: the whole source name (extension included) plus .jpg.

    Keeping the extension makes the mapping one to one: a.png, a.gif and a.bmp get
    a.png.jpg, a.gif.jpg and a.bmp.jpg, and none can be manifest.json.
    """
    return source_name + THUMBNAIL_SUFFIX


def make_thumbnail(source: Path, target: Path, size: int) -> ImageInfo:
    """Decode `source` fully and write a JPEG thumbnail no larger than size x size."""
    # Pillow loads in the processes that make thumbnails, not in every one that registers
    # the tools (this module is imported by the app's ready()).
    from PIL import Image

    with _open_regular_file(source) as file, Image.open(file) as image:
        image_format = image.format or "unknown"
        width, height = image.size
        image.thumbnail((size, size))
        thumbnail: Image.Image = image
        if thumbnail.mode not in ("RGB", "L"):
            thumbnail = thumbnail.convert("RGB")
        thumbnail.save(target, "JPEG", quality=85)
        source_bytes = os.fstat(file.fileno()).st_size
    return ImageInfo(source.name, width, height, image_format, source_bytes)


def item_reason(exc: Exception, name: str, paths: dict[str, str]) -> str:
    """Why one file failed, naming the file and never a server path.

    `paths` maps each server path the failure may mention (the source, the thumbnail, the
    partial directory, the tenant root) to what the client may see instead.
    """
    from PIL import UnidentifiedImageError

    if isinstance(exc, NotARegularFile):
        return "not a regular file (a FIFO, socket or device is never read)"
    if isinstance(exc, UnidentifiedImageError):
        return f"UnidentifiedImageError: cannot identify image file {name!r}"
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        # str() of an OSError ends with the absolute path it failed on.
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}: {name!r}"
    reason = str(exc)
    for path in sorted(paths, key=len, reverse=True):  # longest first: the most specific
        reason = reason.replace(path, paths[path])
    return f"{type(exc).__name__}: {reason}"


def _write_manifest(path: Path, infos: list[ImageInfo]) -> None:
    try:
        path.write_bytes(orjson.dumps(infos))  # orjson serialises dataclasses natively
    except TypeError:  # a file name that is not UTF-8 decodes to lone surrogates
        rows = [escape_value(asdict(info), nul=False) for info in infos]
        path.write_bytes(orjson.dumps(rows))


def _candidates(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as entries:
        return sorted(
            (e for e in entries if not e.name.startswith(".") and not e.is_dir()),
            key=lambda e: e.name,
        )


def _refusal(path: str, name: str) -> str | None:
    """Why a listed entry is not even opened, or None for a regular file."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "symbolic link refused"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device is never read)"
    if len(os.fsencode(thumbnail_name(name))) > NAME_MAX:
        return f"name too long: its thumbnail's name would pass {NAME_MAX} bytes"
    return None


@chunk_function
def thumbnail_item(
    item: bytes, *, source: str, partial: str, root: str, size: int
) -> tuple[int, int, str, int]:
    """One file's thumbnail (a fan-out item: its name as bytes, which any name can be); its
    width, height, format and size. Written under a temporary name and renamed, so a chunk
    run twice (its worker lost) leaves one whole thumbnail, never a torn one."""
    name = os.fsdecode(item)
    path = os.path.join(source, name)
    target = os.path.join(partial, thumbnail_name(name))
    try:
        refusal = _refusal(path, name)
        if refusal is not None:
            raise ItemFailed(refusal)
        scratch = os.path.join(partial, f".{uuid.uuid4().hex}.tmp")
        try:
            info = make_thumbnail(Path(path), Path(scratch), size)
            os.replace(scratch, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(scratch)
    except ItemFailed:
        raise
    except Exception as exc:
        seen_as = {
            path: name,
            target: thumbnail_name(name),
            partial: THUMBNAILS_DIR,
            root: "",
        }
        raise ItemFailed(item_reason(exc, name, seen_as)) from None
    return info.width, info.height, info.format, info.bytes


def _summary_text(summary: ImagesSummary) -> str:
    return (
        f"Total {summary['total']:,} · Success {summary['succeeded']:,} · "
        f"Errors {summary['errors']:,}"
        + (f" (error log: {summary['error_log']})" if summary["errors"] else "")
        + f" · Duration {summary['duration_s']:.1f} s · {summary['images_per_s']:,.0f} images/s"
    )


@tool(
    title="Process images",
    output_schema=_OUTPUT_SCHEMA,
    # Idempotent: a chunk run twice rewrites the same thumbnails (atomically) in the call's
    # own directory, and its item errors are recorded once, from the run that finished.
    annotations={
        "readOnlyHint": False,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    },
    task_support="optional",
    duration="long",
)
async def process_images(
    directory: Annotated[str, Field(description="A directory inside your data directory.")],
    ctx: ToolContext,
    thumbnail_size: Annotated[int, Field(ge=16, le=2048, description="Longest side, px.")] = 128,
) -> Summarized:
    """Make a thumbnail of every image in a directory; unreadable files go to the error log.

    The files are fanned out in chunks (`ctx.fan_out`): over this process's cores, or over
    the cluster's workers."""
    source = resolve_tenant_path(ctx.principal.tenant_slug, directory)
    if not source.is_dir():
        raise DataPathError(f"{directory!r} is not a directory.")
    root = tenant_root(ctx.principal.tenant_slug)
    output = root / THUMBNAILS_DIR / ctx.operation_id
    partial = output.with_name(f".{ctx.operation_id}.partial")
    started = time.monotonic()
    entries = await ctx.run_blocking(_candidates, source)
    total = len(entries)
    ctx.progress(0, total, f"found {total:,} files")
    names = [os.fsencode(entry.name) for entry in entries]
    try:
        # exist_ok: a call run again under its own id (its worker lost) reuses its directory.
        partial.mkdir(parents=True, exist_ok=True)
        done = await ctx.fan_out(
            thumbnail_item,
            names,
            label=os.fsdecode,
            source=str(source),
            partial=str(partial),
            root=str(root),
            size=thumbnail_size,
        )
        infos = [
            ImageInfo(os.fsdecode(name), *value)
            for name, value in zip(names, done.values, strict=True)
            if value is not None
        ]
        formats: dict[str, int] = {}
        for info in infos:
            formats[info.format] = formats.get(info.format, 0) + 1
        errors = done.failed
        # Thousands of entries: serialise and write off the event loop.
        await ctx.run_blocking(_write_manifest, partial / "manifest.json", infos)
        partial.rename(output)
    finally:
        # A cancelled or failed run leaves no half-written output behind.
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    elapsed = time.monotonic() - started
    summary: ImagesSummary = {
        "total": total,
        "succeeded": len(infos),
        "errors": errors,
        "duration_s": round(elapsed, 3),
        "images_per_s": round(total / elapsed, 1) if elapsed > 0 else float(total),
        "formats": formats,
        "thumbnails": str(output.relative_to(root)),
        "error_log": f"/api/runs/{ctx.operation_id}/errors.json",
    }
    return Summarized(summary, _summary_text(summary))
