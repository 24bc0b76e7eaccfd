"""The tool registry and the `@tool` decorator.

A tool is a plain function with type-hinted parameters and a docstring. Its input JSON Schema
comes from the signature (through pydantic) unless given explicitly, and a validator is
compiled from it once, when the tool is registered. A parameter annotated `ToolContext`
receives the call's context and is not part of the schema.
"""

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, cast, get_type_hints

import jsonschema_rs
import pydantic
from pydantic import BaseModel, ConfigDict, TypeAdapter
from typing_extensions import is_typeddict

from mcp_server.protocol.input_required import InputRequest
from mcp_server.runtime.context import ToolContext

TaskSupport = Literal["forbidden", "optional", "required"]
# Where a tool runs in a deployment with workers (mcp_server/placement.py has the rule).
Placement = Literal["auto", "local", "worker"]
# How long a call takes: "short" tools run in the web process under `auto` placement.
Duration = Literal["short", "long"]
PLACEMENTS: tuple[Placement, ...] = ("auto", "local", "worker")
DURATIONS: tuple[Duration, ...] = ("short", "long")
ToolFunction = Callable[..., Any]


class ToolError(Exception):
    """A failure a tool reports to the model; it becomes a result with `isError: true`."""


class DuplicateToolError(ValueError):
    """A second tool registered under a name already taken; names both modules."""

    def __init__(self, name: str, module: str, taken_by: str) -> None:
        super().__init__(
            f"tool {name!r} of {module} is already registered by {taken_by}: "
            "tool names are unique across every app (rename one with @tool(name=...))"
        )
        self.name = name
        self.module = module
        self.taken_by = taken_by


@dataclasses.dataclass(frozen=True, slots=True)
class Summarized:
    """A structured return value with a human summary sent as the first text item."""

    value: Any
    summary: str


@dataclasses.dataclass(frozen=True, slots=True)
class Contents:
    """A result given as its content items, as they go on the wire (text, image, audio,
    embedded resource: mcp_server.protocol.tool_results builds them)."""

    items: tuple[dict[str, Any], ...]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Tool:
    """A registered tool: its callable, schemas, compiled validator and wire definition."""

    name: str
    fn: ToolFunction
    # The module that declared it (its app's `mcp_tools`, or a built-in module).
    module: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    title: str | None
    annotations: dict[str, Any] | None
    task_support: TaskSupport
    # Only tenants that name it in their enabled tools have it (accounts/tool_sets.py).
    opt_in: bool
    placement: Placement
    duration: Duration
    context_param: str | None
    is_async: bool
    validator: Any
    output_validator: Any
    definition: dict[str, Any]
    # The client capabilities its calls need (e.g. {"sampling": {}}): a 2026-07-28 request
    # that does not declare them is refused with -32021 before the tool runs.
    client_capabilities: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The questions (by the keys the tool asks them under) a 2026-07-28 call must have
    # answered before it becomes a tasks-extension task: until then it runs as a plain call,
    # which ends as an input-required result when the tool asks them.
    asks_first: Mapping[str, InputRequest] = dataclasses.field(default_factory=dict)

    @property
    def idempotent(self) -> bool:
        """Whether running it (or one of its fan-out chunks) twice is harmless: the tool's
        `idempotentHint` annotation."""
        return bool((self.annotations or {}).get("idempotentHint"))

    @property
    def answers_alone(self) -> bool:
        """Whether a call can send nothing before its result: a short coroutine function
        that takes no context (so no progress, logs or questions to the client)."""
        return self.duration == "short" and self.is_async and self.context_param is None

    def argument_errors(self, arguments: dict[str, Any]) -> list[str]:
        """Human-readable schema violations of `arguments` (empty when they are valid)."""
        return _violations(self.validator, arguments)

    def output_errors(self, structured: Any) -> list[str]:
        """Schema violations of a structured result against the output schema."""
        return _violations(self.output_validator, structured) if self.output_validator else []


def _violations(validator: Any, instance: Any) -> list[str]:
    if validator.is_valid(instance):
        return []
    return [_describe(error) for error in validator.iter_errors(instance)]


def _describe(error: Any) -> str:
    path = "/".join(str(part) for part in error.instance_path)
    return f"{path}: {error.message}" if path else error.message


def _is_context(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, ToolContext)


