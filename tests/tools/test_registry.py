"""The tool registry: schemas from signatures, validators, definitions, registration rules."""

import dataclasses
from typing import Annotated, Any

import jsonschema_rs
import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from mcp_server.runtime.context import ToolContext
from mcp_server.tools.registry import Tool, ToolRegistry, build_tool, registry, tool


def _register(reg: ToolRegistry, fn: Any, **options: Any) -> Tool:
    return reg.register(build_tool(fn, **options))


class Hit(TypedDict):
    """One search hit."""

    title: str
    score: float


class Summary(BaseModel):
    """A summary of a search."""

    total: int
    query: str


@dataclasses.dataclass
class Point:
    x: int
    y: int


async def search(
    query: Annotated[str, Field(description="What to look for.")],
    ctx: ToolContext,
    limit: Annotated[int, Field(description="At most this many hits.", ge=1)] = 10,
    exact: bool = False,
) -> str:
    """Search the index.

    Longer explanation on a second paragraph.
    """
    return query


# --- input schema from the signature -----------------------------------------------------


def test_schema_from_signature() -> None:
    built = build_tool(search)
    schema = built.input_schema
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"query", "limit", "exact"}
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"]["type"] == "string"
    assert schema["properties"]["query"]["description"] == "What to look for."
    assert schema["properties"]["limit"]["description"] == "At most this many hits."
    assert schema["properties"]["limit"]["default"] == 10
    assert schema["properties"]["limit"]["minimum"] == 1
    assert schema["properties"]["exact"] == {"default": False, "title": "Exact", "type": "boolean"}
    assert "title" not in schema


def test_context_parameter_is_excluded_and_remembered() -> None:
    built = build_tool(search)
    assert "ctx" not in built.input_schema["properties"]
    assert built.context_param == "ctx"
    assert build_tool(_no_context).context_param is None


def _no_context(a: int) -> int:
    return a


def test_context_parameter_under_any_name() -> None:
    async def with_context(value: int, call_context: ToolContext) -> int:
        return value

    built = build_tool(with_context)
    assert built.context_param == "call_context"
    assert list(built.input_schema["properties"]) == ["value"]


def test_no_parameters_gives_empty_object_schema() -> None:
    async def nothing() -> str:
        return "x"

    built = build_tool(nothing)
    assert built.input_schema["type"] == "object"
    assert built.input_schema.get("properties", {}) == {}
    assert built.argument_errors({}) == []
    assert built.argument_errors({"x": 1}) != []


def test_definition() -> None:
    built = build_tool(
        search,
        title="Search",
        annotations={"readOnlyHint": True},
        task_support="optional",
    )
    assert built.definition == {
        "name": "search",
        "title": "Search",
        "description": "Search the index.\n\nLonger explanation on a second paragraph.",
        "inputSchema": built.input_schema,
        "annotations": {"readOnlyHint": True},
        "execution": {"taskSupport": "optional"},
    }
    assert "outputSchema" not in built.definition
    assert built.is_async is True
    assert built.fn is search


def test_name_and_description_overrides() -> None:
    built = build_tool(search, name="find", description="Find things.")
    assert built.name == "find"
    assert built.definition["name"] == "find"
    assert built.definition["description"] == "Find things."
    assert "title" not in built.definition
    assert "annotations" not in built.definition
    assert built.definition["execution"] == {"taskSupport": "forbidden"}


def test_undocumented_function_has_empty_description() -> None:
    def bare(a: int) -> int:
        return a

    built = build_tool(bare)
    assert built.description == ""
    assert built.is_async is False


@pytest.mark.parametrize(
    "source",
    [
        "def f(*values: int) -> int: return 0",
        "def f(**options: int) -> int: return 0",
        "def f(a: int, /) -> int: return 0",
    ],
)
def test_unnamed_parameters_are_refused(source: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(TypeError, match="named parameter"):
        build_tool(namespace["f"])


# --- explicit schemas --------------------------------------------------------------------


def test_explicit_input_schema_is_used_verbatim() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "maximum": 3}},
        "required": ["n"],
    }

    async def typed(n: int) -> str:
        return "ok"

    built = build_tool(typed, input_schema=schema)
    assert built.input_schema is schema
    assert built.definition["inputSchema"] is schema
    assert built.argument_errors({"n": 2}) == []
    assert built.argument_errors({"n": 4}) != []
    # The validator follows the explicit schema, which allows extra members.
    assert built.argument_errors({"n": 1, "extra": True}) == []


@pytest.mark.parametrize("schema", [{"type": "array"}, {}, {"type": ["object", "null"]}])
def test_explicit_input_schema_must_be_an_object(schema: dict[str, Any]) -> None:
    async def typed(n: int) -> str:
        return "ok"

    with pytest.raises(TypeError, match="type 'object'"):
        build_tool(typed, input_schema=schema)


def test_explicit_output_schema() -> None:
    out = {"type": "object", "properties": {"v": {"type": "integer"}}, "required": ["v"]}

    async def returns_dict() -> dict[str, int]:
        return {"v": 1}

    built = build_tool(returns_dict, output_schema=out)
    assert built.output_schema is out
    assert built.definition["outputSchema"] is out
    assert built.output_errors({"v": 1}) == []
    assert built.output_errors({"v": "1"}) != []


# --- output schema from the return annotation --------------------------------------------


