"""The calculator of a math service: add, subtract, multiply, divide (short: they run in the
web process that holds the connection, with or without workers)."""

import math
from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from mcp_server.tools.registry import ToolError, tool

Number = Annotated[float, Field(description="A finite number.")]
_PURE = {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False}


class Calculation(TypedDict):
    """The outcome of an arithmetic tool."""

    result: float


# Arguments arrive as JSON numbers: integers stay Python ints unless made floats, and an
# integer result past 64 bits could not be serialised.
def _finite(value: float) -> Calculation:
    if not math.isfinite(value):
        raise ToolError("The result is too large to represent as a number.")
    return {"result": value}


@tool(title="Add", annotations=_PURE, duration="short")
async def add(a: Number, b: Number) -> Calculation:
    """Add two numbers: a + b."""
    return _finite(float(a) + float(b))


@tool(title="Subtract", annotations=_PURE, duration="short")
async def subtract(a: Number, b: Number) -> Calculation:
    """Subtract the second number from the first: a - b."""
    return _finite(float(a) - float(b))


@tool(title="Multiply", annotations=_PURE, duration="short")
async def multiply(a: Number, b: Number) -> Calculation:
    """Multiply two numbers: a * b."""
    return _finite(float(a) * float(b))


@tool(title="Divide", annotations=_PURE, duration="short")
async def divide(
    a: Annotated[float, Field(description="The dividend.")],
    b: Annotated[float, Field(description="The divisor; must not be zero.")],
) -> Calculation:
    """Divide the first number by the second: a / b."""
    if b == 0:
        raise ToolError("Division by zero is undefined: b must not be 0.")
    return _finite(float(a) / float(b))
