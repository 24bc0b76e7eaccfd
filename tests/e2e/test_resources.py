"""Runs, data directories and thumbnails as resources, and the service's prompts, through a real
server: listed with cursors, read, scoped by the caller, and checked by the SDK's own types."""

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.websocket import websocket_client
from mcp.types import (
    BlobResourceContents,
    PaginatedRequestParams,
    PromptReference,
    ResourceTemplateReference,
    TextResourceContents,
)
from PIL import Image
from pydantic import AnyUrl

from tests.e2e.conftest import BETA, Accounts, ServerFactory
from tests.e2e.support import Deployment, ServerProcess, error_of, raw_client, result_of

RESOURCE_NOT_FOUND = -32002
INVALID_PARAMS = -32602


@pytest.fixture(scope="module")
def photos(deployment: Deployment) -> Path:
    """Tenant beta's `photos` directory: two images and one file that is not an image."""
    folder = deployment.root / "data" / BETA / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in (("red.png", "red"), ("blue.png", "blue")):
        Image.new("RGB", (64, 32), colour).save(folder / name)
    (folder / "notes.png").write_bytes(b"not an image at all")
    return folder


@pytest.fixture(scope="module")
def small_pages(server_factory: ServerFactory, accounts: Accounts) -> ServerProcess:
    """A server listing two runs (and two templates) per page, for every test here."""
    return server_factory(MCP_RESOURCES_PAGE_SIZE="2")


def _text(contents: Any) -> Any:
    assert isinstance(contents, TextResourceContents), contents
    assert contents.mimeType == "application/json"
    return json.loads(contents.text)


async def test_runs_are_listed_newest_first_across_pages_and_read_as_the_api_shows_them(
    small_pages: ServerProcess, accounts: Accounts
) -> None:
    async with (
        websocket_client(small_pages.ws_url(accounts.bob)) as (read, write),
        ClientSession(read, write) as session,
    ):
        hello = await session.initialize()
        assert hello.capabilities.resources is not None
        assert hello.capabilities.resources.subscribe is True
        assert hello.capabilities.prompts is not None
        assert hello.capabilities.completions is not None
        for a in range(3):
            await session.call_tool("add", {"a": a, "b": 1})
        first = await session.list_resources()
        uris = [str(resource.uri) for resource in first.resources]
        assert uris[0] == "mcp-realtime://data/"
        assert first.nextCursor is not None
        runs = [uri for uri in uris if uri.startswith("mcp-realtime://runs/")]
        cursor: str | None = first.nextCursor
        while cursor is not None:
            page = await session.list_resources(params=PaginatedRequestParams(cursor=cursor))
            assert all(str(r.uri).startswith("mcp-realtime://runs/") for r in page.resources)
            runs += [str(resource.uri) for resource in page.resources]
            cursor = page.nextCursor
        assert len(runs) == len(set(runs)) >= 3
        newest = await session.read_resource(AnyUrl(runs[0]))
        summary = _text(newest.contents[0])
        assert summary["tool"] == "add"
        assert summary["arguments"] == {"a": 2, "b": 1}
        assert summary["status"] == "succeeded"
        assert summary["result"] is not None
        second = _text((await session.read_resource(AnyUrl(runs[1]))).contents[0])
        assert second["arguments"] == {"a": 1, "b": 1}
        templates: dict[str, str] = {}
        cursor = None
        while True:
            listed = await session.list_resource_templates(
                params=PaginatedRequestParams(cursor=cursor)
            )
            templates |= {t.name: t.uriTemplate for t in listed.resourceTemplates}
            cursor = listed.nextCursor
            if cursor is None:
                break
        assert templates["run"] == "mcp-realtime://runs/{id}"
        assert templates["run-errors"] == "mcp-realtime://runs/{id}/errors"
        assert templates["run-thumbnail"] == "mcp-realtime://runs/{id}/thumbnails/{name}"
        assert templates["data-directory"] == "mcp-realtime://data/{+path}"


