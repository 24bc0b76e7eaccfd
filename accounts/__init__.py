"""Tenants, memberships and API tokens; authentication for HTTP and WebSocket."""
