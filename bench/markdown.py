"""Numbers and tables as the reports print them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

INTEGER_UNITS = ("calls/s", "µs", "images/s", "items")


def fmt(value: float, unit: str) -> str:
    """A number as the tables show it: integers for rates and µs, decimals for small values."""
    if math.isnan(value):
        return "n/a"
    if unit in INTEGER_UNITS:
        return f"{value:,.0f}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: int = 1) -> list[str]:
    """A markdown table: the first `text_columns` left-aligned, the numbers right-aligned."""
    lines = ["| " + " | ".join(header) + " |"]
    aligns = [":---" if i < text_columns else "---:" for i in range(len(header))]
    lines.append("|" + "|".join(aligns) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines
