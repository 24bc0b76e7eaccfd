// MCP over WebSocket for the browser: handshake, requests, notifications, reconnection.
// The browser sends the session cookie and its Origin; the server checks both.

const PROTOCOL_VERSION = "2025-11-25";

export class ConnectionLost extends Error {}

/** Delay before reconnection attempt `attempt` (1-based): exponential, capped, equal jitter. */
export function backoffDelay(attempt, { initial = 500, max = 15000, multiplier = 2 } = {}) {
  const ceiling = Math.min(max, initial * multiplier ** Math.max(attempt - 1, 0));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * Events: "state" {state, detail}, "frame" {direction, text}, "notification" {method, params},
 * "ready" {serverInfo}. States: disconnected, connecting, connected, reconnecting.
 */
export class McpClient extends EventTarget {
  constructor(url, { clientName = "mcp-console", backoff = {} } = {}) {
    super();
    this.url = url;
    this.clientName = clientName;
    this.backoff = backoff;
    this.state = "disconnected";
    this.socket = null;
    this.pending = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.wanted = false;
    this.timer = null;
  }

  /** Open the connection (and keep it open: reconnect after drops until `disconnect`). */
  connect() {
    this.wanted = true;
    this.attempt = 0;
    clearTimeout(this.timer);
    if (!this.socket) this.open();
  }

  /** Close the connection and stop reconnecting. */
  disconnect() {
    this.wanted = false;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "closed by the user");
    else this.setState("disconnected");
  }

  open() {
    this.setState(this.attempt ? "reconnecting" : "connecting", this.attempt ? `attempt ${this.attempt}` : "");
    const socket = new WebSocket(this.url, ["mcp"]);
    this.socket = socket;
    socket.addEventListener("open", () => this.handshake());
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  async handshake() {
    try {
      const result = await this.request("initialize", {
        protocolVersion: PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: this.clientName, version: "1" },
      });
      this.notify("notifications/initialized");
      this.attempt = 0;
      this.setState("connected", result.serverInfo?.name ?? "");
      this.dispatchEvent(new CustomEvent("ready", { detail: { serverInfo: result.serverInfo ?? {} } }));
    } catch (error) {
      if (!(error instanceof ConnectionLost)) this.socket?.close(1002, "initialize failed");
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    const reason = event.code === 1000 ? "closed" : `connection lost (code ${event.code}${event.reason ? ", " + event.reason : ""})`;
    for (const { reject } of this.pending.values()) reject(new ConnectionLost(reason));
    this.pending.clear();
    if (!this.wanted) {
      this.setState("disconnected", reason);
      return;
    }
    this.attempt += 1;
    const delay = backoffDelay(this.attempt, this.backoff);
    this.setState("reconnecting", `${reason}; retrying in ${(delay / 1000).toFixed(1)} s (attempt ${this.attempt})`);
    this.timer = setTimeout(() => this.open(), delay);
  }

  setState(state, detail = "") {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, detail, attempt: this.attempt } }));
  }

  send(message) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) throw new ConnectionLost("not connected");
    const text = JSON.stringify(message);
    this.socket.send(text);
    this.dispatchEvent(new CustomEvent("frame", { detail: { direction: "sent", text } }));
  }

  /** A request id not used yet on this page. */
  newId() {
    return `console-${this.nextId++}`;
  }

  /** Send a request; resolves with its result, rejects with its error or ConnectionLost. */
  request(method, params, id = this.newId()) {
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.send({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
      } catch (error) {
        this.pending.delete(id);
        reject(error);
      }
    });
  }

  /** Send a notification. */
  notify(method, params) {
    this.send({ jsonrpc: "2.0", method, ...(params === undefined ? {} : { params }) });
  }

  /** Cancel a request: the server stops it and sends no response, so stop waiting too. */
  cancel(id, reason = "cancelled in the console") {
    const entry = this.pending.get(id);
    this.pending.delete(id);
    try {
      this.notify("notifications/cancelled", { requestId: id, reason });
    } finally {
      entry?.reject(Object.assign(new Error(reason), { cancelled: true }));
    }
  }

  receive(text) {
    this.dispatchEvent(new CustomEvent("frame", { detail: { direction: "received", text } }));
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    for (const item of Array.isArray(message) ? message : [message]) this.route(item);
  }

  route(message) {
    if (typeof message?.method === "string") {
      if ("id" in message) {
        const reply = message.method === "ping"
          ? { jsonrpc: "2.0", id: message.id, result: {} }
          : { jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "Method not found" } };
        this.send(reply);
        return;
      }
      this.dispatchEvent(new CustomEvent("notification", { detail: { method: message.method, params: message.params ?? {} } }));
      return;
    }
    const entry = this.pending.get(message?.id);
    if (!entry) return;
    this.pending.delete(message.id);
    if (message.error) entry.reject(Object.assign(new Error(message.error.message), { code: message.error.code }));
    else entry.resolve(message.result ?? {});
  }
}
