"""The REST API with the standard library: JSON reads and streamed downloads, bearer auth."""

import json
import urllib.error
import urllib.request
from typing import Any, BinaryIO
from urllib.parse import urlencode

from mcp_server.cli.config import redact

HTTP_TIMEOUT = 30.0
CHUNK_BYTES = 64 * 1024


class RestError(Exception):
    """A failed API request; the message never holds the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _detail(body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        return str(data.get("detail") or data.get("error") or data)
    return str(data)


class RestClient:
    """GET requests under one API base URL (e.g. http://127.0.0.1:8000/api)."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float = HTTP_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        """The absolute URL of `path` (relative to the base) with a query string."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        if query:
            pairs = [(key, value) for key, value in query.items() if value is not None]
            url += "?" + urlencode(pairs, doseq=True)
        return url

    def _open(self, url: str, accept: str) -> Any:
        request = urllib.request.Request(url, headers={"Accept": accept})
        if self._token:
            request.add_unredirected_header("Authorization", f"Bearer {self._token}")
        secrets = [self._token] if self._token else []
        try:
            return urllib.request.urlopen(request, timeout=self._timeout)
        except urllib.error.HTTPError as exc:
            detail = _detail(exc.read())
            message = f"GET {url} answered {exc.code}: {detail}"
            if exc.code == 401:
                message += " (pass --token, set MCP_TOKEN, or put token in the config file)"
            raise RestError(redact(message, secrets), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RestError(redact(f"cannot reach {url}: {reason}", secrets)) from None

    def get_json(self, path: str, query: dict[str, Any] | None = None) -> Any:
        """GET a JSON document."""
        with self._open(self.url(path, query), "application/json") as response:
            return json.loads(response.read().decode("utf-8"))

    def download(self, path: str, out: BinaryIO) -> int:
        """Stream a response body into `out`; the number of bytes written."""
        written = 0
        with self._open(self.url(path), "application/json") as response:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                written += len(chunk)
        out.flush()
        return written
