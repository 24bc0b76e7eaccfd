"""MCP method and notification names."""

INITIALIZE = "initialize"
PING = "ping"
# 2026-07-28: what the server speaks, in place of the handshake.
SERVER_DISCOVER = "server/discover"
TOOLS_LIST = "tools/list"
TOOLS_CALL = "tools/call"
LOGGING_SET_LEVEL = "logging/setLevel"
# Requests of the server to the client.
ELICITATION_CREATE = "elicitation/create"
SAMPLING_CREATE_MESSAGE = "sampling/createMessage"
ROOTS_LIST = "roots/list"

NOTIFICATION_INITIALIZED = "notifications/initialized"
NOTIFICATION_CANCELLED = "notifications/cancelled"
NOTIFICATION_PROGRESS = "notifications/progress"
NOTIFICATION_MESSAGE = "notifications/message"
NOTIFICATION_TOOLS_LIST_CHANGED = "notifications/tools/list_changed"
TASKS_GET = "tasks/get"
TASKS_RESULT = "tasks/result"
TASKS_LIST = "tasks/list"
TASKS_CANCEL = "tasks/cancel"
# The tasks extension (2026-07-28) adds tasks/update (and notifications/tasks, below).
TASKS_UPDATE = "tasks/update"

NOTIFICATION_TASK_STATUS = "notifications/tasks/status"
RESOURCES_LIST = "resources/list"
RESOURCES_TEMPLATES_LIST = "resources/templates/list"
RESOURCES_READ = "resources/read"
RESOURCES_SUBSCRIBE = "resources/subscribe"
RESOURCES_UNSUBSCRIBE = "resources/unsubscribe"
PROMPTS_LIST = "prompts/list"
PROMPTS_GET = "prompts/get"
COMPLETION_COMPLETE = "completion/complete"
# 2026-07-28: one long-lived request per stream of notifications (basic/patterns/subscriptions).
SUBSCRIPTIONS_LISTEN = "subscriptions/listen"

NOTIFICATION_RESOURCES_UPDATED = "notifications/resources/updated"
NOTIFICATION_RESOURCES_LIST_CHANGED = "notifications/resources/list_changed"
NOTIFICATION_PROMPTS_LIST_CHANGED = "notifications/prompts/list_changed"
NOTIFICATION_SUBSCRIPTIONS_ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
# The tasks extension's push of a task's whole state (io.modelcontextprotocol/tasks).
NOTIFICATION_TASKS = "notifications/tasks"
