"""Tenant data directories: every path a tool touches stays inside MCP_DATA_ROOT/<tenant>/."""

import os
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug

from mcp_server.tools.registry import ToolError

# Linux's limits: a path's bytes (PATH_MAX) and one name's (NAME_MAX). Past them every system
# call fails with ENAMETOOLONG, so such a path is refused before any is made.
PATH_MAX = 4096
NAME_MAX = 255
_SHOWN_CHARACTERS = 80


class DataPathError(ToolError):
    """A path that leaves the tenant's data directory, goes through a link, or is missing."""


class TenantRootError(DataPathError):
    """A tenant whose slug cannot name a directory of its own under the data root."""


def tenant_root(tenant_slug: str) -> Path:
    """The tenant's data directory (created on first use), always a child of MCP_DATA_ROOT.

    A slug that is not a valid slug (a tenant created before slugs were validated, say
    "x/../beta") or a directory that resolves elsewhere (a symbolic link) is refused, so no
    tenant ever reads or writes another's files.
    """
    try:
        validate_slug(tenant_slug)
    except ValidationError:
        raise TenantRootError(
            f"Tenant {tenant_slug!r} has an invalid slug, so its files are not served; "
            "an operator must give it a valid slug (letters, digits, '-' and '_')."
        ) from None
    data_root = Path(settings.MCP_DATA_ROOT).resolve()
    root = data_root / tenant_slug
    if root.is_symlink():
        raise TenantRootError(
            f"The data directory of tenant {tenant_slug!r} is a symbolic link, "
            "so its files are not served."
        )
    root.mkdir(parents=True, exist_ok=True)
    resolved = root.resolve()
    if resolved.parent != data_root:
        raise TenantRootError(
            f"The data directory of tenant {tenant_slug!r} resolves outside the data root, "
            "so its files are not served."
        )
    return resolved


def _shown(relative: str) -> str:
    """The client's path as messages quote it: in full when short, else its start."""
    if len(relative) <= _SHOWN_CHARACTERS:
        return repr(relative)
    return f"{relative[:_SHOWN_CHARACTERS]!r}… ({len(relative):,} characters)"


def resolve_tenant_path(tenant_slug: str, relative: str) -> Path:
    """Resolve `relative` inside the tenant root; refuse `..`, absolute paths and symlinks."""
    if not relative or "\x00" in relative:
        raise DataPathError("A path inside your data directory is required.")
    shown = _shown(relative)
    path = PurePosixPath(relative.replace("\\", "/"))
    if path.is_absolute():
        raise DataPathError(f"Refused {shown}: paths are relative to your data directory.")
    parts = path.parts
    if ".." in parts:
        raise DataPathError(f"Refused {shown}: '..' may not leave your data directory.")
    try:
        encoded = os.fsencode(relative)
    except UnicodeEncodeError:  # a lone surrogate, which no file name can hold
        raise DataPathError(f"Refused {shown}: it is not a valid file name.") from None
    if len(encoded) > PATH_MAX:
        raise DataPathError(f"Refused {shown}: a path may be at most {PATH_MAX} bytes long.")
    if any(len(os.fsencode(part)) > NAME_MAX for part in parts):
        raise DataPathError(f"Refused {shown}: a name may be at most {NAME_MAX} bytes long.")
    root = tenant_root(tenant_slug)
    current = root
    try:
        for part in parts:
            current = current / part
            if current.is_symlink():
                raise DataPathError(f"Refused {shown}: symbolic links are not followed.")
        if not current.exists():
            raise DataPathError(f"{shown} does not exist in your data directory.")
        resolved = current.resolve()
    except OSError as exc:  # the root's own length plus the path's, a permission...
        raise DataPathError(f"{shown} cannot be used: {exc.strerror}.") from None
    if not resolved.is_relative_to(root):
        raise DataPathError(f"Refused {shown}: it resolves outside your data directory.")
    return resolved
