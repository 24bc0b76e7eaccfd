"""runtime.invoke.call_tool: validation, execution, and every way a call can end."""

import asyncio
import dataclasses
import logging
import re
import threading
from typing import Any

import orjson
import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.invoke import call_tool
from mcp_server.tools.registry import Tool, ToolError, build_tool
from mcp_server.tools.testing import RecordedCall

REFERENCE = re.compile(r"reference ([0-9a-f]{12})")


class Pair(TypedDict):
    left: int
    right: int


class Labelled(BaseModel):
    label: str
    size: int


@dataclasses.dataclass
class Box:
    width: int
    height: int


def _text(result: dict[str, Any]) -> str:
    assert len(result["content"]) == 1
    item = result["content"][0]
    assert item["type"] == "text"
    text = item["text"]
    assert isinstance(text, str)
    return text


async def test_async_tool_result_as_text(context: ToolContext) -> None:
    async def shout(text: str) -> str:
        return text.upper()

    result = await call_tool(build_tool(shout), {"text": "hi"}, context)
    assert result == {"content": [{"type": "text", "text": "HI"}]}


async def test_plain_non_text_value_becomes_json_text(context: ToolContext) -> None:
    async def numbers() -> list[int]:
        return [1, 2, 3]

    result = await call_tool(build_tool(numbers), {}, context)
    assert result == {"content": [{"type": "text", "text": "[1,2,3]"}]}
    assert "isError" not in result


async def test_structured_result_from_typeddict(context: ToolContext) -> None:
    async def pair(a: int) -> Pair:
        return {"left": a, "right": a + 1}

    result = await call_tool(build_tool(pair), {"a": 1}, context)
    assert result["structuredContent"] == {"left": 1, "right": 2}
    assert orjson.loads(_text(result)) == {"left": 1, "right": 2}
    assert "isError" not in result


async def test_structured_result_from_pydantic_model(context: ToolContext) -> None:
    async def label() -> Labelled:
        return Labelled(label="x", size=3)

    result = await call_tool(build_tool(label), {}, context)
    assert result["structuredContent"] == {"label": "x", "size": 3}
    assert orjson.loads(_text(result)) == {"label": "x", "size": 3}


async def test_structured_result_from_dataclass(context: ToolContext) -> None:
    async def box() -> Box:
        return Box(2, 3)

    result = await call_tool(build_tool(box), {}, context)
    assert result["structuredContent"] == {"width": 2, "height": 3}


async def test_invalid_arguments_are_an_error_result(context: ToolContext) -> None:
    ran: list[int] = []

    async def count(n: int) -> str:
        ran.append(n)
        return "ran"

    result = await call_tool(build_tool(count), {"n": "three", "extra": 1}, context)
    assert result["isError"] is True
    text = _text(result)
    assert text.startswith("Invalid arguments for tool 'count': ")
    assert "n: " in text
    assert "extra" in text
    assert ran == []


async def test_context_is_passed_to_the_named_parameter(
    context: ToolContext, events: RecordedCall
) -> None:
    seen: list[ToolContext] = []

    async def logs(text: str, call: ToolContext) -> str:
        seen.append(call)
        await call.log("warning", f"got {text}")
        return "done"

    result = await call_tool(build_tool(logs), {"text": "abc"}, context)
    assert _text(result) == "done"
    assert seen == [context]
    assert events.logs == [("warning", "got abc", "t")]


async def test_sync_tool_runs_off_the_event_loop(context: ToolContext) -> None:
    loop_thread = threading.current_thread()
    threads: list[threading.Thread] = []

    def blocking(n: int) -> int:
        threads.append(threading.current_thread())
        return n * 2

    result = await call_tool(build_tool(blocking), {"n": 21}, context)
    assert _text(result) == "42"
    assert len(threads) == 1
    assert threads[0] is not loop_thread


async def test_async_tool_runs_on_the_event_loop(context: ToolContext) -> None:
    loop_thread = threading.current_thread()
    threads: list[threading.Thread] = []

    async def on_loop() -> str:
        threads.append(threading.current_thread())
        return "x"

    await call_tool(build_tool(on_loop), {}, context)
    assert threads == [loop_thread]


