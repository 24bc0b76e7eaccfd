"""Where the client connects and with which token: flags, then environment, then config file.

The token is a secret: it is sent in an `Authorization` header (never in a URL the client
builds), it has no `repr`, and every message that may contain it or a URL goes through
`redact` first.
"""

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_URL = "ws://127.0.0.1:8000/mcp"
URL_ENV = "MCP_URL"
API_URL_ENV = "MCP_API_URL"
TOKEN_ENV = "MCP_TOKEN"
CONFIG_ENV = "MCP_WS_CONFIG"
REDACTED = "***"
_SECRET_QUERY_KEYS = frozenset({"token", "access_token", "api_key", "key"})


class ConfigError(Exception):
    """The configuration is unusable (bad URL, unreadable config file)."""


@dataclass(frozen=True)
class ClientConfig:
    """The resolved connection settings of one invocation."""

    url: str
    api_url: str
    token: str | None = field(default=None, repr=False)
    source: str = "default"

    def redact(self, text: str) -> str:
        """`text` with the token and any credential in a URL replaced by ***."""
        return redact(text, [self.token] if self.token else [])


def default_config_path(environ: Mapping[str, str]) -> Path:
    """`$MCP_WS_CONFIG`, else `$XDG_CONFIG_HOME/mcp-ws/config.toml` (~/.config by default)."""
    explicit = environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "mcp-ws" / "config.toml"


def read_config_file(path: Path) -> dict[str, Any]:
    """The `url`, `api_url` and `token` of a TOML config file; {} when there is none."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # The parser's message may quote a line of the file, which may hold the token.
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}") from None
    known: dict[str, Any] = {key: data[key] for key in ("url", "api_url", "token") if key in data}
    for key, value in known.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {key} must be a string")
    return known


def api_url_for(ws_url: str) -> str:
    """The REST base of a WebSocket URL: ws://host:port/mcp -> http://host:port/api."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if path.endswith("/mcp"):
        path = path[: -len("/mcp")]
    return urlunsplit((scheme, parts.netloc, f"{path}/api", "", ""))


def _check_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        expected = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ConfigError(f"{what} must be a URL starting with {expected}, got {redact_url(url)!r}")
    return url


def resolve_config(
    *,
    url: str | None,
    api_url: str | None,
    token: str | None,
    environ: Mapping[str, str],
    config_path: Path | None = None,
) -> ClientConfig:
    """Settings from flags, else the environment, else the config file, else defaults."""
    path = config_path or default_config_path(environ)
    from_file = read_config_file(path)
    chosen_url = url or environ.get(URL_ENV) or from_file.get("url") or DEFAULT_URL
    chosen_api = api_url or environ.get(API_URL_ENV) or from_file.get("api_url")
    chosen_token = token or environ.get(TOKEN_ENV) or from_file.get("token") or None
    if token:
        source = "--token"
    elif environ.get(TOKEN_ENV):
        source = TOKEN_ENV
    elif from_file.get("token"):
        source = str(path)
    else:
        source = "none"
    _check_url(chosen_url, ("ws", "wss"), "--url")
    resolved_api = (chosen_api or api_url_for(chosen_url)).rstrip("/")
    _check_url(resolved_api, ("http", "https"), "--api-url")
    return ClientConfig(url=chosen_url, api_url=resolved_api, token=chosen_token, source=source)


def redact_url(url: str) -> str:
    """A URL with its password and any token-like query values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{REDACTED}@")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [
                (key, REDACTED if key.lower() in _SECRET_QUERY_KEYS else value)
                for key, value in pairs
            ],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret, and credentials in the URLs it mentions, replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    words = [redact_url(word) if "://" in word else word for word in text.split(" ")]
    return " ".join(words)


def environment() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
