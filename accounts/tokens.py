"""Raw API token generation and digesting; raw values never touch the database."""

import hashlib
import secrets

TOKEN_PREFIX = "mcp_"
_PREFIX_DISPLAY_LENGTH = 12


def token_generate() -> str:
    """A new raw token: the `mcp_` marker and 256 bits of randomness."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(raw: str) -> str:
    """The stored form of a token: SHA-256 hex (the token is random, so no salt is needed)."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def token_display_prefix(raw: str) -> str:
    """The first characters of a token, safe to show so people can tell tokens apart."""
    return raw[:_PREFIX_DISPLAY_LENGTH]
