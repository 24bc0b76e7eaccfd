"""A session's prompt requests: prompts/list and prompts/get."""

from collections.abc import Awaitable, Callable
from typing import Any

from accounts.principal import Principal
from mcp_server.cluster.database import db_call
from mcp_server.identity import ServerIdentity
from mcp_server.prompts.registry import PromptRegistry
from mcp_server.protocol.errors import invalid_params
from mcp_server.protocol.messages import Request
from mcp_server.protocol.pagination import paginate
from mcp_server.protocol.prompts import prompt_arguments, prompt_name_param, prompt_result
from mcp_server.runtime.limits import SlotKey


class PromptRequests:
    """The prompt requests of one connection."""

    def __init__(
        self,
        *,
        caller: Callable[[], Principal],
        slot_key: Callable[[], SlotKey],
        identity: ServerIdentity,
        settle: Callable[[], Awaitable[None]],
        registry: PromptRegistry,
    ) -> None:
        self._caller = caller
        self._slot_key = slot_key
        self.identity = identity
        # Waits until history holds what this process recorded (the caller's last runs).
        self._settle = settle
        self.registry = registry

    def listed_differs(self, before: Principal, now: Principal) -> bool:
        """Whether the caller's prompts differ between two tool sets."""
        return self.registry.for_caller(before) != self.registry.for_caller(now)

    async def list(self, request: Request) -> dict[str, Any]:
        """prompts/list: the prompts the caller sees."""
        found = self.registry.for_caller(self._caller())
        start, end, next_cursor = paginate(
            len(found), request.params.get("cursor"), self.identity.prompts_page_size
        )
        result: dict[str, Any] = {"prompts": [p.definition() for p in found[start:end]]}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    async def get(self, request: Request) -> dict[str, Any]:
        """prompts/get: the prompt's messages for the arguments given (-32602 for an unknown
        prompt or arguments it cannot take)."""
        principal = self._caller()
        name = prompt_name_param(request.params)
        prompt = self.registry.get(principal, name)
        if prompt is None:
            raise invalid_params(f"Unknown prompt: {name}")
        arguments = prompt_arguments(request.params, prompt.arguments, name)
        await self._settle()
        render = db_call(prompt.render, caller=self._slot_key())
        messages = await render(principal=principal, arguments=arguments)
        return prompt_result(prompt.description, messages)
