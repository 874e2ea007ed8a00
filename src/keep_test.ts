import { assert, assertEquals } from "../tests/assert.ts";
import { createFakeKube, fakeKubeClient, statusResponse } from "../tests/fixtures/fake_kube.ts";
import { keepSecret, SecretKeeper, TokenBucket } from "./keep.ts";
import { EventRecorder } from "./kube/events.ts";
import { SecretWriter } from "./kube/secret.ts";
import { ANNOTATIONS, sha256Hex, toBase64 } from "./kube/state.ts";
import type { Token, TokenSource } from "./token.ts";
import { Wake } from "./wake.ts";

const target = { namespace: "ns", name: "tok", key: "token" };
const schedule = { intervalMs: 500_000, renewFraction: 2 / 3 };

function counterSource(lifetimeSeconds = 600) {
  let calls = 0;
  const source: TokenSource = {
    fetchToken() {
      calls++;
      const obtainedAt = Date.now();
      const token: Token = {
        value: `token-${calls}`,
        obtainedAt,
        lifetimeSeconds,
        expiresAt: obtainedAt + lifetimeSeconds * 1000,
        lifetimeSource: "expires_in",
      };
      return Promise.resolve(token);
    },
  };
  return { source, calls: () => calls };
}

async function until(what: string, done: () => boolean, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function start(fake = createFakeKube(), lifetimeSeconds = 600, watch = true) {
  const client = fakeKubeClient(fake, { description: "test" });
  const { source, calls } = counterSource(lifetimeSeconds);
  const stop = new AbortController();
  const events = new EventRecorder({ client, instance: "pod-1" });
  let keeper: SecretKeeper | undefined;
  const running = keepSecret({
    client,
    source,
    target,
    schedule,
    signal: stop.signal,
    watch,
    events,
    onStarted: (parts) => (keeper = parts.keeper),
  });
  const token = () => {
    const b64 = fake.secrets.get("ns/tok")?.data?.token;
    return b64 === undefined ? undefined : atob(b64);
  };
  const patches = () =>
    fake.requests.filter((r) => r.method === "PATCH" && r.path.includes("/secrets/")).length;
  return {
    fake,
    calls,
    token,
    patches,
    keeper: () => keeper!,
    async stop() {
      stop.abort();
      await running;
    },
  };
}

Deno.test("keepSecret() adopts a fresh token found at start: no token request, no write", async () => {
  const fake = createFakeKube();
  const obtainedAt = Date.now() - 1000;
  fake.secrets.set("ns/tok", {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: "tok",
      namespace: "ns",
      resourceVersion: "5",
      annotations: {
        [ANNOTATIONS.refreshedAt]: new Date(obtainedAt).toISOString(),
        [ANNOTATIONS.expiresAt]: new Date(obtainedAt + 600_000).toISOString(),
        [ANNOTATIONS.tokenSha256]: await sha256Hex("kept"),
      },
    },
    data: { token: toBase64("kept") },
  });
  const k = start(fake);
  await until("the watch", () => fake.watchers === 1);
  await new Promise((r) => setTimeout(r, 50));
  await k.stop();
  assertEquals(k.calls(), 0);
  assertEquals(k.patches(), 0);
  assertEquals(k.token(), "kept");
});

Deno.test("keepSecret() writes a deleted Secret back with the token in hand, and an overwritten key", async () => {
  const k = start();
  await until("the first write", () => k.token() === "token-1" && k.fake.watchers === 1);
  const patchesBefore = k.patches();
  k.fake.remove("ns", "tok");
  await until("the repair", () => k.token() === "token-1");
  k.fake.mutate("ns", "tok", (s) => (s.data = { ...s.data, token: toBase64("garbage") }));
  await until("the second repair", () => k.token() === "token-1");
  assertEquals(k.patches(), patchesBefore + 2);
  // Another key, a label, an annotation: not drift.
  k.fake.mutate("ns", "tok", (s) => {
    s.data = { ...s.data, other: toBase64("x") };
    s.metadata.labels = { ...s.metadata.labels, app: "y" };
  });
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(k.patches(), patchesBefore + 2);
  assertEquals(k.calls(), 1);
  await k.stop();
  const reasons = k.fake.events.map((e) => e.body.reason).filter(Boolean);
  assertEquals(reasons, ["TokenRefreshed", "SecretRepaired"]);
});

