"""The tools, resources and prompts the official MCP conformance suite calls by name."""
