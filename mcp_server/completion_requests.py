"""A session's completion/complete: suggestions for a prompt's argument or a resource
template's variable, from the completer registered with it, scoped by the caller."""

from collections.abc import Callable
from typing import Any

from accounts.principal import Principal
from mcp_server.cluster.database import db_call
from mcp_server.prompts.registry import PromptRegistry
from mcp_server.protocol.completion import PROMPT_REF, completion_result, parse_completion
from mcp_server.protocol.errors import invalid_params
from mcp_server.protocol.messages import Request
from mcp_server.resources.registry import Completer, ResourceRegistry
from mcp_server.runtime.limits import SlotKey


class CompletionRequests:
    """The completion requests of one connection."""

    def __init__(
        self,
        *,
        caller: Callable[[], Principal],
        slot_key: Callable[[], SlotKey],
        prompts: PromptRegistry,
        resources: ResourceRegistry,
    ) -> None:
        self._caller = caller
        self._slot_key = slot_key
        self.prompts = prompts
        self.resources = resources

    def _completer(
        self, principal: Principal, ref_type: str, ref: str, name: str
    ) -> Completer | None:
        """The completer of argument `name` (None: it has none); -32602 when the prompt or
        template is unknown to the caller or has no such argument."""
        if ref_type == PROMPT_REF:
            prompt = self.prompts.get(principal, ref)
            if prompt is None:
                raise invalid_params(f"Unknown prompt: {ref}")
            if name not in {argument.name for argument in prompt.arguments}:
                raise invalid_params(f"Prompt {ref!r} takes no argument {name!r}")
            return prompt.complete.get(name)
        template = self.resources.template(principal, ref)
        if template is None:
            raise invalid_params(f"Unknown resource template: {ref}")
        if name not in template.template.variables:
            raise invalid_params(f"Resource template {ref!r} has no variable {name!r}")
        return template.complete.get(name)

    async def complete(self, request: Request) -> dict[str, Any]:
        """completion/complete: the values that start with what was typed, best first."""
        asked = parse_completion(request.params)
        principal = self._caller()
        completer = self._completer(principal, asked.ref_type, asked.ref, asked.argument)
        if completer is None:
            return completion_result([])
        suggest = db_call(completer, caller=self._slot_key())
        values: list[str] = await suggest(
            principal=principal, value=asked.value, context=asked.context
        )
        return completion_result(values)
