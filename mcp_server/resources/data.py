"""The tenant's data directories as resources: `mcp-realtime://data/` and the directories in it.

Reading one lists it (directories, and files with their sizes), at most
MCP_RESOURCE_MAX_ENTRIES entries. Paths go through `resolve_tenant_path`, so nothing outside
the tenant's own directory, and no symbolic link, is ever listed or suggested.
"""

import os
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings

from accounts.principal import Principal
from mcp_server.protocol.resources import SCHEME, resource_definition, text_contents
from mcp_server.resources.registry import Contents, ResourceNotFound, resources
from mcp_server.tools.data_paths import DataPathError, resolve_tenant_path, tenant_root

JSON = "application/json"
DATA_ROOT_URI = f"{SCHEME}://data/"
DATA_TEMPLATE = f"{SCHEME}://data/{{+path}}"


def directory_uri(relative: str) -> str:
    """The URI of a directory inside the tenant's data directory."""
    return f"{DATA_ROOT_URI}{relative}"


def _entries(directory: Path, limit: int) -> tuple[list[os.DirEntry[str]], bool]:
    """Up to `limit` visible entries of `directory`, sorted by name, and whether more exist."""
    with os.scandir(directory) as scan:
        found: list[os.DirEntry[str]] = []
        for entry in scan:
            if entry.name.startswith("."):
                continue
            if len(found) == limit:
                return sorted(found, key=lambda e: e.name), True
            found.append(entry)
    return sorted(found, key=lambda e: e.name), False


def _listing(uri: str, directory: Path, relative: str) -> Contents:
    entries, truncated = _entries(directory, settings.MCP_RESOURCE_MAX_ENTRIES)
    directories = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    files = [
        {"name": e.name, "bytes": e.stat(follow_symlinks=False).st_size}
        for e in entries
        if e.is_file(follow_symlinks=False)
    ]
    body: dict[str, Any] = {
        "path": relative,
        "directories": directories,
        "files": files,
        "truncated": truncated,
    }
    return [text_contents(uri, orjson.dumps(body, option=orjson.OPT_INDENT_2).decode(), JSON)]


def _directory(principal: Principal, uri: str, relative: str) -> Path:
    try:
        path = resolve_tenant_path(principal.tenant_slug, relative)
    except DataPathError:
        raise ResourceNotFound(uri) from None
    if not path.is_dir():
        raise ResourceNotFound(uri)
    return path


def read_data_root(*, principal: Principal, uri: str) -> Contents:
    """The listing of the tenant's data directory."""
    try:
        root = tenant_root(principal.tenant_slug)
    except DataPathError:
        raise ResourceNotFound(uri) from None
    return _listing(uri, root, "")


def read_directory(*, principal: Principal, uri: str, path: str) -> Contents:
    """The listing of one directory inside the tenant's data directory."""
    relative = path.rstrip("/")
    return _listing(uri, _directory(principal, uri, relative), relative)


def top_directories(principal: Principal, limit: int) -> list[dict[str, Any]]:
    """The directories at the top of the tenant's data directory, as resources/list shows
    them (at most `limit`)."""
    try:
        root = tenant_root(principal.tenant_slug)
    except DataPathError:
        return []
    entries, _ = _entries(root, settings.MCP_RESOURCE_MAX_ENTRIES)
    names = [e.name for e in entries if e.is_dir(follow_symlinks=False)][:limit]
    return [
        resource_definition(
            directory_uri(name),
            name,
            title=f"{name}/",
            description="A data directory",
            mime_type=JSON,
        )
        for name in names
    ]


def complete_directory(*, principal: Principal, value: str, context: dict[str, str]) -> list[str]:
    """Directories of the tenant's data directory whose path starts with `value`: the
    entries of the directory `value` names so far (`photos/20` → `photos/2024`, …)."""
    parent, _, start = value.rpartition("/")
    try:
        directory = resolve_tenant_path(principal.tenant_slug, parent) if parent else None
        if directory is None:
            directory = tenant_root(principal.tenant_slug)
    except DataPathError:
        return []
    if not directory.is_dir():
        return []
    entries, _ = _entries(directory, settings.MCP_RESOURCE_MAX_ENTRIES)
    prefix = f"{parent}/" if parent else ""
    return [
        prefix + e.name
        for e in entries
        if e.name.startswith(start) and e.is_dir(follow_symlinks=False)
    ]


resources.add_resource(
    DATA_ROOT_URI,
    name="data",
    title="Your data directory",
    description="The directories and files of your tenant's data directory.",
    mime_type=JSON,
    read=read_data_root,
)
resources.add_template(
    DATA_TEMPLATE,
    name="data-directory",
    title="A data directory",
    description="A directory inside your tenant's data directory: its directories and files.",
    mime_type=JSON,
    read=read_directory,
    complete={"path": complete_directory},
)