def _signature_schema(fn: ToolFunction, name: str) -> tuple[dict[str, Any], str | None]:
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    context_param = None
    for param_name, param in inspect.signature(fn).parameters.items():
        annotation = hints.get(param_name, Any)
        if _is_context(annotation):
            context_param = param_name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(f"tool {name!r}: parameter {param_name!r} must be a named parameter")
        default = ... if param.default is param.empty else param.default
        fields[param_name] = (annotation, default)
    model = pydantic.create_model(
        f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema, context_param


def _output_schema(fn: ToolFunction) -> dict[str, Any] | None:
    returned = get_type_hints(fn).get("return")
    if returned is Contents:
        return None  # content items as they are, not a structured value
    structured = (
        (inspect.isclass(returned) and issubclass(returned, BaseModel))
        or dataclasses.is_dataclass(returned)
        or is_typeddict(returned)
    )
    if not structured:
        return None
    schema = TypeAdapter(cast(Any, returned)).json_schema(mode="serialization")
    schema.pop("title", None)
    return schema


def build_tool(
    fn: ToolFunction,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    annotations: dict[str, Any] | None = None,
    task_support: TaskSupport = "forbidden",
    opt_in: bool = False,
    placement: Placement = "auto",
    duration: Duration = "long",
    client_capabilities: dict[str, Any] | None = None,
    asks_first: Mapping[str, InputRequest] | None = None,
) -> Tool:
    """Describe `fn` as a tool: derive what was not given and compile its validator."""
    tool_name = name or fn.__name__
    if placement not in PLACEMENTS:
        raise TypeError(f"tool {tool_name!r}: placement must be one of {', '.join(PLACEMENTS)}")
    if duration not in DURATIONS:
        raise TypeError(f"tool {tool_name!r}: duration must be one of {', '.join(DURATIONS)}")
    derived_schema, context_param = _signature_schema(fn, tool_name)
    schema = input_schema if input_schema is not None else derived_schema
    if schema.get("type") != "object":
        raise TypeError(f"tool {tool_name!r}: inputSchema must have type 'object'")
    out_schema = output_schema if output_schema is not None else _output_schema(fn)
    text = description if description is not None else (inspect.getdoc(fn) or "")
    definition: dict[str, Any] = {"name": tool_name, "description": text, "inputSchema": schema}
    if title:
        definition["title"] = title
    if out_schema is not None:
        definition["outputSchema"] = out_schema
    if annotations:
        definition["annotations"] = annotations
    definition["execution"] = {"taskSupport": task_support}
    return Tool(
        name=tool_name,
        fn=fn,
        module=fn.__module__,
        description=text,
        input_schema=schema,
        output_schema=out_schema,
        title=title,
        annotations=annotations,
        task_support=task_support,
        opt_in=opt_in,
        placement=placement,
        duration=duration,
        context_param=context_param,
        is_async=inspect.iscoroutinefunction(fn),
        validator=jsonschema_rs.validator_for(schema),
        output_validator=jsonschema_rs.validator_for(out_schema) if out_schema else None,
        definition=definition,
        client_capabilities=dict(client_capabilities or {}),
        asks_first=dict(asks_first or {}),
    )


class ToolRegistry:
    """Tools by name, in registration order."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, tool: Tool) -> Tool:
        """Add a tool; a second tool of the same name is a DuplicateToolError."""
        taken = self._tools.get(tool.name)
        if taken is not None:
            raise DuplicateToolError(tool.name, tool.module, taken.module)
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        """The tool called `name`, if any."""
        return self._tools.get(name)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


registry = ToolRegistry()


def tool(
    name: str | None = None,
    *,
    title: str | None = None,
    description: str | None = None,
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    annotations: dict[str, Any] | None = None,
    task_support: TaskSupport = "forbidden",
    opt_in: bool = False,
    placement: Placement = "auto",
    duration: Duration = "long",
    client_capabilities: dict[str, Any] | None = None,
    asks_first: Mapping[str, InputRequest] | None = None,
    into: ToolRegistry | None = None,
) -> Callable[[ToolFunction], ToolFunction]:
    """Register the decorated function as a tool (in the default registry unless `into`).

    `opt_in`: only tenants that name it in their enabled tools have it. `placement` says where
    it runs when the deployment has workers: "local" (the web process that holds the
    connection), "worker", or "auto": local when `duration` is "short", on a worker otherwise
    (docs/tools.md). `client_capabilities`: what its calls need of the client (e.g.
    `{"sampling": {}}`), checked before a 2026-07-28 call runs. `asks_first`: the questions
    (by key) a 2026-07-28 call answers in input rounds before the server makes it a task of
    the tasks extension (docs/tools.md)."""

    def decorate(fn: ToolFunction) -> ToolFunction:
        (into if into is not None else registry).register(
            build_tool(
                fn,
                name=name,
                title=title,
                description=description,
                input_schema=input_schema,
                output_schema=output_schema,
                annotations=annotations,
                task_support=task_support,
                opt_in=opt_in,
                placement=placement,
                duration=duration,
                client_capabilities=client_capabilities,
                asks_first=asks_first,
            )
        )
        return fn

    return decorate