Deno.test("keepSecret() acts on a new refresh-now value once and records it as handled", async () => {
  const k = start();
  await until("the first write", () => k.token() === "token-1" && k.fake.watchers === 1);
  k.fake.mutate("ns", "tok", (s) => {
    s.metadata.annotations = { ...s.metadata.annotations, [ANNOTATIONS.refreshNow]: "100" };
  });
  await until("the forced refresh", () => k.token() === "token-2");
  const annotations = () => k.fake.secrets.get("ns/tok")!.metadata.annotations!;
  assertEquals(annotations()[ANNOTATIONS.refreshNowHandled], "100");
  // The same value again (any other change): nothing.
  k.fake.mutate("ns", "tok", (s) => (s.metadata.labels = { touched: "yes" }));
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(k.calls(), 2);
  await k.stop();
});

Deno.test("keepSecret() limits repairs against a fighting writer and warns once with an Event", async () => {
  const k = start();
  await until("the first write", () => k.token() === "token-1" && k.fake.watchers === 1);
  const patchesBefore = k.patches();
  for (let i = 0; i < 40; i++) {
    k.fake.mutate("ns", "tok", (s) => (s.data = { ...s.data, token: toBase64(`fight-${i}`) }));
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 50));
  const repairs = k.patches() - patchesBefore;
  assert(repairs <= 11, `${repairs} repairs`);
  assert(k.keeper().repairsLimited > 0);
  assertEquals(k.calls(), 1);
  await k.stop();
  const contested = k.fake.events.filter((e) => e.body.reason === "SecretContested");
  assertEquals(contested.length, 1);
  assertEquals(contested[0].body.type, "Warning");
});

Deno.test("keepSecret(): a failed write is retried with the token in hand, not a new one", async () => {
  const fake = createFakeKube();
  let failures = 1;
  fake.intercept = (verb) =>
    verb === "patch" && failures-- > 0
      ? statusResponse(500, "InternalError", "etcdserver: request timed out")
      : undefined;
  const k = start(fake);
  await until("the retried write", () => k.token() === "token-1", 5000);
  assertEquals(k.calls(), 1);
  await k.stop();
  const reasons = fake.events.map((e) => e.body.reason);
  assertEquals(reasons, ["TokenRefreshFailed", "TokenRefreshed"]);
});

Deno.test("Wake keeps a wake-up fired while the loop is busy, refresh-now over repair", async () => {
  const wake = new Wake();
  wake.fire({ kind: "refresh-now", value: "1" });
  wake.fire({ kind: "repair", drift: { kind: "deleted" } });
  const signal = new AbortController().signal;
  assertEquals((await wake.wait(10_000, signal)).kind, "refresh-now");
  assertEquals((await wake.wait(1, signal)).kind, "timer");
});

Deno.test("TokenBucket gives its burst, then one per refill period", () => {
  let now = 0;
  const bucket = new TokenBucket(2, 1000, () => now);
  assert(bucket.take() && bucket.take());
  assert(!bucket.take());
  assertEquals(bucket.msUntilNext, 1000);
  now = 1500;
  assert(bucket.take());
  assert(!bucket.take());
  assertEquals(bucket.msUntilNext, 500);
});

Deno.test("keepSecret() with watch off neither lists nor watches, and leaves drift to the next refresh", async () => {
  const k = start(createFakeKube(), 600, false);
  await until("the first write", () => k.token() === "token-1");
  k.fake.remove("ns", "tok");
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(k.token(), undefined);
  assertEquals(k.fake.watchers, 0);
  assert(!k.fake.requests.some((r) => r.method === "GET" && r.path.endsWith("/secrets")));
  await k.stop();
});

Deno.test("SecretKeeper: a watch lagging behind the writes is no drift; an earlier token after the latest is", async () => {
  const fake = createFakeKube();
  const client = fakeKubeClient(fake);
  const writer = new SecretWriter(client, target);
  const wake = new Wake();
  const keeper = new SecretKeeper({ writer, wake });
  const secretWith = (value: string) => ({
    metadata: { name: "tok", namespace: "ns" },
    data: { token: toBase64(value) },
  });
  await writer.write({ value: "token-1", obtainedAt: Date.now(), lifetimeSource: "unknown" });
  await writer.write({ value: "token-2", obtainedAt: Date.now(), lifetimeSource: "unknown" });
  // The watch has not shown token-2 yet: token-1 is the watch lagging.
  await keeper.change({ type: "MODIFIED", secret: secretWith("token-1") });
  assertEquals(keeper.repairs, 0);
  // Once token-2 came through, token-1 again is someone writing it back.
  await keeper.change({ type: "MODIFIED", secret: secretWith("token-2") });
  await keeper.change({ type: "MODIFIED", secret: secretWith("token-1") });
  assertEquals(keeper.repairs, 1);
  const signal = new AbortController().signal;
  assertEquals((await wake.wait(1, signal)).kind, "repair");
  keeper.close();
});
