"""Configuration: precedence of flags, environment and config file; URLs; redaction."""

import io
from pathlib import Path

import pytest

from mcp_server.cli.commands import UsageError, parse_arguments
from mcp_server.cli.config import (
    DEFAULT_URL,
    ConfigError,
    api_url_for,
    default_config_path,
    redact,
    redact_url,
    resolve_config,
)
from mcp_server.cli.main import main


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_anything() -> None:
    config = resolve_config(
        url=None, api_url=None, token=None, environ={}, config_path=Path("/nonexistent.toml")
    )
    assert config.url == DEFAULT_URL
    assert config.api_url == "http://127.0.0.1:8000/api"
    assert config.token is None


def test_config_file_under_xdg_config_home(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    path = default_config_path(environ)
    assert path == tmp_path / "xdg" / "mcp-ws" / "config.toml"
    write_config(path, 'url = "wss://mcp.example.test/mcp"\ntoken = "mcp_from_file"\n')
    config = resolve_config(url=None, api_url=None, token=None, environ=environ)
    assert config.url == "wss://mcp.example.test/mcp"
    assert config.api_url == "https://mcp.example.test/api"
    assert config.token == "mcp_from_file"


def test_home_config_path_by_default(tmp_path: Path) -> None:
    assert default_config_path({"HOME": str(tmp_path)}) == (
        tmp_path / ".config" / "mcp-ws" / "config.toml"
    )


def test_flags_beat_environment_beats_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", 'url = "ws://file:1/mcp"\ntoken = "mcp_file"\n')
    environ = {"MCP_URL": "ws://env:2/mcp", "MCP_TOKEN": "mcp_env"}
    from_env = resolve_config(url=None, api_url=None, token=None, environ=environ, config_path=path)
    assert (from_env.url, from_env.token) == ("ws://env:2/mcp", "mcp_env")
    from_flags = resolve_config(
        url="ws://flag:3/mcp", api_url=None, token="mcp_flag", environ=environ, config_path=path
    )
    assert (from_flags.url, from_flags.token) == ("ws://flag:3/mcp", "mcp_flag")
    assert from_flags.api_url == "http://flag:3/api"


def test_api_url_can_be_overridden() -> None:
    config = resolve_config(
        url="ws://a:1/mcp",
        api_url="https://api.example.test/v1/api/",
        token=None,
        environ={},
        config_path=Path("/nonexistent.toml"),
    )
    assert config.api_url == "https://api.example.test/v1/api"


@pytest.mark.parametrize(
    ("ws_url", "api_url"),
    [
        ("ws://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/api"),
        ("wss://host/mcp/", "https://host/api"),
        ("wss://host/prefix/mcp?token=x", "https://host/prefix/api"),
        ("ws://host:9", "http://host:9/api"),
    ],
)
def test_api_url_derived_from_websocket_url(ws_url: str, api_url: str) -> None:
    assert api_url_for(ws_url) == api_url


def test_bad_url_is_refused_without_echoing_its_token() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config(
            url="http://host/mcp?token=mcp_secret_value",
            api_url=None,
            token=None,
            environ={},
            config_path=Path("/nonexistent.toml"),
        )
    assert "mcp_secret_value" not in str(caught.value)
    assert "token=***" in str(caught.value)


def test_broken_config_file_error_does_not_quote_it(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", 'token = "mcp_secret_value\n')
    with pytest.raises(ConfigError) as caught:
        resolve_config(url=None, api_url=None, token=None, environ={}, config_path=path)
    assert "mcp_secret_value" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_config_values_must_be_strings(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", "token = 12\n")
    with pytest.raises(ConfigError, match="token must be a string"):
        resolve_config(url=None, api_url=None, token=None, environ={}, config_path=path)


def test_token_is_not_in_repr() -> None:
    config = resolve_config(
        url=None, api_url=None, token="mcp_hidden", environ={}, config_path=Path("/x.toml")
    )
    assert "mcp_hidden" not in repr(config)


def test_redaction_of_urls_and_secrets() -> None:
    assert redact_url("ws://h/mcp?token=abc&x=1") == "ws://h/mcp?token=***&x=1"
    assert redact_url("https://user:pw@h/api") == "https://user:***@h/api"
    text = "GET ws://h/mcp?token=abc failed; bearer mcp_tok rejected"
    assert redact(text, ["mcp_tok"]) == "GET ws://h/mcp?token=*** failed; bearer *** rejected"


def test_key_value_arguments_parse_as_json_when_they_can() -> None:
    arguments = parse_arguments(
        ["directory=demo", "count=2000", "ratio=0.5", "flag=true", 'name="123"', "empty="],
        '{"thumbnail_size": 64, "count": 1}',
    )
    assert arguments == {
        "directory": "demo",
        "count": 2000,
        "ratio": 0.5,
        "flag": True,
        "name": "123",
        "empty": "",
        "thumbnail_size": 64,
    }


@pytest.mark.parametrize(
    ("pairs", "json_arguments"), [(["novalue"], None), (["=x"], None), ([], "[1]"), ([], "{")]
)
def test_malformed_arguments_are_usage_errors(pairs: list[str], json_arguments: str | None) -> None:
    with pytest.raises(UsageError):
        parse_arguments(pairs, json_arguments)


def test_command_line_mistakes_exit_2_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_WS_CONFIG", str(tmp_path / "none.toml"))
    for name in ("MCP_URL", "MCP_API_URL", "MCP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert main(["--url", "http://h/mcp", "tools"], stdout=out, stderr=err) == 2
    assert "--url must be a URL starting with ws:// or wss://" in err.getvalue()
    err = io.StringIO()
    status = main(["call", "add", "oops", "--url", "ws://127.0.0.1:9/mcp"], stdout=out, stderr=err)
    assert status == 2
    assert "expected key=value, got 'oops'" in err.getvalue()
