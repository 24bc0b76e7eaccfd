"""A session's prompt requests: prompts/list and prompts/get."""

from typing import Any

from accounts.principal import Principal
from mcp_server.identity import ServerIdentity
from mcp_server.input_state import StateBinding, input_round
from mcp_server.prompts.registry import PromptRegistry
from mcp_server.protocol.errors import invalid_params
from mcp_server.protocol.input_required import InputRequired
from mcp_server.protocol.messages import Request
from mcp_server.protocol.pagination import paginate
from mcp_server.protocol.prompts import prompt_arguments, prompt_name_param, prompt_result
from mcp_server.session_caller import SessionCaller


class PromptRequests:
    """The prompt requests of one connection."""

    def __init__(
        self,
        *,
        caller: SessionCaller,
        identity: ServerIdentity,
        registry: PromptRegistry,
    ) -> None:
        self.caller = caller
        self.identity = identity
        self.registry = registry

    def listed_differs(self, before: Principal, now: Principal) -> bool:
        """Whether the caller's prompts differ between two tool sets."""
        return self.registry.for_caller(before) != self.registry.for_caller(now)

    async def list(self, request: Request) -> dict[str, Any]:
        """prompts/list: the prompts the caller sees."""
        found = self.registry.for_caller(self.caller.principal())
        start, end, next_cursor = paginate(
            len(found), request.params.get("cursor"), self.identity.prompts_page_size
        )
        result: dict[str, Any] = {"prompts": [p.definition() for p in found[start:end]]}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    async def get(self, request: Request) -> dict[str, Any]:
        """prompts/get: the prompt's messages for the arguments given (-32602 for an unknown
        prompt or arguments it cannot take); on a 2026-07-28 request a prompt that asks for
        input may answer with an input-required result."""
        principal = self.caller.principal()
        name = prompt_name_param(request.params)
        prompt = self.registry.get(principal, name)
        if prompt is None:
            raise invalid_params(f"Unknown prompt: {name}")
        arguments = prompt_arguments(request.params, prompt.arguments, name)
        render: dict[str, Any] = {"principal": principal, "arguments": arguments}
        inputs = None
        if prompt.asks_input:
            if request.meta is not None:
                binding = StateBinding.of(principal, "prompt", name, arguments)
                capabilities = request.meta.client_capabilities
                inputs = input_round(request.params, binding=binding, capabilities=capabilities)
            render["inputs"] = inputs
        await self.caller.settle()
        try:
            messages = await self.caller.db(prompt.render)(**render)
        except InputRequired as asked:
            if inputs is None:
                raise
            return inputs.result(asked)
        return prompt_result(prompt.description, messages)
