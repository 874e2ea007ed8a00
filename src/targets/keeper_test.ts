import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import { KubeClient, type SecretObject } from "../kube/client.ts";
import { sha256Hex, toBase64 } from "../kube/state.ts";
import { RefreshStatus } from "../status.ts";
import type { Token } from "../token.ts";
import { parseTargets } from "./config.ts";
import { TargetKeeper, type TargetKeeperOptions } from "./keeper.ts";
import { TargetsHealth } from "./status.ts";

/** An in-memory API behind a fetch function: namespaces, Secrets, applies, deletes. */
function fakeApi(namespaces: { name: string; labels?: Record<string, string> }[]) {
  const secrets = new Map<string, SecretObject>();
  const applies: string[] = [];
  const refuse = new Map<string, Response | (() => Response)>();
  const fetcher = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const method = init?.method ?? "GET";
    if (url.searchParams.get("watch") === "1") {
      // Open and quiet until the caller aborts, as a real stream ends on abort.
      const signal = init?.signal;
      return new Response(
        new ReadableStream({
          start(controller) {
            signal?.addEventListener("abort", () => controller.error(signal.reason), {
              once: true,
            });
          },
        }),
      );
    }
    if (url.pathname === "/api/v1/namespaces") {
      return Response.json({
        metadata: { resourceVersion: "1" },
        items: namespaces.map((n) => ({ metadata: { name: n.name, labels: n.labels ?? {} } })),
      });
    }
    if (url.pathname === "/api/v1/secrets") {
      const name = url.searchParams.get("fieldSelector")!.split("=")[1];
      return Response.json({
        metadata: { resourceVersion: "1" },
        items: [...secrets.values()].filter((s) => s.metadata.name === name),
      });
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(url.pathname);
    if (m && method === "PATCH") {
      const id = `${m[1]}/${m[2]}`;
      applies.push(id);
      const refused = refuse.get(id);
      if (refused !== undefined) return typeof refused === "function" ? refused() : refused.clone();
      const body = JSON.parse(String(init?.body)) as SecretObject;
      const existing = secrets.get(id);
      const merged = {
        ...body,
        metadata: { ...body.metadata, uid: `uid-${id}` },
        data: { ...existing?.data, ...body.data },
      };
      secrets.set(id, merged);
      return Response.json(merged, { status: existing ? 200 : 201 });
    }
    await Promise.resolve();
    return new Response("{}", { status: 404 });
  };
  const client = new KubeClient({
    server: new URL("http://127.0.0.1:1"),
    authorize: () => Promise.resolve({}),
    description: "a fake API",
    close() {},
  }, { fetch: fetcher as typeof fetch });
  return { client, secrets, applies, refuse };
}

function tokenSource(lifetimeSeconds = 3600) {
  let requests = 0;
  return {
    get requests() {
      return requests;
    },
    fetchToken(): Promise<Token> {
      requests++;
      const now = Date.now();
      return Promise.resolve({
        value: `token-${requests}`,
        obtainedAt: now,
        lifetimeSeconds,
        expiresAt: now + lifetimeSeconds * 1000,
        lifetimeSource: "expires_in" as const,
      });
    },
  };
}

const SCHEDULE = { intervalMs: 3_600_000, renewFraction: 0.67 };

/** A keeper of `targets` (as a config file writes them) on the fake API, without a watch. */
function keeperOf(
  api: ReturnType<typeof fakeApi>,
  source: ReturnType<typeof tokenSource>,
  targets: unknown[],
  options: Partial<TargetKeeperOptions> = {},
): TargetKeeper {
  return new TargetKeeper({
    client: api.client,
    source,
    targets: parseTargets(targets, "test").targets,
    schedule: SCHEDULE,
    watch: false,
    ...options,
  });
}

/** Runs the keeper until the returned function is called, which resolves once it has stopped. */
function start(keeper: TargetKeeper): () => Promise<void> {
  const stop = new AbortController();
  const running = keeper.run(stop.signal);
  return async () => {
    stop.abort();
    await running;
  };
}

