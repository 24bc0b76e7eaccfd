"""The 2026-07-28 revision's calls: the same back-to-back `tools/call add` as the handshake
era's throughput scenarios, over WebSocket (a socket that never initialized) and Streamable
HTTP (no session), each request carrying its own `_meta` (and, over HTTP, the headers that
mirror it). Their goals are the per-request envelope's cost against the handshake era's
figures of the same server in the same run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.http_load import HttpThroughput
from bench.report import MODERN, Goal, Goals
from bench.scenarios import CLIENT_NAME, Throughput
from mcp_server.client.wire import JsonObject, request_meta

# What a 2026-07-28 load client says about itself on every request.
META: JsonObject = request_meta(CLIENT_NAME, "1.0")
# The bound: the per-request `_meta` costs at most 10 %.
BOUND_PCT = 10.0


def envelope_goals(prefix: str, what: str) -> dict[int, Goals]:
    """Overheads against the handshake era's metrics `prefix<C>.*` of the same server."""
    return {
        50: {
            "cpu_us_per_call": (
                Goal(
                    f"{what} server CPU per call at C=50, over the handshake era's",
                    BOUND_PCT,
                    False,
                    reference=f"{prefix}50.cpu_us_per_call",
                ),
            ),
            "calls_per_s": (
                Goal(
                    f"{what} calls/s at C=50, against the handshake era's",
                    -BOUND_PCT,
                    True,
                    reference=f"{prefix}50.calls_per_s",
                ),
            ),
        },
        1: {
            "p50_us": (
                Goal(
                    f"{what} p50 latency at C=1, over the handshake era's",
                    BOUND_PCT,
                    False,
                    reference=f"{prefix}1.p50_us",
                ),
            ),
        },
    }


@dataclass(frozen=True)
class ModernThroughput(Throughput):
    """C sockets that never initialize, each doing back-to-back 2026-07-28 `tools/call add`."""

    kind: ClassVar[str] = "modern-throughput"
    title: ClassVar[str] = "2026-07-28 throughput C={concurrency}"
    prefix: ClassVar[str] = "modern.c"
    label_prefix: ClassVar[str] = "2026-07-28 "
    section: ClassVar[str] = MODERN
    goals: ClassVar[dict[int, Goals]] = envelope_goals(
        Throughput.prefix, "2026-07-28 over WebSocket:"
    )
    request_meta: ClassVar[JsonObject | None] = META

    def applies_to(self, target_key: str) -> bool:
        """This service and its variants (metrics or history off): the others speak only the
        handshake era."""
        return target_key.startswith("service")


@dataclass(frozen=True)
class HttpModernThroughput(HttpThroughput):
    """C stateless HTTP clients, each doing back-to-back 2026-07-28 `tools/call add`."""

    kind: ClassVar[str] = "http-modern-throughput"
    title: ClassVar[str] = "HTTP 2026-07-28 throughput C={concurrency}"
    prefix: ClassVar[str] = "modern.http.c"
    label_prefix: ClassVar[str] = "HTTP 2026-07-28 "
    section: ClassVar[str] = MODERN
    goals: ClassVar[dict[int, Goals]] = envelope_goals(
        HttpThroughput.prefix, "2026-07-28 over HTTP:"
    )
    request_meta: ClassVar[JsonObject | None] = META

    def applies_to(self, target_key: str) -> bool:
        """As ModernThroughput: this service and its variants."""
        return target_key.startswith("service")
