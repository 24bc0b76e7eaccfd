import asyncio
import contextlib
import errno
import json
import os
import socket
import threading
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command

from mcp_server.demo_images import write_demo_images
from mcp_server.models import Operation, OperationError, OperationStatus
from mcp_server.runtime.runner import CallRequest
from mcp_server.tools.builtin.images import NotARegularFile, item_reason, make_thumbnail
from mcp_server.tools.data_paths import DataPathError, resolve_tenant_path, tenant_root
from mcp_server.tools.registry import registry
from tests.support import Wire, make_principal, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def data_root(settings, tmp_path: Path) -> Path:
    settings.MCP_DATA_ROOT = tmp_path / "data"
    return settings.MCP_DATA_ROOT


# Long enough for a busy machine; a hung call (the FIFO of old) fails here instead of forever.
CALL_TIMEOUT = 60


@contextlib.contextmanager
def releasing_fifo(path: Path) -> Iterator[Path]:
    """A FIFO at `path`; a reader stuck opening it (a bug) is released after CALL_TIMEOUT or on
    the way out, so a regression fails the test instead of hanging the suite."""

    def release() -> None:
        with contextlib.suppress(OSError):  # ENXIO: nobody is waiting to read, as it should be
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    os.mkfifo(path)
    timer = threading.Timer(CALL_TIMEOUT, release)
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()
        release()


def _image(path: Path, image_format: str) -> None:
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(path, image_format)


async def _logged_messages() -> list[tuple[str, str]]:
    return await database_sync_to_async(
        lambda: list(OperationError.objects.values_list("item", "message"))
    )()


def _call(principal, directory: str, token=None) -> CallRequest:
    tool = registry.get("process_images")
    assert tool is not None
    return CallRequest(
        principal=principal,
        tool=tool,
        arguments={"directory": directory, "thumbnail_size": 32},
        connection_id="c",
        request_id=1,
        progress_token=token,
    )


async def test_processes_a_directory_and_logs_broken_files(runner, writer) -> None:
    principal = await database_sync_to_async(make_principal)("pics", "ann")
    made = write_demo_images(tenant_root("pics") / "set", count=40, corrupt=0.3, seed=3)
    assert made.truncated + made.not_images > 0
    wire = Wire()
    result = await runner.call(_call(principal, "set", token="p"), send=wire.send, events=wire)
    summary = result["structuredContent"]
    broken = made.truncated + made.not_images
    assert summary["total"] == 40
    assert summary["errors"] == broken
    assert summary["succeeded"] == made.images
    assert sum(summary["formats"].values()) == made.images
    text = result["content"][0]["text"]
    assert text.startswith("Total 40 · Success ")
    assert f"Errors {broken} (error log: /api/runs/" in text and "images/s" in text
    output = tenant_root("pics") / summary["thumbnails"]
    assert len(list(output.glob("*.jpg"))) == made.images
    assert (output / "manifest.json").exists()
    assert wire.progress()[-1]["progress"] == 40
    await database_sync_to_async(writer.flush)()
    row = await database_sync_to_async(Operation.objects.get)()
    assert row.status == OperationStatus.SUCCEEDED and row.error_count == broken
    logged = await database_sync_to_async(
        lambda: list(OperationError.objects.values_list("message", flat=True))
    )()
    assert len(logged) == broken
    assert not any(str(tenant_root("pics")) in message for message in logged)


@pytest.mark.parametrize("directory", ["../other", "/etc", "set/../../other", ""])
async def test_paths_outside_the_tenant_are_refused(runner, directory) -> None:
    principal = await database_sync_to_async(make_principal)("pics", "bob")
    (tenant_root("pics") / "set").mkdir()
    wire = Wire()
    result = await runner.call(_call(principal, directory), send=wire.send, events=wire)
    assert result["isError"]
    assert "Refused" in result["content"][0]["text"] or "required" in result["content"][0]["text"]


async def test_symlinks_are_refused(runner, tmp_path: Path) -> None:
    principal = await database_sync_to_async(make_principal)("pics", "cat")
    outside = tmp_path / "outside"
    write_demo_images(outside, count=2, corrupt=0)
    root = tenant_root("pics")
    os.symlink(outside, root / "linked")
    (root / "set").mkdir()
    os.symlink(outside / "img_000000.jpg", root / "set" / "escape.jpg")
    write_demo_images(root / "set", count=1, corrupt=0)
    wire = Wire()
    linked = await runner.call(_call(principal, "linked"), send=wire.send, events=wire)
    assert linked["isError"] and "symbolic link" in linked["content"][0]["text"]
    inner = await runner.call(_call(principal, "set"), send=wire.send, events=wire)
    assert inner["structuredContent"]["errors"] == 1
    assert inner["structuredContent"]["succeeded"] == 1


@pytest.mark.parametrize("slug", ["x/../beta", "../beta", "..", ".", "", "a/b", "/abs"])
def test_tenant_root_refuses_a_slug_that_is_not_a_slug(data_root: Path, slug: str) -> None:
    (data_root / "beta").mkdir(parents=True)
    with pytest.raises(DataPathError, match="invalid slug"):
        tenant_root(slug)
    assert sorted(p.name for p in data_root.iterdir()) == ["beta"]