const waitUntil = async (check: () => boolean, ms = 3000) => {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

Deno.test("TargetKeeper --once: one token, one apply per Secret, glob and exclusion", async () => {
  const api = fakeApi([{ name: "team-a" }, { name: "team-b" }, { name: "kube-x" }, { name: "ci" }]);
  const source = tokenSource();
  const keeper = keeperOf(api, source, [{
    name: "tok",
    namespaces: ["team-*", "kube-*"],
    excludeNamespaces: ["kube-*"],
  }], { once: true });
  await keeper.run(new AbortController().signal);
  assertEquals(source.requests, 1);
  assertEquals(api.applies.sort(), ["team-a/tok", "team-b/tok"]);
  assertEquals(atob(api.secrets.get("team-a/tok")!.data!.token), "token-1");
  assertEquals(
    api.secrets.get("team-a/tok")!.metadata.annotations!["ktr.appuio.ch/target"],
    "tok:namespaces=team-*,kube-*",
  );
});

Deno.test("TargetKeeper: two selectors on one Secret write neither; another type is left alone; readiness names both", async () => {
  const api = fakeApi([
    { name: "a", labels: { x: "1", y: "1" } },
    { name: "b", labels: { x: "1" } },
    { name: "c", labels: { x: "1" } },
  ]);
  api.secrets.set("c/tok", {
    metadata: { name: "tok", namespace: "c" },
    type: "kubernetes.io/tls",
  });
  const source = tokenSource();
  const clock = { now: () => Date.now(), sleep: () => Promise.resolve() };
  const status = new RefreshStatus({ version: "t", clock });
  const health = new TargetsHealth({ token: status, clock });
  const keeper = keeperOf(api, source, [
    { name: "tok", namespaceSelector: "x=1" },
    { name: "tok", namespaceSelector: "y=1" },
  ], { observer: status });
  health.attach(keeper);
  const stop = start(keeper);
  await waitUntil(() => api.applies.includes("b/tok"));
  await keeper.idle();
  await stop();
  assertEquals(api.applies, ["b/tok"]);
  const ready = health.readiness();
  assert(!ready.ok);
  assertMatch(ready.reason, /2 of 3 Secrets/);
  assertMatch(ready.reason, /a\/tok: selected by targets\[0\] and targets\[1\]/);
  assertMatch(ready.reason, /c\/tok: exists with type kubernetes.io\/tls/);
  assertMatch(health.metrics(), /ktr_targets\{state="blocked"\} 2/);
});

Deno.test("TargetKeeper: a 429 is retried after Retry-After, on its own, with the token in hand", async () => {
  const api = fakeApi([{ name: "a" }, { name: "b" }]);
  let refused = 0;
  api.refuse.set("b/tok", () => {
    if (++refused === 1) {
      return Response.json({ kind: "Status", code: 429, message: "slow down" }, {
        status: 429,
        headers: { "retry-after": "1" },
      });
    }
    api.refuse.delete("b/tok");
    return Response.json({ metadata: { name: "tok", namespace: "b" } }, { status: 201 });
  });
  const source = tokenSource();
  const keeper = keeperOf(api, source, [{ name: "tok", namespaces: ["*"] }], {
    schedule: { ...SCHEDULE, random: () => 0 },
  });
  const started = Date.now();
  const stop = start(keeper);
  await waitUntil(() => api.applies.filter((a) => a === "b/tok").length === 2, 5000);
  const elapsed = Date.now() - started;
  await stop();
  assert(elapsed >= 1000, `retried after ${elapsed} ms`);
  assertEquals(api.applies.filter((a) => a === "a/tok").length, 1);
  assertEquals(source.requests, 1);
});

Deno.test("TargetKeeper: a fresh token of its own in the Secrets is adopted: no token request, no write", async () => {
  const api = fakeApi([{ name: "a" }]);
  const now = Date.now();
  const value = "adopted-token";
  api.secrets.set("a/tok", {
    metadata: {
      name: "tok",
      namespace: "a",
      labels: { "ktr.appuio.ch/managed": "true" },
      annotations: {
        "ktr.appuio.ch/refreshed-at": new Date(now - 1000).toISOString(),
        "ktr.appuio.ch/expires-at": new Date(now + 3_600_000).toISOString(),
        "ktr.appuio.ch/token-sha256": await sha256Hex(value),
      },
    },
    type: "Opaque",
    data: { token: toBase64(value), auth: toBase64(`Bearer ${value}`) },
  });
  const source = tokenSource();
  const keeper = keeperOf(api, source, [{
    name: "tok",
    namespace: "a",
    data: { token: "{{ .token }}", auth: "Bearer {{ .token }}" },
  }]);
  const stop = start(keeper);
  await new Promise((r) => setTimeout(r, 200));
  await stop();
  assertEquals(source.requests, 0);
  assertEquals(api.applies, []);
  assertEquals(keeper.token?.value, value);
});
