"""`python -m mcp_server.cli`: the same as the `mcp-ws` console script."""

from mcp_server.cli.main import main

raise SystemExit(main())
