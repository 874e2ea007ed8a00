import { assert, assertEquals } from "../../tests/assert.ts";
import { KubeClient, type SecretObject } from "./client.ts";
import { type SecretChange, SecretWatch } from "./watch.ts";

/** A watch answer: lines to send (then end, or hang until aborted), or a status. */
type Script =
  | { lines: unknown[]; hang?: boolean }
  | { status: number; reason?: string };

function scripted(scripts: Script[], listRv = () => "10") {
  const seen: { kind: "list" | "watch"; rv: string | null; url: URL }[] = [];
  const fetcher = (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const watch = url.searchParams.get("watch") === "1";
    seen.push({ kind: watch ? "watch" : "list", rv: url.searchParams.get("resourceVersion"), url });
    if (!watch) {
      return Promise.resolve(Response.json({
        kind: "SecretList",
        metadata: { resourceVersion: listRv() },
        items: [secret("listed", "10")],
      }));
    }
    const script = scripts.shift() ?? { lines: [], hang: true };
    if ("status" in script) {
      return Promise.resolve(Response.json({
        kind: "Status",
        code: script.status,
        reason: script.reason,
        message: "too old resource version",
      }, { status: script.status }));
    }
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const line of script.lines) {
          controller.enqueue(new TextEncoder().encode(JSON.stringify(line) + "\n"));
        }
        if (!script.hang) controller.close();
        init?.signal?.addEventListener("abort", () => {
          try {
            controller.error(new DOMException("aborted", "AbortError"));
          } catch {
            // closed
          }
        });
      },
    });
    return Promise.resolve(new Response(body));
  };
  const client = new KubeClient({
    server: new URL("https://kube.test"),
    authorize: () => Promise.resolve({}),
    description: "test",
    close() {},
  }, { fetch: fetcher as typeof fetch });
  return { client, seen };
}

function secret(value: string, rv: string): SecretObject {
  return {
    metadata: { name: "tok", namespace: "ns", resourceVersion: rv },
    data: { token: value },
  };
}

async function runUntil(watch: SecretWatch, done: () => boolean, timeoutMs = 3000) {
  const stop = new AbortController();
  const running = watch.run(stop.signal);
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  stop.abort();
  await running;
  assert(done(), "the watch did not get there in time");
}

Deno.test("SecretWatch lists, then follows changes in order and reconnects from the last resourceVersion", async () => {
  const { client, seen } = scripted([
    {
      lines: [
        { type: "ADDED", object: secret("a", "11") },
        { type: "MODIFIED", object: secret("b", "12") },
        { type: "BOOKMARK", object: { kind: "Secret", metadata: { resourceVersion: "15" } } },
      ],
    },
    { lines: [{ type: "DELETED", object: secret("b", "16") }] },
  ]);
  const synced: SecretObject[][] = [];
  const changes: SecretChange[] = [];
  const watch = new SecretWatch({
    client,
    name: "tok",
    namespace: "ns",
    onSync: (s) => void synced.push(s),
    onChange: (c) => void changes.push(c),
  });
  await runUntil(watch, () => changes.length === 3 && seen.length >= 4);
  assertEquals(synced.length, 1);
  assertEquals(synced[0][0].data?.token, "listed");
  assertEquals(changes.map((c) => `${c.type}:${c.secret.data?.token}`), [
    "ADDED:a",
    "MODIFIED:b",
    "DELETED:b",
  ]);
  assertEquals(seen.map((s) => `${s.kind}:${s.rv}`).slice(0, 4), [
    "list:null",
    "watch:10",
    "watch:15",
    "watch:16",
  ]);
  const url = seen[1].url;
  assertEquals(url.pathname, "/api/v1/namespaces/ns/secrets");
  assertEquals(url.searchParams.get("fieldSelector"), "metadata.name=tok");
  assertEquals(url.searchParams.get("allowWatchBookmarks"), "true");
  assertEquals(url.searchParams.get("timeoutSeconds"), "300");
  assertEquals(watch.stats.lists, 1);
});

Deno.test("SecretWatch lists again after HTTP 410 and after an ERROR event with code 410", async () => {
  let rv = 10;
  const { client, seen } = scripted([
    { status: 410, reason: "Expired" },
    { lines: [{ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } }] },
  ], () => String(rv++));
  let syncs = 0;
  const watch = new SecretWatch({
    client,
    name: "tok",
    namespace: "ns",
    onSync: () => void syncs++,
    onChange: () => {},
  });
  await runUntil(watch, () => syncs === 3 && seen.length >= 6);
  assertEquals(seen.map((s) => `${s.kind}:${s.rv}`).slice(0, 6), [
    "list:null",
    "watch:10",
    "list:null",
    "watch:11",
    "list:null",
    "watch:12",
  ]);
  assertEquals(watch.stats.expired, 2);
});

Deno.test("SecretWatch drops a silent stream and reconnects", async () => {
  const { client, seen } = scripted([{ lines: [], hang: true }, { lines: [], hang: true }]);
  const watch = new SecretWatch({
    client,
    name: "tok",
    namespace: "ns",
    silenceMs: 100,
    onSync: () => {},
    onChange: () => {},
  });
  await runUntil(watch, () => watch.stats.silent >= 1 && seen.length >= 3);
  assertEquals(seen[2].kind, "watch");
  assertEquals(seen[2].rv, "10");
});

Deno.test("SecretWatch retries a failed watch with backoff and watches every namespace without one", async () => {
  const { client, seen } = scripted([{ status: 500 }, { status: 500 }]);
  const watch = new SecretWatch({
    client,
    name: "tok",
    backoffBaseMs: 20,
    random: () => 0.5,
    onSync: () => {},
    onChange: () => {},
  });
  await runUntil(watch, () => seen.length >= 4);
  assertEquals(watch.stats.failures, 2);
  assertEquals(seen[1].url.pathname, "/api/v1/secrets");
});
