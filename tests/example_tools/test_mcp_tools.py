"""The example app's tools, run without a server through mcp_server.tools.testing."""

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from example_tools import mcp_tools
from mcp_server.tools.data_paths import tenant_root
from mcp_server.tools.testing import ProgressReport, ToolHarness, sample_principal

TENANT = "acme"


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    """The tenant's data directory, under a data root of this test's own."""
    settings.MCP_DATA_ROOT = tmp_path / "data"
    return tenant_root(TENANT)


def _harness(name: str) -> ToolHarness:
    return ToolHarness(name, principal=sample_principal(tenant_slug=TENANT))


async def test_text_stats_counts_and_ranks_words() -> None:
    harness = _harness("text_stats")
    result = await harness.call({"text": "The cat saw the dog.\nThe end", "top": 2})
    assert "isError" not in result
    assert result["structuredContent"] == {
        "characters": 28,
        "words": 7,
        "lines": 2,
        "top_words": [{"word": "the", "count": 3}, {"word": "cat", "count": 1}],
    }
    assert harness.progress == [] and harness.item_errors == []


async def test_text_stats_refuses_arguments_outside_its_schema() -> None:
    result = await _harness("text_stats").call({"text": "x", "top": 51})
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("Invalid arguments for tool 'text_stats': ")


async def test_checksum_files_hashes_reports_bytes_and_writes_item_errors(data_dir: Path) -> None:
    big = os.urandom(mcp_tools.CHUNK_BYTES * 2 + 10)
    (data_dir / "docs").mkdir()
    (data_dir / "docs" / "big.bin").write_bytes(big)
    (data_dir / "small.txt").write_text("hello")
    harness = _harness("checksum_files")

    result = await harness.call(
        {"paths": ["docs/big.bin", "missing.txt", "../other/x", "docs", "small.txt"]}
    )

    assert "isError" not in result
    summary = result["structuredContent"]
    assert summary == {
        "algorithm": "sha256",
        "files": [
            {"path": "docs/big.bin", "bytes": len(big), "digest": hashlib.sha256(big).hexdigest()},
            {"path": "small.txt", "bytes": 5, "digest": hashlib.sha256(b"hello").hexdigest()},
        ],
        "bytes": len(big) + 5,
        "errors": 3,
    }
    assert result["content"][0]["text"] == (
        f"2 file(s) hashed ({len(big) + 5:,} bytes, sha256), 3 error(s)"
    )
    assert [item for item, _ in harness.item_errors] == ["missing.txt", "../other/x", "docs"]
    assert "does not exist" in harness.item_errors[0][1]
    assert "'..' may not leave your data directory" in harness.item_errors[1][1]
    assert harness.item_errors[2][1] == "'docs' is not a regular file."
    total = len(big) + 5
    done = [report.done for report in harness.progress]
    assert done == sorted(done) and done[0] == 0 and done[-1] == total
    assert len(done) >= 4  # the start, one per chunk of the big file, the small file
    assert {report.total for report in harness.progress} == {total}
    assert harness.progress[-1] == ProgressReport(total, total, "small.txt")


async def test_checksum_files_with_no_readable_file_is_an_error(data_dir: Path) -> None:
    harness = _harness("checksum_files")
    result = await harness.call({"paths": ["nope", "/etc/passwd"], "algorithm": "md5"})
    assert result["isError"] is True
    assert "None of the 2 file(s) could be hashed" in result["content"][0]["text"]
    assert len(harness.item_errors) == 2


async def test_checksum_files_stops_when_cancelled(data_dir: Path) -> None:
    (data_dir / "large.bin").write_bytes(b"\0" * (mcp_tools.CHUNK_BYTES * 8))
    harness = _harness("checksum_files")
    harness.cancel_when(lambda report: report.done > 0)
    with pytest.raises(asyncio.CancelledError):
        await harness.call({"paths": ["large.bin"], "algorithm": "blake2b"})
    assert harness.recorded.cancel_requested
    assert harness.progress[0].done == 0
