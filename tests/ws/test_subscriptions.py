"""resources/subscribe on the full ASGI stack in one process: bounded per session, watched
while subscribed, and nothing left watched after unsubscribe or close."""

from collections.abc import Callable

from pytest_django.fixtures import Settings

from mcp_server.runtime.history import HistoryWriter
from tests.e2e.support import wait_until_async
from tests.ws.conftest import TIMEOUT, serving, ws_connect

LONG = {"count": 100_000, "item_ms": 1}


async def test_subscriptions_are_bounded_and_end_with_unsubscribe_and_close(
    token_path: Callable[..., str], settings: Settings, history: HistoryWriter
) -> None:
    settings.MCP_MAX_SUBSCRIPTIONS_PER_SESSION = 2
    settings.MCP_RESOURCE_UPDATE_INTERVAL = 0.05
    async with serving(history) as runtime:
        async with ws_connect(runtime, token_path()) as (client, _):
            await client.initialize()
            started = await client.reply(
                "tools/call", {"name": "process_batch", "arguments": LONG, "task": {}}
            )
            run_id = started["result"]["task"]["taskId"]
            run = f"mcp-realtime://runs/{run_id}"
            for uri in (run, f"{run}/errors"):
                assert await client.reply("resources/subscribe", {"uri": uri}) == {
                    "jsonrpc": "2.0",
                    "id": client._next_id,
                    "result": {},
                }
            again = await client.reply("resources/subscribe", {"uri": run})
            assert again["result"] == {}, "a URI subscribed twice counts once"
            over = await client.reply("resources/subscribe", {"uri": "mcp-realtime://data/"})
            assert over["error"]["code"] == -32001
            assert over["error"]["data"] == {"limit": "subscriptions_per_session", "max": 2}

            def watched() -> bool:
                return run_id in {str(key) for key in runtime.run_updates.watched}

            await wait_until_async(watched, TIMEOUT, "the runner to hold the watch")
            while not any(
                m.get("method") == "notifications/resources/updated" and m["params"] == {"uri": run}
                for m in client.notifications
            ):
                client.notifications.append(await client.receive())

            for uri in (run, f"{run}/errors"):
                assert (await client.reply("resources/unsubscribe", {"uri": uri}))["result"] == {}
            await wait_until_async(lambda: not watched(), TIMEOUT, "the watch to end")
            assert (await client.reply("resources/subscribe", {"uri": run}))["result"] == {}
            await wait_until_async(watched, TIMEOUT, "the runner to hold the watch again")
        await wait_until_async(lambda: not watched(), TIMEOUT, "closing to end the watch")


async def test_unknown_and_malformed_subscriptions_are_refused(
    token_path: Callable[..., str], history: HistoryWriter
) -> None:
    async with serving(history) as runtime, ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        for params, code in (
            ({"uri": "mcp-realtime://runs/01900000-0000-7000-8000-000000000000"}, -32002),
            ({"uri": "mcp-realtime://runs/not-a-uuid/errors"}, -32002),
            ({"uri": "mcp-realtime://data/no-such-directory"}, -32002),
            ({"uri": "relative/path"}, -32602),
            ({}, -32602),
        ):
            reply = await client.reply("resources/subscribe", params)
            assert reply["error"]["code"] == code, (params, reply)
        unknown = await client.reply("resources/unsubscribe", {"uri": "mcp-realtime://x"})
        assert unknown["result"] == {}
