"""A task's questions to its client (the tasks extension): keyed by the tool, shown in history
while open, answered by key (unknown keys, non-objects and results of the wrong kind ignored),
remembered by key, timed out as a tool error, and handed to the process that runs the task
from whichever process received tasks/update."""

import asyncio
from typing import Any
from uuid import UUID

import pytest

from mcp_server.client_requests import ClientRequestError
from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.decoding import decode_message
from mcp_server.cluster.messages import OperationAnswer, OperationAsking, OperationStart
from mcp_server.operations.lifecycle import detailed_task, task_view
from mcp_server.protocol.input_required import InputRequest, InputRound
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.limits import FairScheduler, Limits
from mcp_server.runtime.runner import OperationRunner
from mcp_server.runtime.task_questions import TaskQuestions
from tests.operations.test_lifecycle import _row
from tests.support import wait_until, yield_to_other_tasks
from tests.ws.session_support import DiscardingHistory

ELICIT = {"message": "Delete it?", "requestedSchema": {"type": "object", "properties": {}}}
CONFIRM = InputRequest("elicitation/create", ELICIT)
WAIT = 10.0


class RecordedOperation:
    """What TaskQuestions uses of a RunningOperation: its questions and each persist."""

    def __init__(self) -> None:
        self.input_requests: dict[str, Any] | None = None
        self.finished_at = None
        self.persisted: list[dict[str, Any] | None] = []

    def persist(self) -> None:
        self.persisted.append(self.input_requests)


def questions(operation: RecordedOperation, *, timeout: float = 5) -> TaskQuestions:
    return TaskQuestions(
        operation,  # type: ignore[arg-type]
        capabilities={"elicitation": {}},
        timeout=timeout,
        max_outstanding=2,
    )


async def ask_one(asked: TaskQuestions, key: str) -> dict[str, Any]:
    """Ask one confirmation under `key`; its answer."""
    return (await asked.ask({key: CONFIRM}))[key]


async def test_an_open_question_is_in_history_until_its_answer() -> None:
    operation = RecordedOperation()
    asked = questions(operation)
    waiting = asyncio.create_task(ask_one(asked, "confirm"))
    await wait_until(lambda: operation.input_requests, WAIT, "the question in history")
    assert operation.input_requests == {
        "confirm": {"method": "elicitation/create", "params": ELICIT}
    }
    not_results = {"other": {"action": "accept"}, "confirm": "not an object"}
    assert asked.answer(not_results) == 0
    assert asked.answer({"confirm": {"action": "maybe"}}) == 0  # not an ElicitResult
    assert asked.answer({"confirm": {"action": "accept", "content": {"confirm": True}}}) == 1
    assert await waiting == {"action": "accept", "content": {"confirm": True}}
    assert operation.input_requests is None
    # Once answered, the key is not asked any more: asked again, it has the same answer.
    assert asked.answer({"confirm": {"action": "decline"}}) == 0
    persisted = len(operation.persisted)
    assert await ask_one(asked, "confirm") == {"action": "accept", "content": {"confirm": True}}
    assert len(operation.persisted) == persisted


async def test_questions_asked_at_once_may_be_answered_one_by_one() -> None:
    operation = RecordedOperation()
    asked = questions(operation)
    both = asyncio.create_task(asked.ask({"one": CONFIRM, "two": CONFIRM}))
    await wait_until(lambda: len(operation.input_requests or {}) == 2, WAIT, "both questions")
    with pytest.raises(ClientRequestError):  # a third open question is over the bound
        await ask_one(asked, "three")
    asked.answer({"one": {"action": "decline"}})
    assert list(operation.input_requests or {}) == ["two"]
    await yield_to_other_tasks()  # the asking task's turn: it still waits for "two"
    assert not both.done()
    asked.answer({"two": {"action": "accept"}})
    assert await both == {"one": {"action": "decline"}, "two": {"action": "accept"}}


async def test_an_unanswered_question_is_a_client_error_and_asked_no_more() -> None:
    operation = RecordedOperation()
    asked = questions(operation, timeout=0.01)
    with pytest.raises(ClientRequestError, match="did not answer"):
        await ask_one(asked, "confirm")
    assert operation.input_requests is None
    assert asked.supports("elicitation", "form") and not asked.supports("sampling")


