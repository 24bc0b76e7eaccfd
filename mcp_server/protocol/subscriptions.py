"""`subscriptions/listen` (2026-07-28, basic/patterns/subscriptions.mdx): the filter a client
asks for, the acknowledgement of what is honoured, and the tagging of every message of a
listen with its subscription id (the listen request's JSON-RPC id).

Pure: the session's listens (mcp_server/listens.py) decide what is honoured and when to send.
"""

from dataclasses import dataclass
from typing import Any

from mcp_server.protocol import methods
from mcp_server.protocol.errors import RequestId, invalid_params
from mcp_server.protocol.messages import notification_message

SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"

# The filter's list-change flags, by the notification each one asks for.
LIST_CHANGE_FLAGS: dict[str, str] = {
    methods.NOTIFICATION_TOOLS_LIST_CHANGED: "toolsListChanged",
    methods.NOTIFICATION_PROMPTS_LIST_CHANGED: "promptsListChanged",
    methods.NOTIFICATION_RESOURCES_LIST_CHANGED: "resourcesListChanged",
}
RESOURCE_SUBSCRIPTIONS = "resourceSubscriptions"
TASK_IDS = "taskIds"


@dataclass(frozen=True, slots=True)
class ListenFilter:
    """What one listen asks for (or, acknowledged, what the server honours)."""

    list_changes: frozenset[str] = frozenset()
    resource_uris: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()

    def wants(self, method: str) -> bool:
        """Whether the list change `method` was asked for."""
        return method in self.list_changes

    def as_params(self) -> dict[str, Any]:
        """The filter as `notifications` says it: only what is asked for (or honoured)."""
        shown: dict[str, Any] = {
            flag: True for method, flag in LIST_CHANGE_FLAGS.items() if method in self.list_changes
        }
        if self.resource_uris:
            shown[RESOURCE_SUBSCRIPTIONS] = list(self.resource_uris)
        if self.task_ids:
            shown[TASK_IDS] = list(self.task_ids)
        return shown


def _strings(value: Any, field: str, bound: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise invalid_params(f"notifications.{field} must be an array of non-empty strings")
    unique = tuple(dict.fromkeys(value))
    if len(unique) > bound:
        raise invalid_params(
            f"notifications.{field} names {len(unique)} entries; at most {bound} per listen",
            {"limit": f"{field}_per_listen", "maximum": bound},
        )
    return unique


def parse_listen_filter(params: dict[str, Any], *, max_entries: int) -> ListenFilter:
    """The filter of a `subscriptions/listen` request; -32602 when it is missing or malformed
    or names more than `max_entries` URIs (or task ids)."""
    notifications = params.get("notifications")
    if not isinstance(notifications, dict):
        raise invalid_params("subscriptions/listen requires notifications, an object")
    flags = set()
    for method, flag in LIST_CHANGE_FLAGS.items():
        value = notifications.get(flag)
        if value is not None and not isinstance(value, bool):
            raise invalid_params(f"notifications.{flag} must be a boolean")
        if value:
            flags.add(method)
    return ListenFilter(
        list_changes=frozenset(flags),
        resource_uris=_strings(
            notifications.get(RESOURCE_SUBSCRIPTIONS), RESOURCE_SUBSCRIPTIONS, max_entries
        ),
        task_ids=_strings(notifications.get(TASK_IDS), TASK_IDS, max_entries),
    )


def tagged(subscription_id: RequestId, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A notification of a listen: `params` with the subscription id in `_meta`."""
    meta = params.get("_meta")
    tag = {SUBSCRIPTION_ID_KEY: subscription_id}
    body = {**params, "_meta": {**meta, **tag} if isinstance(meta, dict) else tag}
    return notification_message(method, body)


def acknowledgement(subscription_id: RequestId, honoured: ListenFilter) -> dict[str, Any]:
    """The first message of a listen: what the server agreed to send."""
    params = {"notifications": honoured.as_params()}
    return tagged(subscription_id, methods.NOTIFICATION_SUBSCRIPTIONS_ACKNOWLEDGED, params)


def listen_ended(subscription_id: RequestId) -> dict[str, Any]:
    """The body of the response that ends a listen gracefully (finished as any modern
    result: `resultType` "complete", serverInfo)."""
    return {"_meta": {SUBSCRIPTION_ID_KEY: subscription_id}}
