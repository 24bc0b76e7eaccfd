// The console page: connection status, tools and their forms, runs with live progress and
// cancel, notices, the frame log and the history table.

import { FrameLog } from "./frame-log.js";
import { ConnectionLost, McpClient } from "./mcp-client.js";
import { formatAmount, formatSeconds, parseProgressMessage, percentOf } from "./progress.js";
import { fetchRuns, renderRuns } from "./runs.js";
import { buildSchemaForm } from "./schema-form.js";

const $ = (id) => document.getElementById(id);
const root = $("console");
const apiBase = root.dataset.apiBase;
const loginUrl = root.dataset.loginUrl;
const wsScheme = location.protocol === "https:" ? "wss" : "ws";
const client = new McpClient(`${wsScheme}://${location.host}${root.dataset.wsPath}`);
const frames = new FrameLog($("frames"));

const STATE_LABELS = {
  connected: "Connected",
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected",
};
const HISTORY_REFRESH_DELAYS = [400, 2000]; // the server writes history in batches

let selected = null;
let readArguments = null;
let active = null;

// --- connection ------------------------------------------------------------------------

client.addEventListener("state", ({ detail }) => {
  const status = $("status");
  status.dataset.state = detail.state;
  const shown = detail.state === "connected" ? "" : detail.detail; // the server's name: a tooltip
  $("status-text").textContent = STATE_LABELS[detail.state] + (shown ? ` — ${shown}` : "");
  status.title = detail.detail;
  $("connect").disabled = detail.state !== "disconnected";
  $("disconnect").disabled = detail.state === "disconnected";
  updateRunButton();
  if (detail.state === "reconnecting" && detail.attempt >= 2) checkStillLoggedIn();
});

client.addEventListener("ready", async () => {
  await Promise.allSettled([loadTools(), setLogLevel()]);
  refreshRuns();
});

client.addEventListener("frame", ({ detail }) => frames.add(detail.direction, detail.text));

client.addEventListener("notification", ({ detail }) => {
  if (detail.method === "notifications/progress") showProgress(detail.params);
  else if (detail.method === "notifications/message") addNotice(detail.params);
  else if (detail.method === "notifications/tools/list_changed") loadTools().catch(() => {});
});

async function checkStillLoggedIn() {
  try {
    await fetchRuns(apiBase, 1);
  } catch (error) {
    if (error.status === 401 || error.status === 403) location.assign(`${loginUrl}?next=/`);
  }
}

$("connect").addEventListener("click", () => client.connect());
$("disconnect").addEventListener("click", () => client.disconnect());

// --- tools -----------------------------------------------------------------------------

async function loadTools() {
  const tools = [];
  let cursor;
  do {
    const page = await client.request("tools/list", cursor ? { cursor } : {});
    tools.push(...(page.tools ?? []));
    cursor = page.nextCursor;
  } while (cursor);
  const list = $("tool-list");
  list.replaceChildren(
    ...tools.map((tool) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "tool";
      button.dataset.tool = tool.name;
      const name = document.createElement("span");
      name.className = "tool-name";
      name.textContent = tool.name;
      const title = document.createElement("span");
      title.className = "muted";
      title.textContent = tool.title ?? "";
      button.append(name, title);
      button.addEventListener("click", () => selectTool(tool));
      item.append(button);
      return item;
    }),
  );
  for (const button of list.querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === selected?.name));
  }
  // A tool the tenant no longer has (its tool set changed) cannot be run from the form.
  if (selected && !active && !tools.some((tool) => tool.name === selected.name)) {
    selected = null;
    $("tool-form").hidden = true;
    updateRunButton();
  }
}

function selectTool(tool) {
  if (active) return;
  selected = tool;
  for (const button of document.querySelectorAll("#tool-list button")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool.name));
  }
  $("tool-title").textContent = tool.title ? `${tool.title} (${tool.name})` : tool.name;
  $("tool-description").textContent = tool.description ?? "";
  readArguments = buildSchemaForm($("tool-fields"), tool.inputSchema);
  $("tool-form").hidden = false;
  setRunState("idle", "");
  updateRunButton();
}

async function setLogLevel() {
  if (client.state === "connected") await client.request("logging/setLevel", { level: $("log-level").value });
}

$("log-level").addEventListener("change", () => setLogLevel().catch(() => {}));

// --- a run -----------------------------------------------------------------------------

function updateRunButton() {
  $("run").disabled = Boolean(active) || client.state !== "connected" || !selected;
  $("cancel").disabled = !active;
}

function setRunState(state, text) {
  const node = $("run-state");
  node.dataset.state = state;
  node.textContent = text;
}

function resetProgress() {
  $("progress-block").hidden = false;
  $("progress-fill").style.width = "0%";
  $("progress").setAttribute("aria-valuenow", "0");
  $("progress").classList.remove("indeterminate", "done");
  for (const id of ["progress-count", "progress-percent", "progress-rate", "progress-eta", "progress-detail"]) $(id).textContent = "";
  $("result").hidden = true;
  $("result").replaceChildren();
}