async def test_sync_tool_does_not_block_the_loop(context: ToolContext) -> None:
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    release = threading.Event()

    def waits() -> str:
        # Returns only once the event loop, free meanwhile, has released it.
        loop.call_soon_threadsafe(started.set)
        if not release.wait(timeout=10):
            raise RuntimeError("the event loop was blocked")
        return "released"

    call = asyncio.create_task(call_tool(build_tool(waits), {}, context))
    await asyncio.wait_for(started.wait(), timeout=10)
    release.set()
    result = await asyncio.wait_for(call, timeout=10)
    assert _text(result) == "released"


async def test_tool_error_becomes_is_error_result(context: ToolContext) -> None:
    async def refuses(n: int) -> str:
        raise ToolError(f"n={n} is not allowed here")

    result = await call_tool(build_tool(refuses), {"n": 3}, context)
    assert result == {
        "content": [{"type": "text", "text": "n=3 is not allowed here"}],
        "isError": True,
    }


async def test_tool_error_from_sync_tool(context: ToolContext) -> None:
    def refuses() -> str:
        raise ToolError("no")

    result = await call_tool(build_tool(refuses), {}, context)
    assert result["isError"] is True
    assert _text(result) == "no"


@pytest.mark.parametrize("is_async", [True, False])
async def test_unexpected_exception_is_reported_without_details(
    context: ToolContext, caplog: pytest.LogCaptureFixture, is_async: bool
) -> None:
    secret = "postgres://admin:hunter2@db/internal"

    async def crashes_async() -> str:
        raise RuntimeError(f"cannot connect to {secret}")

    def crashes_sync() -> str:
        raise RuntimeError(f"cannot connect to {secret}")

    crashing = build_tool(crashes_async if is_async else crashes_sync, name="crashes")
    with caplog.at_level(logging.ERROR, logger="mcp_server.runtime.invoke"):
        result = await call_tool(crashing, {}, context)
    assert result["isError"] is True
    text = _text(result)
    assert secret not in text
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    assert "Traceback" not in text
    assert "'crashes'" in text
    match = REFERENCE.search(text)
    assert match is not None
    # The reference leads an operator to the full details in the server log.
    logged = [record for record in caplog.records if match.group(1) in record.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert secret in str(logged[0].exc_info[1])


async def test_each_failure_gets_its_own_reference(context: ToolContext) -> None:
    async def crashes() -> str:
        raise ValueError("x")

    crashing = build_tool(crashes)
    first = REFERENCE.search(_text(await call_tool(crashing, {}, context)))
    second = REFERENCE.search(_text(await call_tool(crashing, {}, context)))
    assert first is not None and second is not None
    assert first.group(1) != second.group(1)


async def test_result_breaking_the_output_schema_is_an_error(context: ToolContext) -> None:
    async def lies() -> Pair:
        return {"left": "not a number", "right": 1}  # type: ignore[typeddict-item]

    result = await call_tool(build_tool(lies), {}, context)
    assert result["isError"] is True
    assert "structuredContent" not in result
    assert "output schema" in _text(result)
    assert "not a number" not in _text(result)


async def test_result_missing_a_required_member_is_an_error(context: ToolContext) -> None:
    async def partial() -> Pair:
        return {"left": 1}  # type: ignore[typeddict-item]

    result = await call_tool(build_tool(partial), {}, context)
    assert result["isError"] is True


async def test_unserialisable_result_is_an_error(context: ToolContext) -> None:
    async def opaque() -> Any:
        return object()

    result = await call_tool(build_tool(opaque), {}, context)
    assert result["isError"] is True
    assert REFERENCE.search(_text(result))


async def test_cancellation_propagates(context: ToolContext) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    task = asyncio.create_task(call_tool(build_tool(forever), {}, context))
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert cancelled.is_set()


def test_build_tool_gives_a_tool() -> None:
    async def noop() -> str:
        return ""

    assert isinstance(build_tool(noop), Tool)
