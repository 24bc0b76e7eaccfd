// The official TypeScript SDK v2 client (@modelcontextprotocol/client, its Streamable HTTP
// transport) driving one scenario against a server, printing what it saw as one JSON object.
// tests/http runs it as a subprocess and judges the JSON. The token comes from MCP_TOKEN.
//
//   node clients/node/sdk_client.mjs URL session [auto]  connect, list, add, a call with progress
//   node clients/node/sdk_client.mjs URL cancel [auto]   a long call aborted after its first
//                                                        progress (legacy: the SDK sends
//                                                        notifications/cancelled)
//   node clients/node/sdk_client.mjs URL confirm RUN accept|decline
//                                                        2026-07-28 (pinned):
//                                                        delete_run_thumbnails, its
//                                                        input-required question answered
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

async function connected(url, options = {}, setUp = undefined) {
  const token = process.env.MCP_TOKEN;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers },
    fetch: recordingFetch,
  });
  const client = new Client({ name: "tests-typescript-sdk", version: "1.0.0" }, options);
  setUp?.(client);
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

// The SDK fulfils the input-required result's elicitation through this handler and retries
// the call with the answer and the request state; callTool returns the final result.
function confirming(runId, action) {
  const asked = [];
  const options = {
    capabilities: { elicitation: {} },
    versionNegotiation: { mode: { pin: "2026-07-28" } },
  };
  const setUp = (client) =>
    client.setRequestHandler("elicitation/create", async (request) => {
      asked.push(request.params.message);
      return action === "accept"
        ? { action: "accept", content: { confirm: true } }
        : { action: "decline" };
    });
  const run = async (client) => {
    const result = await client.callTool(
      { name: "delete_run_thumbnails", arguments: { run_id: runId } },
      { timeout: CALL_TIMEOUT_MS },
    );
    return { asked, result };
  };
  return { options, setUp, run };
}

const negotiation = (mode) => (mode === "auto" ? { versionNegotiation: { mode: "auto" } } : {});
const [url, scenario, ...rest] = process.argv.slice(2);
const scenarios = {
  session: { options: negotiation(rest[0]), run: session },
  cancel: { options: negotiation(rest[0]), run: cancel },
  confirm: confirming(rest[0], rest[1] ?? "accept"),
};
const modeOk = scenario === "confirm" || rest[0] === undefined || rest[0] === "auto";
if (!url || !scenarios[scenario] || !modeOk) {
  console.error("usage: sdk_client.mjs URL session|cancel [auto] | confirm RUN accept|decline");
  process.exit(2);
}
const chosen = scenarios[scenario];
const client = await connected(url, chosen.options, chosen.setUp);
try {
  const seen = await chosen.run(client);
  const version = client.getNegotiatedProtocolVersion?.() ?? null;
  console.log(JSON.stringify({ protocol_version: version, ...seen, ...wire }));
} finally {
  await client.close();
}
