"""MCP method and notification names."""

INITIALIZE = "initialize"
PING = "ping"
TOOLS_LIST = "tools/list"
TOOLS_CALL = "tools/call"
LOGGING_SET_LEVEL = "logging/setLevel"
# Requests of the server to the client.
ELICITATION_CREATE = "elicitation/create"
SAMPLING_CREATE_MESSAGE = "sampling/createMessage"

NOTIFICATION_INITIALIZED = "notifications/initialized"
NOTIFICATION_CANCELLED = "notifications/cancelled"
NOTIFICATION_PROGRESS = "notifications/progress"
NOTIFICATION_MESSAGE = "notifications/message"
NOTIFICATION_TOOLS_LIST_CHANGED = "notifications/tools/list_changed"
TASKS_GET = "tasks/get"
TASKS_RESULT = "tasks/result"
TASKS_LIST = "tasks/list"
TASKS_CANCEL = "tasks/cancel"

NOTIFICATION_TASK_STATUS = "notifications/tasks/status"
