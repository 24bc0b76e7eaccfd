"""The official clients end to end over Streamable HTTP, each in its own pinned environment
(clients/envs.py) as a subprocess against a real server: the Python SDK 2.3 (`mcp.Client`),
the TypeScript SDK v2 (`@modelcontextprotocol/client`) and the Inspector CLI; both SDKs in
the handshake era and in 2026-07-28."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from clients.envs import MCP_SDK, NODE, ROOT
from mcp_server.client.wire import MODERN_VERSION
from mcp_server.processes import run_command, scrubbed_env
from tests.e2e.conftest import Accounts
from tests.e2e.history import wait_for_operation
from tests.e2e.support import Deployment, ServerProcess
from tests.http.conftest import Member, http_session, mcp_url

PYTHON_CLIENT = ROOT / "clients" / "sdk_client.py"
NODE_CLIENT = ROOT / "clients" / "node" / "sdk_client.mjs"
# The Inspector CLI reads its own package.json relative to the working directory, so it runs
# from its build directory (from anywhere else, 1.0.3 fails to start).
INSPECTOR = NODE.home / "node_modules" / "@modelcontextprotocol" / "inspector-cli" / "build"
CLIENT_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def python_sdk_env() -> None:
    """The Python SDK 2.3 environment, built once (cached between runs)."""
    MCP_SDK.ensure()


@pytest.fixture(scope="module")
def client_envs(python_sdk_env: None) -> None:
    """The Python SDK 2.3 and Node environments, built once (cached between runs)."""
    NODE.ensure()


def run_client(command: list[str], token: str, cwd: Path = ROOT) -> dict[str, Any]:
    """Run a client script with MCP_TOKEN set; the JSON object it printed last."""
    env = scrubbed_env() | {"MCP_TOKEN": token}
    done = run_command(command, env=env, cwd=cwd, timeout=CLIENT_TIMEOUT)
    assert done.returncode == 0, f"{command[:3]} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def python_sdk(url: str, token: str, *scenario: str) -> dict[str, Any]:
    """clients/sdk_client.py in the mcp 2.3 environment, against the endpoint `url` (`scenario`
    may end with `--mode legacy`: the handshake era; the SDK's default speaks 2026-07-28)."""
    return run_client([str(MCP_SDK.python), str(PYTHON_CLIENT), url, *scenario], token)


def typescript_sdk(server: ServerProcess, token: str, *scenario: str) -> dict[str, Any]:
    """clients/node/sdk_client.mjs on Node (`scenario` may end with `auto`: the SDK's opt-in
    negotiation, 2026-07-28 with this server; its default is the handshake era; `confirm`
    pins 2026-07-28)."""
    return run_client(["node", str(NODE_CLIENT), mcp_url(server), *scenario], token)


def inspector(server: ServerProcess, token: str, *method: str) -> dict[str, Any]:
    """The Inspector CLI: one method against the server, with the bearer header."""
    command = ["node", "index.js", mcp_url(server), "--transport", "http", "--method", *method]
    command += ["--header", f"Authorization: Bearer {token}"]
    env = scrubbed_env()
    done = run_command(command, env=env, cwd=INSPECTOR, timeout=CLIENT_TIMEOUT)
    assert done.returncode == 0, f"inspector {method} failed:\n{done.stdout}\n{done.stderr}"
    return dict(json.loads(done.stdout))


def assert_session(seen: dict[str, Any], version: str = "2025-11-25") -> None:
    """What a connect, list, add and process_batch with progress must have shown a client
    speaking `version`."""
    assert seen["protocol_version"] == version
    assert seen["server"]["name"] == "mcp-realtime"
    assert {"add", "process_batch", "sleep"} <= set(seen["tools"])
    assert seen["add"]["structuredContent"] == {"result": 42}
    assert seen["batch"]["structuredContent"]["processed"] == 5
    values = [report["progress"] for report in seen["progress"]]
    assert values and values == sorted(values) and values[-1] == 5
    assert all(report["total"] == 5 for report in seen["progress"])


def assert_cancelled(deployment: Deployment, member: Member, seen: dict[str, Any]) -> None:
    """The client cancelled after the first progress, its session went on, and the server
    stopped the call (history says cancelled)."""
    assert seen["cancelled_after_progress"] is True
    assert seen["add_after"]["structuredContent"] == {"result": 3}
    row = wait_for_operation(
        deployment,
        f"{member.username}'s process_batch to be cancelled",
        tool="process_batch",
        status="cancelled",
        username=member.username,
    )
    assert row["status"] == "cancelled"


def assert_stateless(seen: dict[str, Any]) -> None:
    """The SDK spoke 2026-07-28: every POST named its method in Mcp-Method, no session."""
    assert seen["protocol_version"] == MODERN_VERSION
    assert seen["mcp_methods"] and None not in seen["mcp_methods"], seen["mcp_methods"]
    assert "initialize" not in seen["mcp_methods"]
    assert seen["session_ids_minted"] == 0


@pytest.mark.usefixtures("client_envs")
def test_python_sdk_2_3_discovers_lists_and_calls_with_progress_in_2026_07_28(
    served: ServerProcess, accounts: Accounts
) -> None:
    seen = python_sdk(mcp_url(served), accounts.alice, "session")
    assert_session(seen, MODERN_VERSION)
    assert_stateless(seen)
    assert seen["mcp_methods"][0] == "server/discover"
    assert seen["discovered"]["supportedVersions"] == [MODERN_VERSION]
    assert seen["discovered"]["cacheScope"] == "public"


@pytest.mark.usefixtures("client_envs")
def test_python_sdk_2_3_in_the_handshake_era_connects_lists_and_calls_with_progress(
    served: ServerProcess, accounts: Accounts
) -> None:
    seen = python_sdk(mcp_url(served), accounts.alice, "session", "--mode", "legacy")
    assert_session(seen)
    assert set(seen["mcp_methods"]) == {None}  # the handshake era mirrors nothing in headers
    assert seen["session_ids_minted"] == 1


@pytest.mark.usefixtures("client_envs")
def test_python_sdk_2_3_cancels_a_call_by_closing_its_stream_in_2026_07_28(
    served: ServerProcess, deployment: Deployment, member: Member
) -> None:
    seen = python_sdk(mcp_url(served), member.token, "cancel")
    assert_stateless(seen)
    assert "notifications/cancelled" not in seen["mcp_methods"]
    assert_cancelled(deployment, member, seen)


@pytest.mark.usefixtures("client_envs")
def test_python_sdk_2_3_in_the_handshake_era_cancels_a_call(
    served: ServerProcess, deployment: Deployment, member: Member
) -> None:
    seen = python_sdk(mcp_url(served), member.token, "cancel", "--mode", "legacy")
    assert seen["protocol_version"] == "2025-11-25"
    assert_cancelled(deployment, member, seen)


@pytest.mark.usefixtures("client_envs")
def test_typescript_sdk_v2_connects_lists_and_calls_with_progress(
    served: ServerProcess, accounts: Accounts
) -> None:
    assert_session(typescript_sdk(served, accounts.alice, "session"))


@pytest.mark.usefixtures("client_envs")
def test_typescript_sdk_v2_cancels_a_call(
    served: ServerProcess, deployment: Deployment, member: Member
) -> None:
    seen = typescript_sdk(served, member.token, "cancel")
    assert seen["error"] == "cancelled by the test client"
    assert_cancelled(deployment, member, seen)


@pytest.mark.usefixtures("client_envs")
def test_typescript_sdk_v2_discovers_lists_and_calls_with_progress_in_2026_07_28(
    served: ServerProcess, accounts: Accounts
) -> None:
    seen = typescript_sdk(served, accounts.alice, "session", "auto")
    assert_session(seen, MODERN_VERSION)
    assert_stateless(seen)
    assert seen["mcp_methods"][0] == "server/discover"


@pytest.mark.usefixtures("client_envs")
def test_typescript_sdk_v2_cancels_a_call_in_2026_07_28(
    served: ServerProcess, deployment: Deployment, member: Member
) -> None:
    seen = typescript_sdk(served, member.token, "cancel", "auto")
    assert_stateless(seen)
    assert "notifications/cancelled" not in seen["mcp_methods"]  # it closed the stream
    assert seen["error"] == "cancelled by the test client"
    assert_cancelled(deployment, member, seen)


@pytest.mark.usefixtures("client_envs")
def test_inspector_cli_lists_and_calls(served: ServerProcess, accounts: Accounts) -> None:
    listed = inspector(served, accounts.alice, "tools/list")
    assert {"add", "process_batch"} <= {tool["name"] for tool in listed["tools"]}
    added = inspector(
        served, accounts.alice, "tools/call", "--tool-name", "add", "--tool-arg", "a=2", "b=3"
    )
    assert added["structuredContent"] == {"result": 5}
    assert not added.get("isError")


@pytest.mark.usefixtures("python_sdk_env")
def test_python_sdk_2_3_with_the_tasks_extension_polls_a_task_to_its_result(
    served: ServerProcess, accounts: Accounts
) -> None:
    seen = python_sdk(mcp_url(served), accounts.alice, "task")
    assert seen["protocol_version"] == MODERN_VERSION
    (created,) = seen["created"]
    assert (created["resultType"], created["status"]) == ("task", "working")
    assert seen["polled"][-1] == "completed"
    assert seen["result"]["structuredContent"]["processed"] == 40


@pytest.mark.usefixtures("client_envs")
@pytest.mark.parametrize("sdk", ["python", "typescript"])
async def test_the_sdks_answer_an_input_required_confirmation_on_2026_07_28(
    served: ServerProcess, deployment: Deployment, member: Member, sdk: str
) -> None:
    """delete_run_thumbnails asks; each SDK fulfils the elicitation through its handler and
    retries with the answer and the request state: a decline keeps, an acceptance deletes."""
    folder = deployment.root / "data" / member.tenant / f"{sdk}-photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("one.png", "two.png"):
        Image.new("RGB", (8, 8), "green").save(folder / name)
    async with http_session(served, member.token, initialize=False) as client:
        made = await client.modern(
            "tools/call", {"name": "process_images", "arguments": {"directory": f"{sdk}-photos"}}
        )
    run_id = made.messages[-1]["result"]["structuredContent"]["thumbnails"].rsplit("/", 1)[-1]
    thumbnails = deployment.root / "data" / member.tenant / "thumbnails" / run_id
    question = f"Delete the 2 thumbnails of run {run_id}? This cannot be undone."

    def confirm(answer: str) -> dict[str, Any]:
        if sdk == "python":
            return python_sdk(mcp_url(served), member.token, "confirm", run_id, answer)
        return typescript_sdk(served, member.token, "confirm", run_id, answer)

    declined = await asyncio.to_thread(confirm, "decline")
    assert declined["protocol_version"] == "2026-07-28"
    assert declined["asked"] == [question]
    assert declined["result"]["structuredContent"]["outcome"] == "declined"
    assert thumbnails.is_dir()

    accepted = await asyncio.to_thread(confirm, "accept")
    assert accepted["asked"] == [question]
    assert accepted["result"]["structuredContent"] == {
        "run": run_id,
        "deleted": 2,
        "outcome": "deleted",
    }
    assert not thumbnails.exists()
