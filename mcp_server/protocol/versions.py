"""Protocol revisions this server speaks and how a session's revision is chosen."""

LATEST_VERSION = "2025-11-25"
SUPPORTED_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
_BATCH_VERSIONS = frozenset({"2025-03-26"})


def negotiate_version(requested: str) -> str:
    """The client's revision when supported, else the latest one (the client decides)."""
    return requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION


def allows_batches(version: str | None) -> bool:
    """Whether JSON-RPC batch arrays are part of `version` (only 2025-03-26 has them)."""
    return version in _BATCH_VERSIONS
