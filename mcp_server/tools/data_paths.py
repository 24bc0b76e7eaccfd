"""Tenant data directories: every path a tool touches stays inside MCP_DATA_ROOT/<tenant>/."""

from pathlib import Path, PurePosixPath

from django.conf import settings

from mcp_server.tools.registry import ToolError


class DataPathError(ToolError):
    """A path that leaves the tenant's data directory, goes through a link, or is missing."""


def tenant_root(tenant_slug: str) -> Path:
    """The tenant's data directory (created on first use)."""
    root = Path(settings.MCP_DATA_ROOT) / tenant_slug
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def resolve_tenant_path(tenant_slug: str, relative: str) -> Path:
    """Resolve `relative` inside the tenant root; refuse `..`, absolute paths and symlinks."""
    if not relative or "\x00" in relative:
        raise DataPathError("A path inside your data directory is required.")
    path = PurePosixPath(relative.replace("\\", "/"))
    if path.is_absolute():
        raise DataPathError(f"Refused {relative!r}: paths are relative to your data directory.")
    parts = path.parts
    if ".." in parts:
        raise DataPathError(f"Refused {relative!r}: '..' may not leave your data directory.")
    root = tenant_root(tenant_slug)
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise DataPathError(f"Refused {relative!r}: symbolic links are not followed.")
    if not current.exists():
        raise DataPathError(f"{relative!r} does not exist in your data directory.")
    resolved = current.resolve()
    if not resolved.is_relative_to(root):
        raise DataPathError(f"Refused {relative!r}: it resolves outside your data directory.")
    return resolved
