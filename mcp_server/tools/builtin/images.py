"""`process_images`: thumbnails for every image in a tenant directory, with an error log."""

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import orjson
from PIL import Image
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from mcp_server.runtime.context import ToolContext
from mcp_server.tools.data_paths import DataPathError, resolve_tenant_path, tenant_root
from mcp_server.tools.registry import Summarized, tool

THUMBNAILS_DIR = "thumbnails"


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


def make_thumbnail(source: Path, target: Path, size: int) -> ImageInfo:
    """Decode `source` fully and write a JPEG thumbnail no larger than size x size."""
    with Image.open(source) as image:
        image_format = image.format or "unknown"
        width, height = image.size
        image.thumbnail((size, size))
        thumbnail: Image.Image = image
        if thumbnail.mode not in ("RGB", "L"):
            thumbnail = thumbnail.convert("RGB")
        thumbnail.save(target, "JPEG", quality=85)
    return ImageInfo(source.name, width, height, image_format, source.stat().st_size)


def _write_manifest(path: Path, infos: list[ImageInfo]) -> None:
    path.write_bytes(orjson.dumps(infos))  # orjson serialises dataclasses natively


def _candidates(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as entries:
        return sorted(
            (e for e in entries if not e.name.startswith(".") and not e.is_dir()),
            key=lambda e: e.name,
        )


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
    annotations={"readOnlyHint": False, "destructiveHint": False, "openWorldHint": False},
    task_support="optional",
)
async def process_images(
    directory: Annotated[str, Field(description="A directory inside your data directory.")],
    ctx: ToolContext,
    thumbnail_size: Annotated[int, Field(ge=16, le=2048, description="Longest side, px.")] = 128,
) -> Summarized:
    """Make a thumbnail of every image in a directory; unreadable files go to the error log."""
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
    infos: list[ImageInfo] = []
    formats: dict[str, int] = {}
    errors = 0
    try:
        partial.mkdir(parents=True)
        for index, entry in enumerate(entries, start=1):
            if entry.is_symlink():
                ctx.item_error(entry.name, "symbolic link refused")
                errors += 1
            else:
                target = partial / (Path(entry.name).stem + ".jpg")
                try:
                    info = await ctx.run_blocking(
                        make_thumbnail, Path(entry.path), target, thumbnail_size
                    )
                except Exception as exc:
                    # Name the file, never the server's absolute path.
                    reason = str(exc).replace(entry.path, entry.name)
                    ctx.item_error(entry.name, f"{type(exc).__name__}: {reason}")
                    errors += 1
                else:
                    infos.append(info)
                    formats[info.format] = formats.get(info.format, 0) + 1
            ctx.progress(index, total, entry.name)
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
