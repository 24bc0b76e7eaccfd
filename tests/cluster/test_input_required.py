"""An input-required round trip (2026-07-28) across two web processes on PostgreSQL and Redis:
the question is asked by one process, the retry with its sealed state is answered by the
other, which has no memory of the first; history records both runs as they happened."""

import asyncio
from typing import Any

from PIL import Image

from mcp_server.client.http import HttpSession
from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import WAIT, Cluster, rest_api
from tests.e2e.support import wait_until

ELICITATION: dict[str, Any] = {"elicitation": {}}
CONFIRM_KEY = "confirm_delete"


def _result(reply: Any) -> dict[str, Any]:
    assert reply.status == 200, reply
    result = reply.messages[-1]["result"]
    assert isinstance(result, dict)
    return result


async def test_a_confirmation_asked_by_one_process_is_answered_at_the_other(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    photos = cluster.deployment.root / "data" / "alpha" / "mrtr-photos"
    photos.mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8), "red").save(photos / name)
    first, second = cluster.web
    here = HttpSession(f"{first.http_url}/mcp", cluster_accounts.alice)
    there = here.at(f"{second.http_url}/mcp")
    try:
        made = _result(
            await here.modern(
                "tools/call", {"name": "process_images", "arguments": {"directory": "mrtr-photos"}}
            )
        )
        run_id = made["structuredContent"]["thumbnails"].rsplit("/", 1)[-1]
        thumbnails = cluster.deployment.root / "data" / "alpha" / "thumbnails" / run_id
        assert thumbnails.is_dir()

        delete = {"name": "delete_run_thumbnails", "arguments": {"run_id": run_id}}
        asked = _result(await here.modern("tools/call", delete, capabilities=ELICITATION))
        assert asked["resultType"] == "input_required"
        assert "2 thumbnails" in asked["inputRequests"][CONFIRM_KEY]["params"]["message"]
        assert thumbnails.is_dir()

        # Alan (same tenant) presenting Alice's state at the other process: refused.
        retry = {
            **delete,
            "inputResponses": {CONFIRM_KEY: {"action": "accept", "content": {"confirm": True}}},
            "requestState": asked["requestState"],
        }
        stranger = HttpSession(f"{second.http_url}/mcp", cluster_accounts.alan)
        try:
            refused = await stranger.modern("tools/call", retry, capabilities=ELICITATION)
        finally:
            await stranger.close()
        assert refused.messages[-1]["error"] == {
            "code": -32602,
            "message": "requestState failed verification",
        }
        assert thumbnails.is_dir()

        done = _result(await there.modern("tools/call", retry, capabilities=ELICITATION))
        assert done["resultType"] == "complete"
        assert done["structuredContent"] == {"run": run_id, "deleted": 2, "outcome": "deleted"}
        assert not thumbnails.exists()

        # Each process writes its own run's history: wait until both are written.
        statuses: list[str] = []

        def both_written() -> bool:
            path = "/api/runs/?tool=delete_run_thumbnails"
            runs = rest_api(first, cluster_accounts.alice, path)["results"]
            statuses[:] = [run["status"] for run in runs]
            return len(statuses) >= 2 and "running" not in statuses[:2]

        await asyncio.to_thread(wait_until, both_written, WAIT, "both runs in history")
        assert statuses[:2] == ["succeeded", "input_required"]  # newest first
    finally:
        await here.close()
        await there.close()
