"""`delete_run_thumbnails` through a real server over WebSocket. Handshake era, with the
official Python SDK (1.30): the confirmation is an elicitation the SDK's callback answers; a
decline deletes nothing, a confirmation deletes, another tenant's user sees no such run.
2026-07-28, on a socket that never initialized: an input-required result, then the retry."""

from typing import Any

from mcp import ClientSession, types
from mcp.client.websocket import websocket_client
from mcp.shared.context import RequestContext
from PIL import Image

from mcp_server.client.wire import request_meta, with_request_meta
from tests.e2e.conftest import BETA, Accounts
from tests.e2e.support import Deployment, ServerProcess, raw_client, result_of


class Answers:
    """An elicitation callback answering with the next of `actions`, keeping what it asked."""

    def __init__(self, *actions: dict[str, Any]) -> None:
        self.actions = list(actions)
        self.asked: list[str] = []

    async def __call__(
        self, context: RequestContext[ClientSession, Any], params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        self.asked.append(params.message)
        return types.ElicitResult(**self.actions.pop(0))


def _structured(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.isError, result
    assert result.structuredContent is not None
    return result.structuredContent


async def test_it_asks_first_deletes_nothing_on_decline_and_deletes_on_confirmation(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    folder = deployment.root / "data" / BETA / "to-delete"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("one.png", "two.png"):
        Image.new("RGB", (16, 16), "blue").save(folder / name)
    answers = Answers({"action": "decline"}, {"action": "accept", "content": {"confirm": True}})
    async with (
        websocket_client(server.ws_url(accounts.bob)) as (read, write),
        ClientSession(read, write, elicitation_callback=answers) as session,
    ):
        await session.initialize()
        made = _structured(await session.call_tool("process_images", {"directory": "to-delete"}))
        run_id = made["thumbnails"].rsplit("/", 1)[-1]
        thumbnails = deployment.root / "data" / BETA / "thumbnails" / run_id
        assert thumbnails.is_dir()

        kept = _structured(await session.call_tool("delete_run_thumbnails", {"run_id": run_id}))
        assert kept == {"run": run_id, "deleted": 0, "outcome": "declined"}
        assert thumbnails.is_dir()
        done = _structured(await session.call_tool("delete_run_thumbnails", {"run_id": run_id}))
        assert done == {"run": run_id, "deleted": 2, "outcome": "deleted"}
        assert not thumbnails.exists()
        assert (
            answers.asked
            == [f"Delete the 2 thumbnails of run {run_id}? This cannot be undone."] * 2
        )

    nobody = Answers()
    # Alice, of tenant alpha (not carol: gamma is the tenant whose tool set tests change).
    async with (
        websocket_client(server.ws_url(accounts.alice)) as (read, write),
        ClientSession(read, write, elicitation_callback=nobody) as session,
    ):
        await session.initialize()
        unknown = await session.call_tool("delete_run_thumbnails", {"run_id": run_id})
    assert unknown.isError
    assert unknown.content[0].text == f"Unknown run: {run_id}"  # type: ignore[union-attr]
    assert nobody.asked == []


async def test_on_2026_07_28_over_a_websocket_the_retry_brings_the_confirmation(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    folder = deployment.root / "data" / BETA / "ws-delete"
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), "red").save(folder / "one.png")
    meta = request_meta("e2e", "1", capabilities={"elicitation": {}})

    def call(params: dict[str, Any]) -> dict[str, Any]:
        return with_request_meta(params, meta)

    # A socket that never sends initialize: every request describes itself.
    async with raw_client(server, accounts.bob, version=None) as client:
        made = result_of(
            await client.request(
                "tools/call",
                call({"name": "process_images", "arguments": {"directory": "ws-delete"}}),
            )
        )
        run_id = made["structuredContent"]["thumbnails"].rsplit("/", 1)[-1]
        thumbnails = deployment.root / "data" / BETA / "thumbnails" / run_id
        delete = {"name": "delete_run_thumbnails", "arguments": {"run_id": run_id}}
        asked = result_of(await client.request("tools/call", call(delete)))
        assert asked["resultType"] == "input_required"
        assert list(asked["inputRequests"]) == ["confirm_delete"]
        assert thumbnails.is_dir()
        retry = {
            **delete,
            "inputResponses": {
                "confirm_delete": {"action": "accept", "content": {"confirm": True}}
            },
            "requestState": asked["requestState"],
        }
        done = result_of(await client.request("tools/call", call(retry)))
        assert done["resultType"] == "complete"
        assert done["structuredContent"]["deleted"] == 1
        assert not thumbnails.exists()
