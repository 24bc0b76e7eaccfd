"""`mcp-ws`: a command-line client of the service (tools, calls with a live bar, runs, errors)."""