def test_tenant_root_refuses_a_tenant_directory_that_links_elsewhere(
    data_root: Path, tmp_path: Path
) -> None:
    (data_root / "beta").mkdir(parents=True)
    os.symlink(data_root / "beta", data_root / "gamma")  # another tenant's directory
    os.symlink(tmp_path, data_root / "delta")  # outside the data root
    for slug in ("gamma", "delta"):
        with pytest.raises(DataPathError, match="not served") as refused:
            tenant_root(slug)
        assert str(data_root) not in str(refused.value)


async def test_a_tenant_with_an_invalid_slug_is_refused_its_files(runner, writer) -> None:
    """A tenant made before slugs were validated ("x/../beta") never reaches beta's files."""
    from accounts.models import Tenant

    await database_sync_to_async(make_principal)("beta", "bea")
    write_demo_images(tenant_root("beta") / "set", count=3, corrupt=0)
    before = sorted(p.relative_to(tenant_root("beta")) for p in tenant_root("beta").rglob("*"))
    await database_sync_to_async(Tenant.objects.create)(slug="x/../beta")  # no validation
    intruder = await database_sync_to_async(make_principal)("x/../beta", "eve")
    wire = Wire()
    result = await runner.call(_call(intruder, "set"), send=wire.send, events=wire)
    assert result["isError"]
    text = result["content"][0]["text"]
    assert "invalid slug" in text and "not served" in text
    assert str(tenant_root("beta")) not in text
    after = sorted(p.relative_to(tenant_root("beta")) for p in tenant_root("beta").rglob("*"))
    assert after == before  # nothing read into thumbnails, nothing written


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        pytest.param("a" * 300, "at most 255 bytes", id="300-character-name"),
        pytest.param("/".join(["d" * 200] * 30), "at most 4096 bytes", id="6000-character-path"),
        pytest.param("/".join(["d" * 200] * 5), "does not exist", id="long-but-missing-path"),
        # 4096 bytes: allowed by itself, past PATH_MAX inside any root (however long the
        # test's temporary directory is).
        pytest.param(
            "/".join(["d" * 200] * 20 + ["d" * 76]),
            "File name too long",
            id="past-path-max-in-root",
        ),
    ],
)
async def test_overlong_names_and_paths_are_refused_cleanly(
    runner, directory: str, expected: str
) -> None:
    principal = await database_sync_to_async(make_principal)("pics", "len")
    (tenant_root("pics") / "set").mkdir()
    wire = Wire()
    result = await runner.call(_call(principal, directory), send=wire.send, events=wire)
    text = result["content"][0]["text"]
    assert result["isError"] and expected in text, text
    assert "unexpectedly" not in text and len(text) < 300  # the path is not echoed whole
    assert str(tenant_root("pics")) not in text


async def test_fifos_and_sockets_are_item_errors_and_never_block(runner, writer) -> None:
    principal = await database_sync_to_async(make_principal)("pics", "pip")
    folder = tenant_root("pics") / "set"
    write_demo_images(folder, count=2, corrupt=0)
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(folder / "b.sock"))
    wire = Wire()
    try:
        with releasing_fifo(folder / "a.fifo"):
            result = await asyncio.wait_for(
                runner.call(_call(principal, "set"), send=wire.send, events=wire), CALL_TIMEOUT
            )
    finally:
        listening.close()
    summary = result["structuredContent"]
    assert (summary["total"], summary["succeeded"], summary["errors"]) == (4, 2, 2)
    await database_sync_to_async(writer.flush)()
    assert sorted(await _logged_messages()) == [
        ("a.fifo", "not a regular file (a FIFO, socket or device is never read)"),
        ("b.sock", "not a regular file (a FIFO, socket or device is never read)"),
    ]


async def test_a_fifo_swapped_in_after_listing_is_refused_without_blocking(tmp_path) -> None:
    with releasing_fifo(tmp_path / "late.png") as fifo:
        thumbnail = asyncio.to_thread(make_thumbnail, fifo, tmp_path / "t.jpg", 32)
        with pytest.raises(NotARegularFile):
            await asyncio.wait_for(thumbnail, CALL_TIMEOUT)
    assert not (tmp_path / "t.jpg").exists()


async def test_sources_differing_only_in_extension_keep_their_own_thumbnails(
    runner, writer
) -> None:
    principal = await database_sync_to_async(make_principal)("pics", "ext")
    folder = tenant_root("pics") / "set"
    folder.mkdir()
    for suffix, image_format in [("png", "PNG"), ("gif", "GIF"), ("bmp", "BMP")]:
        _image(folder / f"a.{suffix}", image_format)
    _image(folder / "a.png.jpg", "JPEG")  # the name a.png's thumbnail gets, as a source
    wire = Wire()
    result = await runner.call(_call(principal, "set"), send=wire.send, events=wire)
    summary = result["structuredContent"]
    assert (summary["succeeded"], summary["errors"]) == (4, 0)
    output = tenant_root("pics") / summary["thumbnails"]
    written = sorted(p.name for p in output.iterdir())
    assert written == ["a.bmp.jpg", "a.gif.jpg", "a.png.jpg", "a.png.jpg.jpg", "manifest.json"]
    assert summary["formats"] == {"PNG": 1, "GIF": 1, "BMP": 1, "JPEG": 1}


