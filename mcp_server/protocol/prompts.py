"""Shapes of prompts: definitions, the arguments of prompts/get, and prompt messages."""

from dataclasses import dataclass
from typing import Any

from mcp_server.protocol.errors import invalid_params

# An argument value longer than this is refused (a prompt template has no use for more).
MAX_ARGUMENT_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class PromptArgument:
    """An argument a prompt takes, as prompts/list describes it."""

    name: str
    description: str = ""
    required: bool = False

    def definition(self) -> dict[str, Any]:
        """The PromptArgument object."""
        found: dict[str, Any] = {"name": self.name, "required": self.required}
        if self.description:
            found["description"] = self.description
        return found


def prompt_definition(
    name: str, *, title: str | None, description: str, arguments: tuple[PromptArgument, ...]
) -> dict[str, Any]:
    """A Prompt as prompts/list gives it."""
    definition: dict[str, Any] = {"name": name, "description": description}
    if title:
        definition["title"] = title
    if arguments:
        definition["arguments"] = [argument.definition() for argument in arguments]
    return definition


def prompt_name_param(params: dict[str, Any]) -> str:
    """The `name` of a prompts/get request; -32602 when absent."""
    name = params.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_params("name must be a non-empty string")
    return name


def prompt_arguments(
    params: dict[str, Any], declared: tuple[PromptArgument, ...], prompt: str
) -> dict[str, str]:
    """The `arguments` of a prompts/get request, checked against the prompt's: strings only,
    none unknown, every required one given (-32602 naming the first that is not)."""
    given = params.get("arguments")
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise invalid_params("arguments must be an object of strings")
    names = {argument.name for argument in declared}
    for name, value in given.items():
        if name not in names:
            raise invalid_params(f"Prompt {prompt!r} takes no argument {name!r}")
        if not isinstance(value, str):
            raise invalid_params(f"Argument {name!r} must be a string")
        if len(value) > MAX_ARGUMENT_LENGTH:
            raise invalid_params(f"Argument {name!r} is longer than {MAX_ARGUMENT_LENGTH}")
    for argument in declared:
        if argument.required and not given.get(argument.name):
            raise invalid_params(f"Prompt {prompt!r} needs the argument {argument.name!r}")
    return dict(given)


def user_text(text: str) -> dict[str, Any]:
    """A PromptMessage from the user with one text block."""
    return {"role": "user", "content": {"type": "text", "text": text}}


def user_resource(contents: dict[str, Any]) -> dict[str, Any]:
    """A PromptMessage from the user embedding a resource's contents."""
    return {"role": "user", "content": {"type": "resource", "resource": contents}}


def prompt_result(description: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A GetPromptResult."""
    return {"description": description, "messages": messages}