async def test_each_change_of_the_questions_is_announced_in_order() -> None:
    operation = RecordedOperation()
    heard: list[dict[str, Any] | None] = []

    async def announce(questions: dict[str, Any] | None) -> None:
        await yield_to_other_tasks()  # a send that takes a turn of the loop
        heard.append(questions)

    asked = TaskQuestions(
        operation,  # type: ignore[arg-type]
        capabilities={"elicitation": {}},
        timeout=5,
        max_outstanding=2,
        announce=announce,
    )
    waiting = asyncio.create_task(ask_one(asked, "confirm"))
    await wait_until(lambda: heard, WAIT, "the question announced")
    ((key, _),) = (heard[0] or {}).items()
    asked.answer({key: {"action": "accept"}})
    await waiting
    await wait_until(lambda: len(heard) == 2, WAIT, "the answer announced")
    assert heard == [{key: {"method": "elicitation/create", "params": ELICIT}}, None]


async def test_a_task_made_on_a_final_round_answers_from_it_and_asks_the_rest() -> None:
    # The composition: the round's answers (gathered by input-required results before the
    # task was made) answer here; what the round lacks goes on the task.
    operation = RecordedOperation()
    asked = questions(operation)
    given = {"name": {"action": "accept", "content": {"name": "Alice"}}}
    inputs = InputRound(capabilities={"elicitation": {}}, seal=lambda a: "s", responses=given)
    call: Any = type("Call", (), {"principal": None, "tool_name": "t", "id": UUID(int=1)})()
    context = ToolContext(operation=call, events=None, client=asked, inputs=inputs)  # type: ignore[arg-type]
    assert await context.elicit("Name?", {"type": "object"}, key="name") == given["name"]
    assert operation.persisted == []  # answered from the round: nothing put on the task
    later = asyncio.create_task(context.elicit("Sure?", {"type": "object"}, key="sure"))
    await wait_until(lambda: operation.input_requests, WAIT, "the question in history")
    assert list(operation.input_requests or {}) == ["sure"]
    asked.answer({"sure": {"action": "decline"}})
    assert await later == {"action": "decline"}


def test_a_running_task_with_questions_is_input_required() -> None:
    asked = {"confirm": {"method": "elicitation/create", "params": ELICIT}}
    view = task_view(_row("running", input_requests=asked), poll_interval=500)
    assert view.status == "input_required"
    assert view.as_task()["status"] == "input_required"  # the 2025 vocabulary has it too
    task = detailed_task(view, None)
    assert (task["status"], task["inputRequests"]) == ("input_required", asked)
    answered = task_view(_row("running", input_requests=None), poll_interval=500)
    assert "inputRequests" not in detailed_task(answered, None)


def test_answers_and_task_hand_offs_cross_processes() -> None:
    key = UUID(int=7)
    answer = OperationAnswer(id=key, responses={"k": {"action": "accept"}})
    assert decode_message(answer.encode()) == answer
    for questions in ({"k": {"method": "elicitation/create", "params": {}}}, None):
        asking = OperationAsking(id=key, input_requests=questions)
        assert decode_message(asking.encode()) == asking
    start = OperationStart(
        id=key,
        principal={},
        tool="confirm_delete",
        arguments={},
        connection_id="c",
        request_id=1,
        progress_token=None,
        queued_at=None,
        is_task=True,
        task_ttl=1000,
        listener=None,
        asks_through_task=True,
        client_capabilities={"elicitation": {}},
        # A task made on the final round of input-required results takes that round along.
        inputs={"capabilities": {"elicitation": {}}, "answers": {"a": {}}, "responses": {}},
    )
    assert decode_message(start.encode()) == start


class SentToRunners:
    """A channel layer that keeps what is sent to groups."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append((group, message))


async def test_an_answer_for_a_task_run_elsewhere_goes_to_the_runners() -> None:
    runner = OperationRunner(
        scheduler=FairScheduler(Limits()),
        writer=DiscardingHistory(),  # type: ignore[arg-type]
        progress_rate=10.0,
        persist_interval=60.0,
    )
    layer = SentToRunners()
    bus = OperationBus(runner=runner, layer=layer, web=True)
    key = UUID(int=8)
    assert not await bus.answer(key, {"k": {"action": "accept"}})
    ((group, message),) = layer.sent
    assert group == "mcp-runners"
    assert decode_message(message) == OperationAnswer(id=key, responses={"k": {"action": "accept"}})