async def test_a_process_images_run_gives_its_error_log_thumbnails_prompts_and_completions(
    small_pages: ServerProcess, accounts: Accounts, photos: Path
) -> None:
    async with (
        websocket_client(small_pages.ws_url(accounts.bob)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listing = _text(
            (await session.read_resource(AnyUrl("mcp-realtime://data/photos"))).contents[0]
        )
        assert {f["name"] for f in listing["files"]} == {"red.png", "blue.png", "notes.png"}
        outcome = await session.call_tool("process_images", {"directory": "photos"})
        assert outcome.structuredContent is not None
        run_id = outcome.structuredContent["thumbnails"].rsplit("/", 1)[-1]

        errors = _text(
            (await session.read_resource(AnyUrl(f"mcp-realtime://runs/{run_id}/errors"))).contents[
                0
            ]
        )
        assert errors["error_count"] == 1
        assert [e["item"] for e in errors["errors"]] == ["notes.png"]
        assert errors["truncated"] is False

        thumbnail = await session.read_resource(
            AnyUrl(f"mcp-realtime://runs/{run_id}/thumbnails/red.png.jpg")
        )
        blob = thumbnail.contents[0]
        assert isinstance(blob, BlobResourceContents)
        assert blob.mimeType == "image/jpeg"
        with Image.open(io.BytesIO(base64.b64decode(blob.blob))) as image:
            assert image.format == "JPEG"
            assert max(image.size) <= 128

        listed = {prompt.name: prompt for prompt in (await session.list_prompts()).prompts}
        assert {"explain_run_errors", "process_directory"} <= set(listed)
        assert [a.name for a in listed["explain_run_errors"].arguments or []] == ["run_id"]
        explained = await session.get_prompt("explain_run_errors", {"run_id": run_id})
        assert explained.messages[0].role == "user"
        embedded = [m.content.resource for m in explained.messages[1:]]  # type: ignore[union-attr]
        assert [str(r.uri) for r in embedded] == [
            f"mcp-realtime://runs/{run_id}",
            f"mcp-realtime://runs/{run_id}/errors",
        ]
        processed = await session.get_prompt("process_directory", {"directory": "photos"})
        assert "process_images" in processed.messages[0].content.text  # type: ignore[union-attr]

        directory = {"name": "directory", "value": "ph"}
        by_prompt = await session.complete(
            PromptReference(type="ref/prompt", name="process_directory"), directory
        )
        assert by_prompt.completion.values == ["photos"]
        data_template = ResourceTemplateReference(
            type="ref/resource", uri="mcp-realtime://data/{+path}"
        )
        by_template = await session.complete(data_template, {"name": "path", "value": "p"})
        assert by_template.completion.values == ["photos"]
        runs = await session.complete(
            PromptReference(type="ref/prompt", name="explain_run_errors"),
            {"name": "run_id", "value": run_id[:20]},
        )
        assert runs.completion.values == [run_id]
        assert runs.completion.hasMore is False


async def test_another_callers_run_is_exactly_an_unknown_resource(
    small_pages: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(small_pages, accounts.bob) as bob:
        added = result_of(await bob.call_tool("add", {"a": 1, "b": 2}))
        assert added["content"]
        listed = result_of(await bob.request("resources/list"))
        run_uri = next(r["uri"] for r in listed["resources"] if "/runs/" in r["uri"])
    unknown = "mcp-realtime://runs/01900000-0000-7000-8000-000000000000"
    async with raw_client(small_pages, accounts.alice) as alice:
        for uri in (run_uri, f"{run_uri}/errors", unknown, "mcp-realtime://nothing-here"):
            error = error_of(await alice.request("resources/read", {"uri": uri}))
            assert error["code"] == RESOURCE_NOT_FOUND, (uri, error)
            assert error["data"] == {"uri": uri}
        for params in ({}, {"uri": 7}, {"uri": ""}, {"uri": "no scheme here"}):
            error = error_of(await alice.request("resources/read", params))
            assert error["code"] == INVALID_PARAMS, (params, error)
        prompt = await alice.request(
            "prompts/get", {"name": "explain_run_errors", "arguments": {"run_id": run_uri[-36:]}}
        )
        assert error_of(prompt)["code"] == INVALID_PARAMS
        refused: list[dict[str, Any]] = [
            {"name": "no_such_prompt"},
            {"name": "explain_run_errors"},
            {"name": "explain_run_errors", "arguments": {"run_id": 5}},
            {"name": "explain_run_errors", "arguments": {"run_id": "x", "extra": "y"}},
            {"name": "process_directory", "arguments": {"directory": "../beta"}},
        ]
        for params in refused:
            error = error_of(await alice.request("prompts/get", params))
            assert error["code"] == INVALID_PARAMS, (params, error)
        completion = await alice.request(
            "completion/complete",
            {
                "ref": {"type": "ref/resource", "uri": "mcp-realtime://runs/{id}"},
                "argument": {"name": "id", "value": run_uri[-36:-12]},
            },
        )
        assert result_of(completion)["completion"]["values"] == []
        for ref, name in (
            ({"type": "ref/prompt", "name": "no_such_prompt"}, "x"),
            ({"type": "ref/prompt", "name": "explain_run_errors"}, "not_an_argument"),
            ({"type": "ref/resource", "uri": "mcp-realtime://nothing/{x}"}, "x"),
            ({"type": "ref/resource", "uri": "mcp-realtime://runs/{id}"}, "name"),
            ({"type": "ref/tool", "name": "process_images"}, "directory"),
        ):
            asked = {"ref": ref, "argument": {"name": name, "value": ""}}
            error = error_of(await alice.request("completion/complete", asked))
            assert error["code"] == INVALID_PARAMS, (asked, error)
        bad_cursor = await alice.request("resources/list", {"cursor": "bm90LW91cnM="})
        assert error_of(bad_cursor)["code"] == INVALID_PARAMS
