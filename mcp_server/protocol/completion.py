"""Shapes of completion/complete: what is being completed, and the suggestions."""

from dataclasses import dataclass, field
from typing import Any

from mcp_server.protocol.errors import invalid_params

# The specification's bound on the values of one answer.
MAX_VALUES = 100
PROMPT_REF = "ref/prompt"
RESOURCE_REF = "ref/resource"


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One completion/complete: the prompt (name) or template (uri), the argument and what
    has been typed of it, and the arguments already chosen."""

    ref_type: str
    ref: str
    argument: str
    value: str
    context: dict[str, str] = field(default_factory=dict)


def parse_completion(params: dict[str, Any]) -> CompletionRequest:
    """The request in `params`; -32602 when it is malformed."""
    ref, argument = params.get("ref"), params.get("argument")
    if not isinstance(ref, dict):
        raise invalid_params("ref must be an object")
    ref_type = ref.get("type")
    key = "name" if ref_type == PROMPT_REF else "uri" if ref_type == RESOURCE_REF else None
    if key is None or not isinstance(ref_type, str):
        raise invalid_params(f"ref.type must be {PROMPT_REF!r} or {RESOURCE_REF!r}")
    target = ref.get(key)
    if not isinstance(target, str) or not target:
        raise invalid_params(f"ref.{key} must be a non-empty string")
    if not isinstance(argument, dict):
        raise invalid_params("argument must be an object with a name and a value")
    name, value = argument.get("name"), argument.get("value")
    if not isinstance(name, str) or not name or not isinstance(value, str):
        raise invalid_params("argument must be an object with a name and a value")
    context = params.get("context")
    chosen = context.get("arguments") if isinstance(context, dict) else None
    if chosen is not None and not (
        isinstance(chosen, dict) and all(isinstance(v, str) for v in chosen.values())
    ):
        raise invalid_params("context.arguments must be an object of strings")
    return CompletionRequest(ref_type, target, name, value, dict(chosen or {}))


def completion_result(values: list[str], *, more: bool = False) -> dict[str, Any]:
    """A CompleteResult of the first MAX_VALUES of `values` (`more`: others exist beyond)."""
    shown = values[:MAX_VALUES]
    has_more = more or len(values) > MAX_VALUES
    completion: dict[str, Any] = {"values": shown, "hasMore": has_more}
    if not more:
        completion["total"] = len(values)
    return {"completion": completion}
