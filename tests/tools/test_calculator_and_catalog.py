"""The built-in calculator and echo tools, and per-tenant catalogs."""

from typing import Any

import orjson
import pytest

import mcp_server.tools.builtin  # noqa: F401  (registers the built-in tools)
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.invoke import call_tool
from mcp_server.tools.catalog import ToolCatalog, catalog_for
from mcp_server.tools.registry import Tool, ToolRegistry, build_tool, registry
from mcp_server.tools.testing import RecordedCall

BUILTIN = ("add", "subtract", "multiply", "divide", "echo")


def _builtin(name: str) -> Tool:
    found = registry.get(name)
    assert found is not None, f"built-in tool {name!r} is not registered"
    return found


async def _call(name: str, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    return await call_tool(_builtin(name), arguments, context)


def _text(result: dict[str, Any]) -> str:
    text = result["content"][0]["text"]
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize(
    ("name", "a", "b", "expected"),
    [
        ("add", 2, 3, 5),
        ("add", 0.1, 0.2, 0.1 + 0.2),
        ("add", -1.5, 1.5, 0),
        ("subtract", 2, 5, -3),
        ("subtract", 1e10, 1, 1e10 - 1),
        ("multiply", 1.5, 4, 6.0),
        ("multiply", -2, 0, 0),
        ("divide", 7, 2, 3.5),
        ("divide", 1, 3, 1 / 3),
        ("divide", -9, 3, -3),
        ("divide", 0, 5, 0),
    ],
)
async def test_arithmetic(
    name: str, a: float, b: float, expected: float, context: ToolContext
) -> None:
    result = await _call(name, {"a": a, "b": b}, context)
    assert "isError" not in result
    assert result["structuredContent"] == {"result": expected}
    assert orjson.loads(_text(result)) == {"result": expected}


async def test_divide_by_zero(context: ToolContext) -> None:
    for zero in (0, 0.0, -0.0):
        result = await _call("divide", {"a": 1, "b": zero}, context)
        assert result["isError"] is True
        assert "zero" in _text(result).lower()
        assert "structuredContent" not in result


@pytest.mark.parametrize(
    ("name", "a", "b"),
    [
        ("multiply", 1e308, 10),
        ("add", 1.7e308, 1.7e308),
        ("subtract", -1.7e308, 1.7e308),
        ("divide", 1e308, 1e-10),
    ],
)
async def test_overflow_is_an_error_result(
    name: str, a: float, b: float, context: ToolContext
) -> None:
    result = await _call(name, {"a": a, "b": b}, context)
    assert result["isError"] is True
    assert "too large" in _text(result)


async def test_large_integers_give_a_float_result(context: ToolContext) -> None:
    # Both arguments are valid JSON numbers (within 64 bits) and the product, 2**124, is well
    # inside the float range: the tool declares float arithmetic and must answer.
    result = await _call("multiply", {"a": 2**62, "b": 2**62}, context)
    assert "isError" not in result, _text(result)
    assert result["structuredContent"]["result"] == pytest.approx(float(2**124))


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"a": 1},
        {"a": "1", "b": 2},
        {"a": True, "b": 2},
        {"a": None, "b": 2},
        {"a": 1, "b": 2, "c": 3},
    ],
)
async def test_calculator_rejects_bad_arguments(
    arguments: dict[str, Any], context: ToolContext
) -> None:
    result = await _call("add", arguments, context)
    assert result["isError"] is True
    assert _text(result).startswith("Invalid arguments for tool 'add'")


def test_calculator_definitions() -> None:
    for name in ("add", "subtract", "multiply", "divide"):
        definition = _builtin(name).definition
        assert definition["inputSchema"]["required"] == ["a", "b"]
        assert definition["inputSchema"]["additionalProperties"] is False
        assert definition["outputSchema"]["properties"]["result"]["type"] == "number"
        assert definition["annotations"]["readOnlyHint"] is True
        assert definition["title"] == name.capitalize()
        assert definition["description"]