async def test_no_server_path_in_any_message(runner, writer, data_root: Path) -> None:
    """Every kind of failure at once; no message, log or result names a server path."""
    principal = await database_sync_to_async(make_principal)("pics", "pat")
    folder = tenant_root("pics") / "set"
    write_demo_images(folder, count=12, corrupt=0.6, seed=5)
    _image(folder / ("x" * 253), "PNG")  # its thumbnail's name would not fit: the write fails
    os.symlink(folder / "img_000000.jpg", folder / "link.jpg")
    wire = Wire()
    with releasing_fifo(folder / "f.png"):
        result = await asyncio.wait_for(
            runner.call(_call(principal, "set", token="t"), send=wire.send, events=wire),
            CALL_TIMEOUT,
        )
    await database_sync_to_async(writer.flush)()
    logged = await _logged_messages()
    assert result["structuredContent"]["errors"] == len(logged) >= 4
    assert ("x" * 253, "name too long: its thumbnail's name would pass 255 bytes") in logged
    texts = [message for _, message in logged]
    texts += [str(p.get("message")) for p in wire.progress()]
    texts += [str(result)]
    leaks = [t for t in texts if str(data_root) in t or ".partial" in t or "/tmp" in t]
    assert not leaks


def test_item_reasons_name_the_file_never_the_path(tmp_path: Path) -> None:
    partial = str(tmp_path / "pics" / "thumbnails" / ".0190.partial")
    target = f"{partial}/a.png.jpg"
    failed_write = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
    paths = {target: "a.png.jpg", partial: "thumbnails", str(tmp_path / "pics"): ""}
    assert item_reason(failed_write, "a.png", paths) == (
        "OSError: [Errno 28] No space left on device: 'a.png'"
    )
    other = ValueError(f"cannot write {target} (in {partial})")
    assert item_reason(other, "a.png", paths) == (
        "ValueError: cannot write a.png.jpg (in thumbnails)"
    )


def test_resolve_stays_inside_the_tenant_root() -> None:
    root = tenant_root("solo")
    (root / "a" / "b").mkdir(parents=True)
    assert resolve_tenant_path("solo", "a/b") == (root / "a" / "b").resolve()
    for bad in ["..", "a/../..", "/a", "a\x00b", "missing", "a/\ud800", "x" * 256]:
        with pytest.raises(DataPathError):
            resolve_tenant_path("solo", bad)


async def test_cancel_mid_run_leaves_no_partial_output(runner, writer) -> None:
    principal = await database_sync_to_async(make_principal)("pics", "dan")
    write_demo_images(tenant_root("pics") / "big", count=300, corrupt=0)
    wire = Wire()
    call = asyncio.create_task(
        runner.call(_call(principal, "big", token=1), send=wire.send, events=wire)
    )

    await wait_until(
        lambda: [p for p in wire.progress() if p["progress"] >= 5], 10, "five images done"
    )
    runner.cancel(runner.running_ids[0])
    with pytest.raises(asyncio.CancelledError):
        await call
    thumbnails = tenant_root("pics") / "thumbnails"
    assert not [p for p in thumbnails.iterdir()] if thumbnails.exists() else True
    await database_sync_to_async(writer.flush)()
    row = await database_sync_to_async(Operation.objects.get)()
    assert row.status == OperationStatus.CANCELLED
    assert row.progress < 300


def test_make_demo_images_command(data_root: Path) -> None:
    from accounts.services import tenant_create

    tenant_create(slug="demo2")
    out = StringIO()
    call_command(
        "make_demo_images",
        "--tenant",
        "demo2",
        "--count",
        "25",
        "--corrupt",
        "0.2",
        "--dir",
        "x",
        stdout=out,
    )
    files = list((data_root / "demo2" / "x").iterdir())
    assert len(files) == 25
    assert {f.suffix for f in files} == {".jpg", ".png", ".webp", ".gif", ".bmp"}
    assert "Wrote 25 files" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("make_demo_images", "--tenant", "nobody", "--count", "1")
    with pytest.raises(CommandError):
        call_command("make_demo_images", "--tenant", "demo2", "--dir", "../escape")


async def test_an_image_whose_name_is_not_utf8_is_processed(runner, writer) -> None:
    principal = await database_sync_to_async(make_principal)("pics", "dee")
    folder = tenant_root("pics") / "set"
    folder.mkdir(parents=True)
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: a lone surrogate once decoded
    _image(folder / name, "PNG")
    wire = Wire()
    result = await runner.call(_call(principal, "set"), send=wire.send, events=wire)
    assert not result.get("isError"), result
    assert result["structuredContent"]["succeeded"] == 1
    output = tenant_root("pics") / result["structuredContent"]["thumbnails"]
    manifest = json.loads((output / "manifest.json").read_bytes())
    assert manifest[0]["name"] == "caf\\udce9.png"  # the history's escape rule
