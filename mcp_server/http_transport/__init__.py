"""Streamable HTTP at /mcp: POST, GET and DELETE over the same session, protocol and runtime
as the WebSocket transport (docs/architecture.md, "Streamable HTTP")."""
