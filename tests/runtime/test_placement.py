"""Placement: where each tool runs (its declaration, the operator's overrides), and the checks
of MCP_TOOL_PLACEMENT; the goodbye names the tasks that stop with their process."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from mcp_server.placement import parse_overrides, where
from mcp_server.protocol.lifecycle import shutdown_notice
from mcp_server.tools.registry import build_tool, registry

TOOLS = ("add", "echo", "process_batch", "process_images")


async def _quick() -> str:
    return "done"


def _tool(**declared: str):
    return build_tool(_quick, name="quick", **declared)  # type: ignore[arg-type]


def test_built_ins_short_ones_local_long_ones_on_workers() -> None:
    placed = {name: where(registry.get(name), {}) for name in TOOLS}  # type: ignore[arg-type]
    assert placed == {
        "add": "local",
        "echo": "local",
        "process_batch": "worker",
        "process_images": "worker",
    }


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ({}, "worker"),  # auto and long: nothing said is taken as long
        ({"duration": "short"}, "local"),
        ({"placement": "worker", "duration": "short"}, "worker"),
        ({"placement": "local"}, "local"),
    ],
)
def test_a_declaration_decides(declared: dict[str, str], expected: str) -> None:
    assert where(_tool(**declared), {}) == expected


def test_an_override_wins_over_the_declaration() -> None:
    tool = _tool(duration="short")
    assert where(tool, {"quick": "worker"}) == "worker"
    assert where(_tool(placement="local"), {"quick": "auto"}) == "worker"
    assert where(tool, {"other": "worker"}) == "local"


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"placement": "gpu"}, "tool 'quick': placement must be one of auto, local, worker"),
        ({"duration": "medium"}, "tool 'quick': duration must be one of short, long"),
    ],
)
def test_an_unknown_declaration_is_refused(declared: dict[str, str], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        _tool(**declared)


def test_overrides_are_read_pair_by_pair() -> None:
    text = " add = worker , process_images=local,,echo=auto "
    assert parse_overrides(text, tools=TOOLS, workers=True) == {
        "add": "worker",
        "process_images": "local",
        "echo": "auto",
    }
    assert parse_overrides("", tools=TOOLS, workers=False) == {}
    assert parse_overrides("process_batch=local", tools=TOOLS, workers=False) == {
        "process_batch": "local"
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("add", "MCP_TOOL_PLACEMENT: 'add' is not TOOL=PLACEMENT (e.g. add=worker,"),
        ("=local", "MCP_TOOL_PLACEMENT: '=local' is not TOOL=PLACEMENT"),
        ("ad=local", "MCP_TOOL_PLACEMENT: no tool is called 'ad' (tools: add, echo, "),
        ("add=gpu", "MCP_TOOL_PLACEMENT: 'add=gpu': the placement must be auto, local, worker"),
        ("add=local,add=worker", "MCP_TOOL_PLACEMENT: 'add' is named twice"),
    ],
)
def test_a_bad_override_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_overrides(text, tools=TOOLS, workers=True)
    assert str(raised.value).startswith(message)


def test_a_worker_placement_without_workers_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="'add=worker' needs workers: set MCP_EXEC"):
        parse_overrides("add=worker", tools=TOOLS, workers=False)


def test_the_goodbye_tells_which_tasks_stop_here() -> None:
    inline = shutdown_notice(tasks_keep_running=False)["params"]["data"]
    assert inline["message"].endswith("Operations running on it, tasks included, are interrupted.")
    assert "interruptedTasks" not in inline
    on_workers = shutdown_notice(tasks_keep_running=True)["params"]["data"]
    assert on_workers["message"].endswith("Tasks keep running and can be resumed from any server.")
    assert "interruptedTasks" not in on_workers
    mixed = shutdown_notice(tasks_keep_running=True, interrupted_tasks=["t1", "t2"])
    data = mixed["params"]["data"]
    assert data["reason"] == "shutdown"
    assert data["interruptedTasks"] == ["t1", "t2"]
    assert "Tasks running on workers keep running" in data["message"]
    assert "2 running on this server are interrupted" in data["message"]
