"""Running tool calls: the context a tool sees, invocation, and (later) operations."""
