"""The official Python SDK 2.3 client across two web processes: the stream of a call drops
after its first progress and the SDK, reconnecting with Last-Event-ID through a client-side
failover to the other web process, gets the rest of the events and the result there; with
the tasks extension, a task made through one web process is polled through the other."""

import pytest

from clients.envs import MCP_SDK
from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import Cluster
from tests.http.test_official_clients import python_sdk


@pytest.fixture(scope="module")
def sdk_env() -> None:
    """The Python SDK 2.3 environment, built once (cached between runs)."""
    MCP_SDK.ensure()


@pytest.mark.usefixtures("sdk_env")
def test_python_sdk_2_3_resumes_a_dropped_stream_at_the_other_web_process(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    first, second = cluster.web
    first_url, second_url = f"{first.http_url}/mcp", f"{second.http_url}/mcp"
    seen = python_sdk(first_url, cluster_accounts.alice, "resume", second_url)
    assert seen["dropped"] is True
    posts = {sent for sent in seen["requests"] if sent.startswith("POST")}
    assert posts == {f"POST {first.port}"}, seen["requests"]  # the call went to the first
    assert f"GET {second.port}" in seen["requests"], seen["requests"]  # resumed at the other
    assert seen["progress"] == sorted(seen["progress"]) and seen["progress"][-1] == 10
    assert seen["result"]["structuredContent"]["processed"] == 10
    assert len(seen["event_ids"]) == len(set(seen["event_ids"]))


@pytest.mark.usefixtures("sdk_env")
def test_python_sdk_2_3_follows_a_task_made_on_one_web_process_on_the_other(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    first, second = cluster.web
    first_url, second_url = f"{first.http_url}/mcp", f"{second.http_url}/mcp"
    seen = python_sdk(first_url, cluster_accounts.alice, "task", second_url)
    assert seen["created"][0]["resultType"] == "task"
    assert f"tools/call {first.port}" in seen["requests"], seen["requests"]
    polls = [sent for sent in seen["requests"] if sent.startswith("tasks/get")]
    assert polls and set(polls) == {f"tasks/get {second.port}"}, seen["requests"]
    assert seen["polled"][-1] == "completed"
    assert seen["result"]["structuredContent"]["processed"] == 40
    # The SDK's listen on the task's run, through the other process, heard it change.
    run = f"mcp-realtime://runs/{seen['created'][0]['taskId']}"
    assert f"subscriptions/listen {second.port}" in seen["requests"], seen["requests"]
    assert seen["honored"] == [run]
    assert seen["updates"] and set(seen["updates"]) == {run}
