// Progress as the server reports it: "batch 3/20 · 350 items/s · ETA 16 s".

const SEPARATOR = " · ";
const RATE = /^[\d.,]+\s+\S+\/s$/;

/** Split a progress message into detail, rate and ETA. */
export function parseProgressMessage(message) {
  const result = { detail: "", rate: "", eta: "" };
  if (!message) return result;
  const detail = [];
  for (const raw of String(message).split(SEPARATOR)) {
    const part = raw.trim();
    if (part.startsWith("ETA ")) result.eta = part.slice(4);
    else if (RATE.test(part)) result.rate = part;
    else if (part) detail.push(part);
  }
  result.detail = detail.join(SEPARATOR);
  return result;
}

const NUMBER = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

/** 1234 -> "1,234"; 1.25 -> "1.3"; undefined -> "?". */
export function formatAmount(value) {
  return typeof value === "number" ? NUMBER.format(value) : "?";
}

/** Progress as a percentage (0-100) of total, or null when the total is unknown. */
export function percentOf(progress, total) {
  if (typeof total !== "number" || total <= 0) return null;
  return Math.min(progress / total, 1) * 100;
}

/** A duration in seconds as "12.3 s" or "2 min 05 s". */
export function formatSeconds(seconds) {
  if (typeof seconds !== "number") return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
}
