"""The MCP client of `mcp-ws`, the benchmarks and the end-to-end tests; no Django.

`wire` opens sockets and builds frames, `raw.RawClient` drives a connection frame by frame
(tests, load generators), `session.McpConnection` multiplexes requests over a reader task
(the command-line client), and `http.HttpSession` speaks Streamable HTTP.
"""
