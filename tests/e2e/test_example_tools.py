"""The example app's tools through a real server: listed beside the built-ins, called with an
SDK client, progress streamed, item errors in the run's error log of the REST API."""

import hashlib
import os
from typing import Any

from mcp import ClientSession
from mcp.client.websocket import websocket_client

from tests.e2e.conftest import ALPHA, Accounts
from tests.e2e.support import Deployment, ServerProcess

CHUNK_BYTES = 1024 * 1024


async def test_checksum_files_streams_progress_and_logs_item_errors(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    folder = deployment.root / "data" / ALPHA / "checksums"
    folder.mkdir(parents=True, exist_ok=True)
    content = os.urandom(CHUNK_BYTES * 3)
    (folder / "large.bin").write_bytes(content)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with (
        websocket_client(server.ws_url(accounts.alice)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert {"text_stats", "checksum_files", "echo", "process_batch"} <= set(listed)
        assert listed["checksum_files"].inputSchema["required"] == ["paths"]
        stats = await session.call_tool("text_stats", {"text": "to be or not to be"})
        assert stats.structuredContent is not None
        assert stats.structuredContent["top_words"][0] == {"word": "to", "count": 2}
        result = await session.call_tool(
            "checksum_files",
            {"paths": ["checksums/large.bin", "checksums/absent.bin"]},
            progress_callback=on_progress,
        )
    assert not result.isError
    summary: dict[str, Any] | None = result.structuredContent
    assert summary is not None
    assert summary["files"] == [
        {
            "path": "checksums/large.bin",
            "bytes": len(content),
            "digest": hashlib.sha256(content).hexdigest(),
        }
    ]
    assert summary["errors"] == 1
    assert seen, "no progress notification arrived"
    assert seen[-1][:2] == (len(content), len(content))
    assert all(b[0] > a[0] for a, b in zip(seen, seen[1:], strict=False))

    status, runs = server.get_json("/api/runs/?tool=checksum_files", accounts.alice)
    assert status == 200, runs
    run = runs["results"][0]
    assert run["status"] == "succeeded"
    status, errors = server.get_json(f"/api/runs/{run['id']}/errors/", accounts.alice)
    assert status == 200, errors
    assert [(e["item"], "does not exist" in e["message"]) for e in errors["results"]] == [
        ("checksums/absent.bin", True)
    ]
