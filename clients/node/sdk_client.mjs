// The official TypeScript SDK v2 client (@modelcontextprotocol/client, its Streamable HTTP
// transport) driving one scenario against a server, printing what it saw as one JSON object.
// tests/http runs it as a subprocess and judges the JSON. The token comes from MCP_TOKEN.
//
//   node clients/node/sdk_client.mjs URL session [auto]  connect, list, add, a call with progress
//   node clients/node/sdk_client.mjs URL cancel [auto]   a long call aborted after its first
//                                                        progress (legacy: the SDK sends
//                                                        notifications/cancelled)
// `auto` is the SDK's opt-in version negotiation: it probes server/discover and so speaks
// 2026-07-28 to this server; without it (the SDK's default) the initialize handshake.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const CALL_TIMEOUT_MS = 60_000;
// What the wire showed: each POST's Mcp-Method header (null: not sent), sessions minted.
const wire = { mcp_methods: [], session_ids_minted: 0 };

async function recordingFetch(input, init) {
  if ((init?.method ?? "GET") === "POST") {
    wire.mcp_methods.push(new Headers(init?.headers).get("mcp-method"));
  }
  const response = await fetch(input, init);
  if (response.headers.has("mcp-session-id")) wire.session_ids_minted += 1;
  return response;
}

async function connected(url, mode) {
  const token = process.env.MCP_TOKEN;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers },
    fetch: recordingFetch,
  });
  const options = mode === "auto" ? { versionNegotiation: { mode: "auto" } } : {};
  const client = new Client({ name: "tests-typescript-sdk", version: "1.0.0" }, options);
  await client.connect(transport);
  return client;
}

async function session(client) {
  const progress = [];
  const tools = await client.listTools();
  const add = await client.callTool({ name: "add", arguments: { a: 20, b: 22 } });
  const batch = await client.callTool(
    { name: "process_batch", arguments: { count: 5, item_ms: 20 } },
    { onprogress: (p) => progress.push(p), timeout: CALL_TIMEOUT_MS },
  );
  return {
    protocol_version: client.getNegotiatedProtocolVersion?.() ?? null,
    server: client.getServerVersion?.() ?? null,
    tools: tools.tools.map((tool) => tool.name),
    add,
    batch,
    progress,
  };
}

async function cancel(client) {
  const abort = new AbortController();
  let progressed = false;
  const call = client.callTool(
    { name: "process_batch", arguments: { count: 100000, item_ms: 10 } },
    {
      signal: abort.signal,
      timeout: CALL_TIMEOUT_MS,
      onprogress: () => {
        progressed = true;
        abort.abort("cancelled by the test client");
      },
    },
  );
  let error = null;
  try {
    await call;
  } catch (caught) {
    error = String(caught?.message ?? caught);
  }
  const addAfter = await client.callTool({ name: "add", arguments: { a: 1, b: 2 } });
  return { cancelled_after_progress: progressed, error, add_after: addAfter };
}

const [url, scenario, mode] = process.argv.slice(2);
const scenarios = { session, cancel };
if (!url || !scenarios[scenario] || (mode !== undefined && mode !== "auto")) {
  console.error("usage: sdk_client.mjs URL session|cancel [auto]");
  process.exit(2);
}
const client = await connected(url, mode);
try {
  const seen = await scenarios[scenario](client);
  const version = client.getNegotiatedProtocolVersion?.() ?? null;
  console.log(JSON.stringify({ protocol_version: version, ...seen, ...wire }));
} finally {
  await client.close();
}