def test_output_schema_from_typeddict() -> None:
    async def top() -> Hit:
        return {"title": "a", "score": 1.0}

    built = build_tool(top)
    assert built.output_schema is not None
    assert built.output_schema["type"] == "object"
    assert set(built.output_schema["properties"]) == {"title", "score"}
    assert sorted(built.output_schema["required"]) == ["score", "title"]
    assert built.output_schema["properties"]["score"]["type"] == "number"
    assert "title" not in built.output_schema
    assert built.definition["outputSchema"] == built.output_schema
    assert built.output_validator is not None


def test_output_schema_from_pydantic_model() -> None:
    async def summarise() -> Summary:
        return Summary(total=1, query="q")

    built = build_tool(summarise)
    assert built.output_schema is not None
    assert set(built.output_schema["properties"]) == {"total", "query"}
    assert built.output_schema["properties"]["total"]["type"] == "integer"
    assert built.output_errors({"total": 1, "query": "q"}) == []
    assert built.output_errors({"total": "x", "query": "q"}) != []


def test_output_schema_from_dataclass() -> None:
    async def origin() -> Point:
        return Point(0, 0)

    built = build_tool(origin)
    assert built.output_schema is not None
    assert sorted(built.output_schema["required"]) == ["x", "y"]


@pytest.mark.parametrize("annotation", [str, int, dict, list, type(None)])
def test_no_output_schema_for_plain_values(annotation: Any) -> None:
    def plain() -> None:
        return None

    plain.__annotations__["return"] = annotation
    built = build_tool(plain)
    assert built.output_schema is None
    assert built.output_validator is None
    assert built.output_errors({"anything": 1}) == []


def test_no_return_annotation_gives_no_output_schema() -> None:
    def unannotated(a: int):
        return a

    assert build_tool(unannotated).output_schema is None


# --- validation --------------------------------------------------------------------------


def test_validator_is_compiled_at_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = jsonschema_rs.validator_for

    def counting(schema: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(schema)
        return real(schema, *args, **kwargs)

    monkeypatch.setattr(jsonschema_rs, "validator_for", counting)

    async def top() -> Hit:
        return {"title": "a", "score": 1.0}

    built = build_tool(top)
    assert len(calls) == 2  # input and output, once each
    validator = built.validator
    for _ in range(3):
        assert built.argument_errors({}) == []
        assert built.argument_errors({"x": 1}) != []
        assert built.output_errors({"title": "a", "score": 2}) == []
    assert len(calls) == 2
    assert built.validator is validator
    assert validator.is_valid({})


def test_argument_errors_messages() -> None:
    built = build_tool(search)
    assert built.argument_errors({"query": "x"}) == []
    assert built.argument_errors({"query": "x", "limit": 3, "exact": True}) == []

    missing = built.argument_errors({})
    assert missing == ['"query" is a required property']

    wrong_type = built.argument_errors({"query": 5})
    assert len(wrong_type) == 1
    assert wrong_type[0].startswith("query: ")
    assert '"string"' in wrong_type[0]

    extra = built.argument_errors({"query": "x", "colour": "red"})
    assert len(extra) == 1
    assert "colour" in extra[0]
    assert "Additional properties" in extra[0]

    several = built.argument_errors({"query": 1, "limit": 0})
    assert len(several) == 2
    assert any(message.startswith("limit: ") for message in several)


def test_nested_error_paths() -> None:
    async def tagged(tags: list[int]) -> str:
        return "ok"

    built = build_tool(tagged)
    errors = built.argument_errors({"tags": [1, "two", 3]})
    assert len(errors) == 1
    assert errors[0].startswith("tags/1: ")


# --- registry ----------------------------------------------------------------------------


def test_registry_keeps_registration_order() -> None:
    reg = ToolRegistry()

    async def b_tool() -> str:
        return ""

    async def a_tool() -> str:
        return ""

    first = _register(reg, b_tool)
    second = _register(reg, a_tool)
    assert list(reg) == [first, second]
    assert len(reg) == 2
    assert reg.get("b_tool") is first
    assert reg.get("missing") is None


def test_duplicate_names_are_refused() -> None:
    reg = ToolRegistry()

    async def dup() -> str:
        return ""

    async def other() -> str:
        return ""

    original = _register(reg, dup)
    with pytest.raises(ValueError, match="already registered"):
        _register(reg, dup)
    with pytest.raises(ValueError, match="already registered"):
        _register(reg, other, name="dup")
    assert reg.get("dup") is original
    assert len(reg) == 1


def test_decorator_registers_into_the_given_registry() -> None:
    reg = ToolRegistry()
    before = len(registry)

    @tool(title="Private", into=reg)
    async def private_tool(a: int) -> int:
        """A tool that must stay out of the global registry."""
        return a

    # The decorator hands the function back unchanged.
    assert private_tool.__name__ == "private_tool"
    assert registry.get("private_tool") is None, "registered in the GLOBAL registry"
    assert len(registry) == before
    registered = reg.get("private_tool")
    assert registered is not None
    assert registered.fn is private_tool
    assert registered.title == "Private"


def test_decorator_into_a_non_empty_registry() -> None:
    reg = ToolRegistry()

    async def seed() -> str:
        return ""

    _register(reg, seed)

    @tool("renamed", into=reg)
    async def second() -> str:
        return ""

    assert reg.get("renamed") is not None
    assert registry.get("renamed") is None
