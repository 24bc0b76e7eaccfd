"""A session's resource requests: resources/list, resources/templates/list, resources/read.

Readers run on the cluster's database threads on behalf of the connection; every read is
scoped by the caller, and anything the caller may not see is answered as unknown (-32002).
"""

from typing import Any

from accounts.principal import Principal
from mcp_server.identity import ServerIdentity
from mcp_server.input_state import StateBinding, input_round
from mcp_server.protocol.errors import invalid_params
from mcp_server.protocol.input_required import InputRequired, InputRound
from mcp_server.protocol.messages import Request
from mcp_server.protocol.pagination import decode_key_cursor, encode_key_cursor, paginate
from mcp_server.protocol.resources import read_result, resource_not_found, resource_uri_param
from mcp_server.resources.listing import resource_page
from mcp_server.resources.registry import Contents, Found, ResourceNotFound, ResourceRegistry
from mcp_server.resources.runs import run_after
from mcp_server.session_caller import SessionCaller


class ResourceRequests:
    """The resource requests of one connection."""

    def __init__(
        self,
        *,
        caller: SessionCaller,
        identity: ServerIdentity,
        registry: ResourceRegistry,
    ) -> None:
        self.caller = caller
        self.identity = identity
        self.registry = registry

    def listed_differs(self, before: Principal, now: Principal) -> bool:
        """Whether the caller's fixed resources or templates differ between two tool sets."""
        registry = self.registry
        return (registry.resources_for(before), registry.templates_for(before)) != (
            registry.resources_for(now),
            registry.templates_for(now),
        )

    async def list(self, request: Request) -> dict[str, Any]:
        """resources/list: fixed resources, data directories, then runs, newest first."""
        cursor = request.params.get("cursor")
        after = None
        if cursor is not None:
            try:
                after = run_after(decode_key_cursor(cursor))
            except ValueError:
                raise invalid_params("Invalid cursor") from None
        await self.caller.settle()
        listed, next_key = await self.caller.db(resource_page)(
            principal=self.caller.principal(),
            registry=self.registry,
            after=after,
            size=self.identity.resources_page_size,
        )
        result: dict[str, Any] = {"resources": listed}
        if next_key is not None:
            result["nextCursor"] = encode_key_cursor(next_key)
        return result

    async def templates(self, request: Request) -> dict[str, Any]:
        """resources/templates/list: the templates the caller sees."""
        templates = self.registry.templates_for(self.caller.principal())
        start, end, next_cursor = paginate(
            len(templates), request.params.get("cursor"), self.identity.resources_page_size
        )
        result: dict[str, Any] = {
            "resourceTemplates": [entry.definition() for entry in templates[start:end]]
        }
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    async def read(self, request: Request) -> dict[str, Any]:
        """resources/read: the resource's contents (resource_not_found when the caller has no
        such URI); on a 2026-07-28 request a resource that asks for input may answer with an
        input-required result."""
        uri = resource_uri_param(request.params)
        modern = request.meta is not None
        principal = self.caller.principal()
        found = self._found(principal, uri, modern)
        inputs = None
        if found.asks_input and request.meta is not None:
            binding = StateBinding.of(principal, "resource", uri, {})
            capabilities = request.meta.client_capabilities
            inputs = input_round(request.params, binding=binding, capabilities=capabilities)
        try:
            contents = await self._read(found, principal, uri, modern=modern, inputs=inputs)
        except InputRequired as asked:
            if inputs is None:
                raise
            return inputs.result(asked)
        return read_result(contents)

    async def contents(self, uri: str, *, modern: bool = False) -> Contents:
        """What reading `uri` gives this caller (resource_not_found, in the era of the request
        asking, `modern` or not, when there is no such resource)."""
        principal = self.caller.principal()
        found = self._found(principal, uri, modern)
        return await self._read(found, principal, uri, modern=modern, inputs=None)

    def _found(self, principal: Principal, uri: str, modern: bool) -> Found:
        found = self.registry.find(principal, uri)
        if found is None:
            raise resource_not_found(uri, modern=modern)
        return found

    async def _read(
        self,
        found: Found,
        principal: Principal,
        uri: str,
        *,
        modern: bool,
        inputs: InputRound | None,
    ) -> Contents:
        reader: dict[str, Any] = {"principal": principal, "uri": uri, **found.variables}
        if found.asks_input:
            reader["inputs"] = inputs
        await self.caller.settle()
        try:
            contents: Contents = await self.caller.db(found.read)(**reader)
        except ResourceNotFound:
            raise resource_not_found(uri, modern=modern) from None
        return contents
