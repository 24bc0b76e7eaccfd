"""The MCP service: protocol, session, WebSocket transport, runtime and tools."""
