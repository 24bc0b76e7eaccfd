"""Pure MCP / JSON-RPC 2.0 protocol: no Django, no Channels, no I/O."""
