"""Pure shapes of resources, prompts and completion: URI templates, parameters, results."""

from typing import Any

import pytest

from mcp_server.protocol.completion import MAX_VALUES, completion_result, parse_completion
from mcp_server.protocol.errors import INVALID_PARAMS, RESOURCE_NOT_FOUND, JsonRpcError
from mcp_server.protocol.prompts import PromptArgument, prompt_arguments, prompt_definition
from mcp_server.protocol.resources import (
    MAX_URI_LENGTH,
    UriTemplate,
    blob_contents,
    resource_not_found,
    resource_uri_param,
)

RUN = UriTemplate.parse("mcp-realtime://runs/{id}")
DATA = UriTemplate.parse("mcp-realtime://data/{+path}")
THUMBNAIL = UriTemplate.parse("mcp-realtime://runs/{id}/thumbnails/{name}")


def test_a_simple_variable_is_one_segment_and_a_reserved_one_the_rest() -> None:
    assert RUN.match("mcp-realtime://runs/abc") == {"id": "abc"}
    assert RUN.match("mcp-realtime://runs/abc/errors") is None
    assert RUN.match("mcp-realtime://runs/") is None
    assert DATA.match("mcp-realtime://data/photos/2024") == {"path": "photos/2024"}
    assert THUMBNAIL.match("mcp-realtime://runs/r1/thumbnails/a%20b.png.jpg") == {
        "id": "r1",
        "name": "a b.png.jpg",
    }
    assert THUMBNAIL.variables == ("id", "name")


def test_expanding_encodes_values_and_matching_decodes_them() -> None:
    uri = THUMBNAIL.expand(id="r1", name="a/b c.jpg")
    assert uri == "mcp-realtime://runs/r1/thumbnails/a%2Fb%20c.jpg"
    assert THUMBNAIL.match(uri) == {"id": "r1", "name": "a/b c.jpg"}
    assert DATA.expand(path="photos/a b") == "mcp-realtime://data/photos/a%20b"


@pytest.mark.parametrize("template", ["mcp-realtime://fixed", "x://{a}/{a}"])
def test_templates_without_variables_or_with_repeats_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        UriTemplate.parse(template)


@pytest.mark.parametrize(
    "params", [{}, {"uri": 1}, {"uri": ""}, {"uri": "x" * (MAX_URI_LENGTH + 1)}]
)
def test_a_resource_request_needs_a_bounded_uri_string(params: dict[str, Any]) -> None:
    with pytest.raises(JsonRpcError) as refused:
        resource_uri_param(params)
    assert refused.value.code == INVALID_PARAMS


def test_not_found_names_the_uri_and_blobs_are_base64() -> None:
    error = resource_not_found("mcp-realtime://runs/x").to_error()
    assert error == {
        "code": RESOURCE_NOT_FOUND,
        "message": "Resource not found",
        "data": {"uri": "mcp-realtime://runs/x"},
    }
    # 2026-07-28 (SEP-2164) says invalid params instead.
    assert resource_not_found("u", modern=True).code == INVALID_PARAMS
    assert blob_contents("u", b"\xff\xd8", "image/jpeg") == {
        "uri": "u",
        "mimeType": "image/jpeg",
        "blob": "/9g=",
    }


ARGUMENTS = (PromptArgument("run_id", "The run.", required=True), PromptArgument("style"))


def test_prompt_arguments_are_checked_against_the_declared_ones() -> None:
    assert prompt_arguments({"arguments": {"run_id": "r"}}, ARGUMENTS, "p") == {"run_id": "r"}
    definition = prompt_definition("p", title=None, description="d", arguments=ARGUMENTS)
    assert definition["arguments"][0] == {
        "name": "run_id",
        "description": "The run.",
        "required": True,
    }


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"arguments": []},
        {"arguments": {"run_id": 1}},
        {"arguments": {"run_id": ""}},
        {"arguments": {"run_id": "r", "other": "x"}},
        {"arguments": {"run_id": "r" * 5000}},
    ],
)
def test_bad_prompt_arguments_are_invalid_params(params: dict[str, Any]) -> None:
    with pytest.raises(JsonRpcError) as refused:
        prompt_arguments(params, ARGUMENTS, "p")
    assert refused.value.code == INVALID_PARAMS


def test_a_completion_request_names_a_prompt_or_a_template() -> None:
    parsed = parse_completion(
        {
            "ref": {"type": "ref/resource", "uri": "mcp-realtime://runs/{id}"},
            "argument": {"name": "id", "value": "01"},
            "context": {"arguments": {"x": "y"}},
        }
    )
    assert (parsed.ref_type, parsed.ref, parsed.argument, parsed.value) == (
        "ref/resource",
        "mcp-realtime://runs/{id}",
        "id",
        "01",
    )
    assert parsed.context == {"x": "y"}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"ref": {"type": "ref/tool", "name": "x"}, "argument": {"name": "a", "value": ""}},
        {"ref": {"type": "ref/prompt"}, "argument": {"name": "a", "value": ""}},
        {"ref": {"type": "ref/prompt", "name": "p"}},
        {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": 1}},
        {
            "ref": {"type": "ref/prompt", "name": "p"},
            "argument": {"name": "a", "value": ""},
            "context": {"arguments": {"b": 2}},
        },
    ],
)
def test_malformed_completion_requests_are_invalid_params(params: dict[str, Any]) -> None:
    with pytest.raises(JsonRpcError) as refused:
        parse_completion(params)
    assert refused.value.code == INVALID_PARAMS


def test_a_completion_gives_at_most_a_hundred_values_and_says_there_are_more() -> None:
    values = [str(n) for n in range(150)]
    completion = completion_result(values)["completion"]
    assert len(completion["values"]) == MAX_VALUES
    assert completion["total"] == 150 and completion["hasMore"] is True
    assert completion_result(["a"])["completion"] == {"values": ["a"], "hasMore": False, "total": 1}
    assert "total" not in completion_result(["a"], more=True)["completion"]
