"""The parts of a session for tasks, resources, prompts, completion, subscriptions and
listens (and the tasks they watch), each made on its first use.

Most connections never use most of them, and a reconnect storm pays for every object a
handshake makes (and for the garbage collections they bring on): the session holds this one
object instead of six, and a part exists once a request needs it.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from mcp_server.cluster.messages import OperationEvent
from mcp_server.cluster.session_messages import RunUpdated
from mcp_server.completion_requests import CompletionRequests
from mcp_server.identity import ServerIdentity
from mcp_server.listener import ConnectionListener
from mcp_server.listens import ListenCounts, Listens
from mcp_server.prompt_requests import PromptRequests
from mcp_server.prompts.registry import prompts
from mcp_server.protocol.errors import RequestId
from mcp_server.resource_requests import ResourceRequests
from mcp_server.resource_subscriptions import ResourceSubscriptions
from mcp_server.resources.registry import resources
from mcp_server.session_caller import CurrentPrincipal, SessionCaller
from mcp_server.task_requests import TaskRequests
from mcp_server.task_watch import TaskWatch

if TYPE_CHECKING:
    from mcp_server.cluster.liveness import Liveness
    from mcp_server.executors import Executor


class SessionFeatures:
    """A session's feature requests, each part made when first asked for."""

    __slots__ = (
        "_caller",
        "_completion",
        "_connection_id",
        "_current",
        "_executor",
        "_identity",
        "_listen",
        "_listen_counts",
        "_listener",
        "_listens",
        "_liveness",
        "_prompts",
        "_recorded_uris",
        "_resources",
        "_send",
        "_subscriptions",
        "_task_watch",
        "_tasks",
        "_watch_resources",
    )

    def __init__(
        self,
        *,
        caller: CurrentPrincipal,
        identity: ServerIdentity,
        executor: "Executor",
        listener: ConnectionListener,
        connection_id: str,
        send: Callable[[Any], Awaitable[None]],
        liveness: "Liveness | None",
        listen: Callable[[], None] | None,
        watch_resources: bool = True,
        listen_counts: ListenCounts | None = None,
    ) -> None:
        # Who the session works for now (not the session itself: nothing here points back).
        self._current = caller
        self._identity, self._executor, self._listener = identity, executor, listener
        self._connection_id, self._send = connection_id, send
        self._liveness, self._listen = liveness, listen
        self._tasks: TaskRequests | None = None
        self._caller: SessionCaller | None = None
        self._resources: ResourceRequests | None = None
        self._prompts: PromptRequests | None = None
        self._completion: CompletionRequests | None = None
        self._subscriptions: ResourceSubscriptions | None = None
        self._recorded_uris: tuple[str, ...] = ()
        self._watch_resources = watch_resources
        self._listen_counts = listen_counts
        self._listens: Listens | None = None
        self._task_watch: TaskWatch | None = None

    @property
    def stateless(self) -> bool:
        """Whether none of the parts that keep state between requests was made (tasks and
        their watch, subscriptions, listens): the requests' handlers keep none."""
        return (
            self._tasks is None
            and self._task_watch is None
            and self._subscriptions is None
            and self._listens is None
        )

    @property
    def tasks(self) -> TaskRequests:
        """tasks/* requests."""
        if self._tasks is None:
            self._tasks = TaskRequests(
                caller=self._current.get,
                slot_key=self._current.slot_key,
                identity=self._identity,
                executor=self._executor,
                listener=self._listener,
            )
        return self._tasks

    @property
    def task_watch(self) -> TaskWatch:
        """The tasks the listens watch (the tasks extension's notifications/tasks)."""
        if self._task_watch is None:
            self._task_watch = TaskWatch(
                find=self.tasks.find_own,
                show=self.tasks.view_of,
                executor=self._executor,
                listener=self._listener,
                liveness=self._liveness,
            )
        return self._task_watch

    async def task_event(self, event: OperationEvent) -> None:
        """An event of an operation the connection listens to, for the watched tasks (none
        watched: nothing to do)."""
        if self._task_watch is not None:
            await self._task_watch.operation_event(event)

    @property
    def caller(self) -> SessionCaller:
        """Who the feature requests work for."""
        if self._caller is None:
            self._caller = SessionCaller(
                principal=self._current.get,
                slot_key=self._current.slot_key,
                settle=self._executor.runner.flush_unwritten,
            )
        return self._caller

    @property
    def resources(self) -> ResourceRequests:
        """resources/* requests."""
        if self._resources is None:
            self._resources = ResourceRequests(
                caller=self.caller, identity=self._identity, registry=resources
            )
        return self._resources

    @property
    def prompts(self) -> PromptRequests:
        """prompts/* requests."""
        if self._prompts is None:
            self._prompts = PromptRequests(
                caller=self.caller, identity=self._identity, registry=prompts
            )
        return self._prompts

    @property
    def completion(self) -> CompletionRequests:
        """completion/complete requests."""
        if self._completion is None:
            self._completion = CompletionRequests(
                caller=self.caller, prompts=prompts, resources=resources
            )
        return self._completion

    @property
    def subscriptions(self) -> ResourceSubscriptions:
        """resources/subscribe and what it sends."""
        if self._subscriptions is None:
            self._subscriptions = ResourceSubscriptions(
                caller=self.caller,
                connection_id=self._connection_id,
                send=self._send,
                read=self.resources.contents,
                bus=self._executor.bus,
                limit=self._identity.max_subscriptions,
                liveness=self._liveness,
                listen=self._listen,
                deliver=self._watch_resources,
            )
            self._subscriptions.restore(self._recorded_uris)
        return self._subscriptions

    def restore_subscriptions(self, uris: Sequence[str]) -> None:
        """The session's subscribed URIs as its record holds them (Streamable HTTP), taken up
        when the subscriptions are first used."""
        self._recorded_uris = tuple(uris)
        if self._subscriptions is not None:
            self._subscriptions.restore(uris)

    @property
    def subscribed_uris(self) -> list[str] | None:
        """The session's own subscribed URIs; None when it never used its subscriptions (so
        it changed none)."""
        return self._subscriptions.uris if self._subscriptions is not None else None

    @property
    def listens(self) -> Listens:
        """subscriptions/listen requests."""
        if self._listens is None:
            identity = self._identity
            counts = self._listen_counts if self._listen_counts is not None else ListenCounts()
            self._listens = Listens(
                send=self._send,
                subscriptions=self.subscriptions,
                counts=counts,
                per_connection=identity.listens_per_connection,
                per_user=identity.listens_per_user,
                max_entries=identity.listen_max_entries,
                task_watcher=self.task_watch,
            )
        return self._listens

    @property
    def open_listens(self) -> int:
        """How many listens are open (none made: none)."""
        return len(self._listens) if self._listens is not None else 0

    async def list_changed(self, changed: list[str]) -> None:
        """These lists changed: the listens that asked hear of it."""
        if self._listens is not None:
            await self._listens.list_changed(changed)

    def end_listens(self) -> list[RequestId]:
        """End every listen gracefully; their request ids."""
        return self._listens.end_all() if self._listens is not None else []

    async def run_updated(self, update: RunUpdated) -> None:
        """A run the session subscribed to changed (none: nothing subscribed)."""
        if self._subscriptions is not None:
            await self._subscriptions.run_updated(update)

    async def close(self) -> None:
        """The session closed: end its subscriptions, if it made any."""
        if self._subscriptions is not None:
            await self._subscriptions.close()
