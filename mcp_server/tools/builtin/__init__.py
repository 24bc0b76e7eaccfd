"""Built-in tools, registered on import."""

from mcp_server.tools.builtin import batch, calculator, echo, images, run_outputs

__all__ = ["batch", "calculator", "echo", "images", "run_outputs"]
