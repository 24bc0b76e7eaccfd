// The history table: GET /api/runs/ with the session cookie, linking to detail and error logs.

import { formatSeconds } from "./progress.js";

function cell(text, className, label) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (label) td.dataset.label = label;
  td.textContent = text;
  return td;
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.target = "_blank";
  a.rel = "noopener";
  return a;
}

/** Fetch the latest runs; an Error with `status` when the API refuses. */
export async function fetchRuns(apiBase, limit = 20) {
  const response = await fetch(`${apiBase}runs/?page_size=${limit}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) throw Object.assign(new Error(`GET runs answered ${response.status}`), { status: response.status });
  const page = await response.json();
  return page.results ?? [];
}

/** Replace the rows of `tbody` with `runs`. */
export function renderRuns(tbody, runs, apiBase) {
  const rows = runs.map((run) => {
    const tr = document.createElement("tr");
    tr.dataset.runId = run.id;
    tr.dataset.status = run.status;
    const status = cell("", "");
    const badge = document.createElement("span");
    badge.className = `badge status-${run.status}`;
    badge.textContent = run.status;
    status.append(badge);
    const percent = typeof run.progress_percent === "number" ? `${Math.round(run.progress_percent)} %` : "";
    const queued = run.queued_at ? new Date(run.queued_at).toLocaleString() : "";
    const links = cell("", "links");
    links.append(link(`${apiBase}runs/${run.id}/`, "details"), " ", link(`${apiBase}runs/${run.id}/errors.json`, "errors.json"));
    tr.append(
      cell(run.tool, "tool"),
      status,
      cell(percent, "num", "progress"),
      cell(String(run.error_count ?? 0), "num", "errors"),
      cell(queued, "when"),
      cell(formatSeconds(run.duration_seconds), "num", "duration"),
      links,
    );
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell("No runs yet.", "muted");
    td.colSpan = 7;
    tr.append(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}