function showProgress(params) {
  if (!active || params.progressToken !== active.id) return;
  const percent = percentOf(params.progress, params.total);
  const text = parseProgressMessage(params.message);
  $("progress").classList.toggle("indeterminate", percent === null);
  if (percent !== null) {
    $("progress-fill").style.width = `${percent}%`;
    $("progress").setAttribute("aria-valuenow", String(Math.floor(percent)));
    $("progress-percent").textContent = `${Math.floor(percent)} %`;
    $("progress-count").textContent = `${formatAmount(params.progress)} / ${formatAmount(params.total)}`;
  }
  $("progress-rate").textContent = text.rate;
  $("progress-eta").textContent = text.eta ? `ETA ${text.eta}` : "";
  $("progress-detail").textContent = text.detail;
}

function finishProgress() {
  $("progress").classList.remove("indeterminate");
  $("progress").classList.add("done");
  $("progress-fill").style.width = "100%";
  $("progress").setAttribute("aria-valuenow", "100");
  $("progress-percent").textContent = "100 %";
  $("progress-eta").textContent = "";
}

function resultText(result) {
  return (result.content ?? []).filter((item) => item.type === "text").map((item) => item.text).join("\n");
}

function isFlatRecord(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length > 0
    && Object.values(value).every((item) => item === null || typeof item !== "object");
}

function showResult(result, seconds) {
  const box = $("result");
  const data = result.structuredContent;
  const lines = [];
  let errorLog = null;
  if (data && ["total", "succeeded", "errors"].every((key) => Number.isInteger(data[key]))) {
    lines.push(`Total     ${formatAmount(data.total)}`, `Success   ${formatAmount(data.succeeded)}`, `Errors    ${formatAmount(data.errors)}`);
    if (data.errors && data.error_log) errorLog = data.error_log;
    if (typeof data.duration_s === "number") lines.push(`Duration  ${formatSeconds(data.duration_s)}`);
  } else if (isFlatRecord(data) && !result.isError) {
    const width = Math.max(...Object.keys(data).map((key) => key.length)) + 2;
    for (const [key, value] of Object.entries(data)) lines.push(`${key.padEnd(width)}${value}`);
    lines.push(`${"duration".padEnd(width)}${formatSeconds(seconds)} (in the console)`);
  } else {
    lines.push(resultText(result) || JSON.stringify(data ?? result, null, 2));
    lines.push(`Duration  ${formatSeconds(seconds)}`);
  }
  box.textContent = lines.join("\n");
  if (errorLog) {
    const a = document.createElement("a");
    a.href = errorLog;
    a.textContent = errorLog;
    a.target = "_blank";
    box.append("\nError log ", a);
  }
  box.classList.toggle("error", Boolean(result.isError));
  box.hidden = false;
}

$("tool-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (active || !selected) return;
  let args;
  try {
    args = readArguments();
  } catch (error) {
    setRunState("invalid", error.message);
    return;
  }
  const id = client.newId();
  const started = performance.now();
  active = { id, tool: selected.name };
  resetProgress();
  setRunState("running", `Running ${selected.name}…`);
  updateRunButton();
  try {
    const result = await client.request("tools/call", { name: selected.name, arguments: args, _meta: { progressToken: id } }, id);
    if (!result.isError) finishProgress();
    setRunState(result.isError ? "failed" : "succeeded", result.isError ? "The tool reported an error" : "Succeeded");
    showResult(result, (performance.now() - started) / 1000);
  } catch (error) {
    if (error.cancelled) setRunState("cancelled", "Cancelled");
    else if (error instanceof ConnectionLost) setRunState("interrupted", "Interrupted by the disconnect: the server cancels the calls of a dropped connection. Run it again.");
    else setRunState("failed", error.message);
  } finally {
    active = null;
    updateRunButton();
    for (const delay of HISTORY_REFRESH_DELAYS) setTimeout(refreshRuns, delay);
  }
});

$("cancel").addEventListener("click", () => {
  if (active) client.cancel(active.id);
});

// --- notices, history, frames ----------------------------------------------------------

function addNotice(params) {
  const item = document.createElement("li");
  item.className = `notice level-${params.level}`;
  const level = document.createElement("span");
  level.className = "badge";
  level.textContent = params.level;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  const body = document.createElement("span");
  body.className = "notice-body";
  const data = typeof params.data === "string" ? params.data : JSON.stringify(params.data);
  body.textContent = params.logger ? `${params.logger}: ${data}` : data;
  item.append(time, level, body);
  const list = $("notices");
  list.prepend(item);
  while (list.children.length > 100) list.lastElementChild.remove();
}

const LIVE_RUNS_REFRESH = 1500; // while a listed run is queued or running
let liveRunsTimer = null;

async function refreshRuns() {
  try {
    const runs = await fetchRuns(apiBase);
    renderRuns($("runs").tBodies[0], runs, apiBase);
    clearTimeout(liveRunsTimer);
    if (runs.some((run) => run.status === "queued" || run.status === "running")) {
      liveRunsTimer = setTimeout(refreshRuns, LIVE_RUNS_REFRESH);
    }
  } catch (error) {
    if (error.status === 401 || error.status === 403) location.assign(`${loginUrl}?next=/`);
  }
}

$("refresh-runs").addEventListener("click", refreshRuns);
$("clear-frames").addEventListener("click", () => frames.clear());

refreshRuns();
client.connect();
