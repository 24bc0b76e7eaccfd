"""The prompt registry: prompts with their arguments, each scoped to tenants.

A prompt's `render` is a plain function called with keyword arguments on a database thread
(it may use the ORM): `principal` and `arguments` (already checked: strings, none unknown,
every required one given); it returns the prompt's messages
(`mcp_server.protocol.prompts.user_text` / `user_resource`) or raises a JsonRpcError
(-32602 for an argument value it cannot use). A prompt registered with `asks_input` is also
given `inputs`: on a 2026-07-28 request the `InputRound` it asks with (`inputs.take`, whose
InputRequired ends the request as an input-required result), None in the handshake era,
where a prompt cannot ask. Completers are as for resources.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from accounts.principal import Principal
from mcp_server.protocol.prompts import PromptArgument, prompt_definition
from mcp_server.resources.registry import EVERYONE, Completer, Scope

Render = Callable[..., list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Prompt:
    """A registered prompt."""

    name: str
    description: str
    render: Render
    title: str | None = None
    arguments: tuple[PromptArgument, ...] = ()
    scope: Scope = EVERYONE
    complete: Mapping[str, Completer] = field(default_factory=dict)
    asks_input: bool = False

    def definition(self) -> dict[str, Any]:
        """The Prompt object of prompts/list."""
        return prompt_definition(
            self.name, title=self.title, description=self.description, arguments=self.arguments
        )


class PromptRegistry:
    """Prompts by name, in registration order."""

    def __init__(self) -> None:
        self._prompts: dict[str, Prompt] = {}

    def add(
        self,
        name: str,
        *,
        description: str,
        render: Render,
        title: str | None = None,
        arguments: tuple[PromptArgument, ...] = (),
        scope: Scope = EVERYONE,
        complete: Mapping[str, Completer] | None = None,
        asks_input: bool = False,
    ) -> Prompt:
        """Register a prompt (ValueError when the name is taken or a completer names an
        argument it does not take)."""
        if name in self._prompts:
            raise ValueError(f"prompt {name!r} is already registered")
        unknown = set(complete or {}) - {argument.name for argument in arguments}
        if unknown:
            raise ValueError(f"prompt {name!r} takes no argument {sorted(unknown)[0]!r}")
        prompt = Prompt(
            name, description, render, title, arguments, scope, dict(complete or {}), asks_input
        )
        self._prompts[name] = prompt
        return prompt

    def for_caller(self, principal: Principal) -> list[Prompt]:
        """The prompts the caller sees."""
        return [p for p in self._prompts.values() if p.scope.admits(principal)]

    def get(self, principal: Principal, name: str) -> Prompt | None:
        """The prompt called `name`, if the caller sees it."""
        found = self._prompts.get(name)
        return found if found is not None and found.scope.admits(principal) else None

    def __iter__(self) -> Iterator[Prompt]:
        """Every prompt."""
        return iter(list(self._prompts.values()))


# The registry the service serves; built-ins and apps add to it when they are imported.
prompts = PromptRegistry()
