"""One process's runtime: everything its connections and its work share, built at start-up.

A web process builds it in the ASGI lifespan (`mcp_server/lifespan.py`), a worker in
`manage.py runoperations`; tests build their own. It is handed to what needs it: the
consumer finds it in its ASGI scope (`scope["runtime"]`), a session gets its parts at
construction. Only code that Django calls without our arguments (admin actions, REST views)
reaches it through `current_runtime()`, which the process sets once when its runtime starts.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.chunks import ClusterChunks, chunk_lane
from mcp_server.cluster.connections import ConnectionRegistry
from mcp_server.cluster.dispatch import Dispatch, dispatch_from_settings
from mcp_server.cluster.liveness import Liveness
from mcp_server.cluster.run_updates import RunUpdates
from mcp_server.cluster.session_messages import RUN_WATCH_MESSAGES
from mcp_server.executors import Executor, LocalExecutor, PlacedExecutor
from mcp_server.identity import ServerIdentity, identity_from_settings
from mcp_server.listens import ListenCounts
from mcp_server.operations.store import OperationStore
from mcp_server.owned_tasks import TaskOwner
from mcp_server.placement import overrides_from_settings
from mcp_server.runtime.history import writer_from_settings
from mcp_server.runtime.runner import OperationRunner, runner_from_settings
from mcp_server.tools.registry import Placement


@dataclass(eq=False)
class ProcessRuntime:
    """The runner, history writer, bus, liveness, connections, executor, resource updates
    and listen counts of one process."""

    identity: ServerIdentity
    runner: OperationRunner
    bus: OperationBus
    liveness: Liveness
    connections: ConnectionRegistry
    executor: Executor
    web: bool
    run_updates: RunUpdates
    # Open subscriptions/listen per user, across this process's connections.
    listens: ListenCounts = field(default_factory=ListenCounts)
    _loops: TaskOwner = field(default_factory=TaskOwner, init=False)
    _started: bool = field(default=False, init=False)

    @property
    def writer(self) -> OperationStore:
        """Where this process's history goes."""
        return self.runner.writer

    async def start(self) -> None:
        """Join the cluster and start the loops: heartbeat, reaper and recovery, and in a web
        process client pings and access checks."""
        if self._started:
            return
        self._started = True
        self.run_updates.start()
        self.writer.on_written(self.run_updates.written)
        self.writer.start()
        await self.bus.start()
        self._loops.spawn(self.liveness.run())
        if self.web:
            self._loops.spawn(self.connections.keep_alive())
            self._loops.spawn(self.connections.access.run_checks())

    async def stop(self) -> None:
        """Stop the loops and leave the cluster (what runs keeps running until interrupted)."""
        if not self._started:
            return
        await self._loops.close()
        self._loops = TaskOwner()
        await self.bus.stop()
        self._started = False

    async def shut_down_web(self) -> None:
        """SIGTERM of a web process: tell every client, stop their work, interrupt tasks."""
        await self.connections.say_goodbye()
        await self.bus.interrupt_all()
        await self.stop()


def build_runtime(
    *,
    web: bool,
    writer: OperationStore | None = None,
    runner: OperationRunner | None = None,
    layer: BaseChannelLayer | None = None,
    execution: str | None = None,
    placement: Mapping[str, Placement] | None = None,
    identity: ServerIdentity | None = None,
    dispatch: Dispatch | None = None,
) -> ProcessRuntime:
    """A runtime configured from settings; any part given is used instead (tests). With
    workers (`execution` "worker") each call runs where its tool's placement says, `placement`
    overriding declarations by tool name (MCP_TOOL_PLACEMENT), and calls for workers go to the
    dispatch streams, which a worker (not `web`) takes them from."""
    if runner is None:
        runner = runner_from_settings(writer if writer is not None else writer_from_settings())
    if layer is None:
        layer = get_channel_layer()
    mode = execution if execution is not None else settings.MCP_EXECUTION
    if dispatch is None and (mode == "worker" or not web):
        dispatch = dispatch_from_settings()
    bus = OperationBus(runner=runner, layer=layer, web=web, dispatch=dispatch)
    executor: Executor = LocalExecutor(runner=runner, bus=bus)
    if mode == "worker":
        overrides = placement if placement is not None else overrides_from_settings()
        executor = PlacedExecutor(runner=runner, bus=bus, overrides=overrides)
        # Fan-out chunks go to any free worker, wherever the call that fans out runs.
        assert dispatch is not None, "workers need the dispatch streams (REDIS_URL)"
        runner.chunks = ClusterChunks(bus=bus, lane=chunk_lane(dispatch), name=runner.name)
    run_updates = RunUpdates(
        runner=runner, layer=layer, interval=settings.MCP_RESOURCE_UPDATE_INTERVAL
    )
    bus.subscribe(RUN_WATCH_MESSAGES, run_updates.handle)
    return ProcessRuntime(
        identity=identity if identity is not None else identity_from_settings(),
        runner=runner,
        bus=bus,
        liveness=Liveness(runner=runner, bus=bus),
        connections=ConnectionRegistry(runner=runner, bus=bus),
        executor=executor,
        web=web,
        run_updates=run_updates,
    )


_current: ProcessRuntime | None = None


class NoRuntime(RuntimeError):
    """Code that needs the process's runtime ran before any was installed."""


def install_runtime(runtime: ProcessRuntime | None) -> ProcessRuntime | None:
    """Make `runtime` the one `current_runtime()` returns (None: none); the previous one."""
    global _current
    previous, _current = _current, runtime
    return previous


def current_runtime() -> ProcessRuntime:
    """The runtime this process installed at start-up, for code Django calls into without our
    arguments (admin actions, REST views); everything else is handed its runtime."""
    if _current is None:
        raise NoRuntime("no runtime is installed: start the process with serve or runoperations")
    return _current
