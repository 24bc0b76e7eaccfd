"""The parts of a session for tasks, resources, prompts, completion and subscriptions, each
made on its first use.

Most connections never use most of them, and a reconnect storm pays for every object a
handshake makes (and for the garbage collections they bring on): the session holds this one
object instead of six, and a part exists once a request needs it.
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from accounts.principal import Principal
from mcp_server.cluster.messages import RunUpdated
from mcp_server.completion_requests import CompletionRequests
from mcp_server.identity import ServerIdentity
from mcp_server.listener import ConnectionListener
from mcp_server.prompt_requests import PromptRequests
from mcp_server.prompts.registry import prompts
from mcp_server.resource_requests import ResourceRequests
from mcp_server.resource_subscriptions import ResourceSubscriptions
from mcp_server.resources.registry import resources
from mcp_server.runtime.limits import SlotKey
from mcp_server.session_caller import SessionCaller
from mcp_server.task_requests import TaskRequests

if TYPE_CHECKING:
    from mcp_server.cluster.liveness import Liveness
    from mcp_server.executors import Executor


class SessionFeatures:
    """A session's feature requests, each part made when first asked for."""

    __slots__ = (
        "_caller",
        "_completion",
        "_connection_id",
        "_executor",
        "_identity",
        "_listen",
        "_listener",
        "_liveness",
        "_principal",
        "_prompts",
        "_resources",
        "_send",
        "_slot_key",
        "_subscriptions",
        "_tasks",
    )

    def __init__(
        self,
        *,
        principal: Callable[[], Principal],
        slot_key: Callable[[], SlotKey],
        identity: ServerIdentity,
        executor: "Executor",
        listener: ConnectionListener,
        connection_id: str,
        send: Callable[[Any], Awaitable[None]],
        liveness: "Liveness | None",
        listen: Callable[[], None] | None,
    ) -> None:
        self._principal, self._slot_key = principal, slot_key
        self._identity, self._executor, self._listener = identity, executor, listener
        self._connection_id, self._send = connection_id, send
        self._liveness, self._listen = liveness, listen
        self._tasks: TaskRequests | None = None
        self._caller: SessionCaller | None = None
        self._resources: ResourceRequests | None = None
        self._prompts: PromptRequests | None = None
        self._completion: CompletionRequests | None = None
        self._subscriptions: ResourceSubscriptions | None = None

    @property
    def tasks(self) -> TaskRequests:
        """tasks/* requests."""
        if self._tasks is None:
            self._tasks = TaskRequests(
                caller=self._principal,
                slot_key=self._slot_key,
                identity=self._identity,
                executor=self._executor,
                listener=self._listener,
            )
        return self._tasks

    @property
    def caller(self) -> SessionCaller:
        """Who the feature requests work for."""
        if self._caller is None:
            self._caller = SessionCaller(
                principal=self._principal,
                slot_key=self._slot_key,
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
            )
        return self._subscriptions

    async def run_updated(self, update: RunUpdated) -> None:
        """A run the session subscribed to changed (none: nothing subscribed)."""
        if self._subscriptions is not None:
            await self._subscriptions.run_updated(update)

    async def close(self) -> None:
        """The session closed: end its subscriptions, if it made any."""
        if self._subscriptions is not None:
            await self._subscriptions.close()
