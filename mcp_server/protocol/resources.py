"""Shapes of resources: URIs and URI templates, definitions, contents, their errors.

The service names its resources with its own scheme (docs/resources.md):
`mcp-realtime://runs/{id}`, `mcp-realtime://runs/{id}/errors`,
`mcp-realtime://runs/{id}/thumbnails/{name}` and `mcp-realtime://data/{+path}`.
Templates are RFC 6570 level 1 and 2 as far as a server must match them: `{name}` is one
path segment (no `/`), `{+name}` the rest of the URI, `/` included.
"""

import base64
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from mcp_server.protocol.errors import (
    INVALID_PARAMS,
    RESOURCE_NOT_FOUND,
    JsonRpcError,
    invalid_params,
)

SCHEME = "mcp-realtime"
# Longer URIs are refused before any matching (no template of ours comes near it).
MAX_URI_LENGTH = 2048
_VARIABLE = re.compile(r"\{(\+?)([A-Za-z_][A-Za-z0-9_]*)\}")


def resource_uri_param(params: dict[str, Any]) -> str:
    """The `uri` of a resources/read, subscribe or unsubscribe request; -32602 when it is
    absent, too long, or not an absolute URI."""
    uri = params.get("uri")
    if not isinstance(uri, str) or not uri:
        raise invalid_params("uri must be a non-empty string")
    if len(uri) > MAX_URI_LENGTH:
        raise invalid_params(f"uri is longer than {MAX_URI_LENGTH} characters")
    scheme, colon, _ = uri.partition(":")
    if not colon or not scheme or not scheme[0].isalpha():
        raise invalid_params(f"uri must be an absolute URI (scheme:...), not {uri[:80]!r}")
    return uri


def resource_not_found(uri: str, *, modern: bool = False) -> JsonRpcError:
    """The error of an unknown resource (also another tenant's or user's): -32002 in the
    handshake era, -32602 for a 2026-07-28 request (`modern`, SEP-2164)."""
    code = INVALID_PARAMS if modern else RESOURCE_NOT_FOUND
    return JsonRpcError(code, "Resource not found", {"uri": uri})


@dataclass(frozen=True, slots=True)
class UriTemplate:
    """An RFC 6570 template of resource URIs, matched and expanded by its variables."""

    template: str
    pattern: re.Pattern[str]
    variables: tuple[str, ...]

    @classmethod
    def parse(cls, template: str) -> "UriTemplate":
        """Compile `template` (ValueError when a variable repeats or it has none)."""
        parts: list[str] = []
        names: list[str] = []
        position = 0
        for found in _VARIABLE.finditer(template):
            parts.append(re.escape(template[position : found.start()]))
            reserved, name = found.groups()
            if name in names:
                raise ValueError(f"variable {name!r} repeats in {template!r}")
            names.append(name)
            parts.append(f"(?P<{name}>.+)" if reserved else f"(?P<{name}>[^/?#]+)")
            position = found.end()
        if not names:
            raise ValueError(f"{template!r} has no variable: register it as a resource")
        parts.append(re.escape(template[position:]))
        return cls(template, re.compile("".join(parts)), tuple(names))

    def match(self, uri: str) -> dict[str, str] | None:
        """The variables of `uri` (percent-decoded), or None when it is not of this template."""
        found = self.pattern.fullmatch(uri)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}

    def expand(self, **values: str) -> str:
        """The URI with `values` put in (percent-encoded; `{+name}` keeps its slashes)."""

        def value_of(found: re.Match[str]) -> str:
            reserved, name = found.groups()
            return quote(values[name], safe="/" if reserved else "")

        return _VARIABLE.sub(value_of, self.template)


def _described(
    definition: dict[str, Any],
    title: str | None,
    description: str | None,
    mime_type: str | None,
) -> dict[str, Any]:
    """`definition` with the optional fields that are given."""
    optional = {"title": title, "description": description, "mimeType": mime_type}
    return definition | {key: value for key, value in optional.items() if value}


def resource_definition(
    uri: str,
    name: str,
    title: str | None = None,
    description: str | None = None,
    mime_type: str | None = None,
) -> dict[str, Any]:
    """A Resource as resources/list gives it."""
    return _described({"uri": uri, "name": name}, title, description, mime_type)


def template_definition(
    uri_template: str,
    name: str,
    title: str | None = None,
    description: str | None = None,
    mime_type: str | None = None,
) -> dict[str, Any]:
    """A ResourceTemplate as resources/templates/list gives it."""
    return _described({"uriTemplate": uri_template, "name": name}, title, description, mime_type)


def text_contents(uri: str, text: str, mime_type: str = "text/plain") -> dict[str, Any]:
    """TextResourceContents."""
    return {"uri": uri, "mimeType": mime_type, "text": text}


def blob_contents(uri: str, data: bytes, mime_type: str) -> dict[str, Any]:
    """BlobResourceContents: `data` base64-encoded."""
    return {"uri": uri, "mimeType": mime_type, "blob": base64.b64encode(data).decode("ascii")}


def read_result(contents: list[dict[str, Any]]) -> dict[str, Any]:
    """A ReadResourceResult."""
    return {"contents": contents}
