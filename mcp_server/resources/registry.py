"""The resource registry: fixed resources and resource templates, each scoped to tenants.

Readers and completers are plain functions called with keyword arguments on a database
thread (they may use the ORM): a reader gets `principal`, `uri` and the template's variables
and returns a list of contents (`mcp_server.protocol.resources.text_contents` /
`blob_contents`), or raises `ResourceNotFound`; a completer gets `principal`, `value` and
`context` (the arguments already chosen) and returns suggestions, best first. A resource
registered with `asks_input` is also given `inputs`, as a prompt is (mcp_server/prompts/
registry.py): the `InputRound` of a 2026-07-28 read, None otherwise.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from accounts.principal import Principal
from mcp_server.protocol.resources import UriTemplate, resource_definition, template_definition
from mcp_server.tools.catalog import catalog_for_principal

Contents = list[dict[str, Any]]
Reader = Callable[..., Contents]
Completer = Callable[..., list[str]]


class ResourceNotFound(Exception):
    """No such resource for this caller (answered -32002, like any unknown URI)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Who sees a resource or prompt: some tenants (None: every tenant), and only while the
    tenant's tool set holds `requires_tool` (None: always)."""

    tenants: frozenset[str] | None = None
    requires_tool: str | None = None

    def admits(self, principal: Principal) -> bool:
        """Whether the caller sees it."""
        if self.tenants is not None and principal.tenant_slug not in self.tenants:
            return False
        tool = self.requires_tool
        # Through the tenant's catalog, so an opt-in tool counts only where it was opted in.
        return tool is None or catalog_for_principal(principal).get(tool) is not None


# The scope of what every caller sees.
EVERYONE = Scope()


@dataclass(frozen=True, slots=True, kw_only=True)
class Described:
    """An entry's reader, what its listing says of it, and who sees it."""

    name: str
    read: Reader
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    scope: Scope = EVERYONE
    asks_input: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedResource(Described):
    """A resource with a URI of its own, listed by resources/list."""

    uri: str

    def definition(self) -> dict[str, Any]:
        """The Resource object."""
        described = (self.title, self.description, self.mime_type)
        return resource_definition(self.uri, self.name, *described)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplatedResource(Described):
    """Resources named by a URI template, listed by resources/templates/list."""

    template: UriTemplate
    complete: Mapping[str, Completer] = field(default_factory=dict)

    def definition(self) -> dict[str, Any]:
        """The ResourceTemplate object."""
        described = (self.title, self.description, self.mime_type)
        return template_definition(self.template.template, self.name, *described)


@dataclass(frozen=True, slots=True)
class Found:
    """A URI resolved to its reader and the template's variables."""

    read: Reader
    variables: dict[str, str]
    asks_input: bool = False


class ResourceRegistry:
    """Fixed resources and templates, in registration order; names and URIs are unique."""

    def __init__(self) -> None:
        self._fixed: dict[str, FixedResource] = {}
        self._templates: dict[str, TemplatedResource] = {}

    def add_resource(
        self,
        uri: str,
        *,
        name: str,
        read: Reader,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        scope: Scope = EVERYONE,
        asks_input: bool = False,
    ) -> FixedResource:
        """Register a resource at `uri` (ValueError when the URI is taken)."""
        if uri in self._fixed:
            raise ValueError(f"resource {uri!r} is already registered")
        resource = FixedResource(
            uri=uri,
            name=name,
            read=read,
            title=title,
            description=description,
            mime_type=mime_type,
            scope=scope,
            asks_input=asks_input,
        )
        self._fixed[uri] = resource
        return resource

    def add_template(
        self,
        uri_template: str,
        *,
        name: str,
        read: Reader,
        title: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        scope: Scope = EVERYONE,
        complete: Mapping[str, Completer] | None = None,
        asks_input: bool = False,
    ) -> TemplatedResource:
        """Register a URI template (ValueError when it is taken, malformed, or a completer
        names a variable it does not have)."""
        if uri_template in self._templates:
            raise ValueError(f"resource template {uri_template!r} is already registered")
        template = UriTemplate.parse(uri_template)
        unknown = set(complete or {}) - set(template.variables)
        if unknown:
            raise ValueError(f"{uri_template!r} has no variable {sorted(unknown)[0]!r}")
        entry = TemplatedResource(
            template=template,
            name=name,
            read=read,
            title=title,
            description=description,
            mime_type=mime_type,
            scope=scope,
            complete=dict(complete or {}),
            asks_input=asks_input,
        )
        self._templates[uri_template] = entry
        return entry

    def resources_for(self, principal: Principal) -> list[FixedResource]:
        """The fixed resources the caller sees."""
        return [r for r in self._fixed.values() if r.scope.admits(principal)]

    def templates_for(self, principal: Principal) -> list[TemplatedResource]:
        """The templates the caller sees."""
        return [t for t in self._templates.values() if t.scope.admits(principal)]

    def template(self, principal: Principal, uri_template: str) -> TemplatedResource | None:
        """The template registered as `uri_template`, if the caller sees it."""
        found = self._templates.get(uri_template)
        return found if found is not None and found.scope.admits(principal) else None

    def find(self, principal: Principal, uri: str) -> Found | None:
        """The reader of `uri` for this caller, or None when nothing it sees has that URI."""
        fixed = self._fixed.get(uri)
        if fixed is not None and fixed.scope.admits(principal):
            return Found(fixed.read, {}, fixed.asks_input)
        for entry in self.templates_for(principal):
            variables = entry.template.match(uri)
            if variables is not None:
                return Found(entry.read, variables, entry.asks_input)
        return None

    def __iter__(self) -> Iterator[FixedResource | TemplatedResource]:
        """Every entry, fixed resources first."""
        return iter([*self._fixed.values(), *self._templates.values()])


# The registry the service serves; built-ins and apps add to it when they are imported.
resources = ResourceRegistry()