async def test_echo_returns_text_and_logs_at_debug(
    context: ToolContext, events: RecordedCall
) -> None:
    result = await _call("echo", {"text": "héllo"}, context)
    assert result == {"content": [{"type": "text", "text": "héllo"}]}
    assert events.logs == [("debug", "echoing 5 characters", "t")]
    assert "ctx" not in _builtin("echo").input_schema["properties"]


# --- catalogs ----------------------------------------------------------------------------


def test_catalog_for_every_tool() -> None:
    catalog = catalog_for(None)
    names = [tool.name for tool in catalog.tools]
    assert set(BUILTIN) <= set(names)
    assert len(names) == len(set(names))
    assert catalog.get("add") is registry.get("add")


def test_catalog_filters_to_enabled_tools_in_registry_order() -> None:
    catalog = catalog_for(frozenset({"echo", "add", "no-such-tool"}))
    assert [tool.name for tool in catalog.tools] == ["add", "echo"]
    assert len(catalog) == 2
    assert catalog.get("divide") is None
    assert catalog.get("no-such-tool") is None
    assert catalog.get("echo") is registry.get("echo")


def test_catalog_is_cached_per_set() -> None:
    first = catalog_for(frozenset({"add", "divide"}))
    assert catalog_for(frozenset({"divide", "add"})) is first
    assert catalog_for(frozenset({"add"})) is not first
    assert catalog_for(None) is catalog_for(None)


def test_every_tool_but_the_disabled_ones_includes_tools_added_later() -> None:
    catalog = catalog_for(None, frozenset({"echo", "no-such-tool"}))
    names = [tool.name for tool in catalog.tools]
    assert "echo" not in names
    assert names == [tool.name for tool in registry if tool.name != "echo"]
    assert catalog.refusal("echo") == "Tool 'echo' is not enabled for your tenant"
    assert catalog.refusal("no-such-tool") == "Unknown tool: no-such-tool"


def test_empty_enabled_set_gives_an_empty_catalog() -> None:
    catalog = catalog_for(frozenset())
    assert len(catalog) == 0
    assert catalog.tools == ()


def test_catalog_from_a_private_registry() -> None:
    reg = ToolRegistry()

    async def one() -> str:
        return "1"

    async def two() -> str:
        return "2"

    reg.register(build_tool(one))
    reg.register(build_tool(two))
    catalog = catalog_for(frozenset({"two", "add"}), source=reg)
    assert [tool.name for tool in catalog.tools] == ["two"]
    assert [tool.name for tool in catalog_for(None, source=reg).tools] == ["one", "two"]
    assert [tool.name for tool in catalog_for(None, frozenset({"one"}), reg).tools] == ["two"]


def test_tool_catalog_directly() -> None:
    reg = ToolRegistry()

    async def only() -> str:
        return ""

    made = reg.register(build_tool(only))
    catalog = ToolCatalog((made,))
    assert catalog.get("only") is made
    assert len(catalog) == 1


def test_an_opt_in_tool_belongs_only_to_tenants_that_name_it() -> None:
    reg = ToolRegistry()

    async def public() -> str:
        return ""

    async def fixture() -> str:
        return ""

    reg.register(build_tool(public))
    reg.register(build_tool(fixture, opt_in=True))
    every = catalog_for(None, source=reg)
    assert [tool.name for tool in every.tools] == ["public"]
    # To a tenant without it, the tool does not exist (its name is not even confirmed).
    assert every.refusal("fixture") == "Unknown tool: fixture"
    assert catalog_for(None, frozenset({"public"}), reg).tools == ()
    named = catalog_for(frozenset({"fixture"}), source=reg)
    assert [tool.name for tool in named.tools] == ["fixture"]
    assert named.refusal("public") == "Tool 'public' is not enabled for your tenant"
