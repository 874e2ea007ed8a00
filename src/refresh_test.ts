import { reset } from "@logtape/logtape";
import { captureLogs } from "../tests/fixtures/logs.ts";
import { assert, assertEquals, assertNotIncludes } from "../tests/assert.ts";
import { createFakeKube, fakeFetch } from "../tests/fixtures/fake_kube.ts";
import { KubeClient } from "./kube/client.ts";
import { SecretWriter } from "./kube/secret.ts";
import { TokenError } from "./oidc/mod.ts";
import type { Token, TokenSource } from "./token.ts";
import { runRefreshLoop } from "./refresh.ts";
import type { Clock } from "./token.ts";
import { textFormatter } from "./log.ts";

const target = { namespace: "ns", name: "tok", key: "token" };

/** A clock whose sleeps return at once and move time forward; it stops the loop after `maxSleeps`. */
function fakeClock(controller: AbortController, maxSleeps: number) {
  const sleeps: number[] = [];
  let now = 1_000_000;
  const clock: Clock = {
    now: () => now,
    sleep(ms) {
      sleeps.push(ms);
      now += ms;
      if (sleeps.length >= maxSleeps) controller.abort();
      return Promise.resolve();
    },
  };
  return { clock, sleeps, advance: (ms: number) => (now += ms), time: () => now };
}

/** A token source that plays a script: a lifetime in seconds, or an error to throw. */
function scriptedSource(clock: Clock, script: Array<number | Error>) {
  let calls = 0;
  const source: TokenSource = {
    fetchToken() {
      const step = script[Math.min(calls, script.length - 1)];
      calls++;
      if (step instanceof Error) return Promise.reject(step);
      const obtainedAt = clock.now();
      const token: Token = {
        value: `token-${calls}`,
        obtainedAt,
        lifetimeSeconds: step,
        expiresAt: obtainedAt + step * 1000,
        lifetimeSource: "expires_in",
      };
      return Promise.resolve(token);
    },
  };
  return { source, calls: () => calls };
}

function writerFor(fake = createFakeKube()) {
  const client = new KubeClient({
    server: new URL("https://kube.test"),
    authorize: () => Promise.resolve({}),
    description: "test",
    close() {},
  }, { fetch: fakeFetch(fake) });
  return { fake, writer: new SecretWriter(client, target) };
}

function storedToken(fake: ReturnType<typeof createFakeKube>): string | undefined {
  const b64 = fake.secrets.get("ns/tok")?.data?.token;
  return b64 === undefined ? undefined : atob(b64);
}

Deno.test("runRefreshLoop() refreshes at start and then every interval", async () => {
  const controller = new AbortController();
  const { clock, sleeps } = fakeClock(controller, 3);
  const { source, calls } = scriptedSource(clock, [3600]);
  const { fake, writer } = writerFor();
  await runRefreshLoop({
    source,
    writer,
    target,
    clock,
    signal: controller.signal,
    schedule: { intervalMs: 500_000, renewFraction: 2 / 3 },
  });
  assertEquals(calls(), 3);
  assertEquals(sleeps, [500_000, 500_000, 500_000]);
  assertEquals(storedToken(fake), "token-3");
});

Deno.test("runRefreshLoop() renews a short-lived token before it expires and warns once", async () => {
  const records = await captureLogs();
  try {
    const controller = new AbortController();
    const { clock, sleeps } = fakeClock(controller, 3);
    const { source } = scriptedSource(clock, [30]);
    const { writer } = writerFor();
    await runRefreshLoop({
      source,
      writer,
      target,
      clock,
      signal: controller.signal,
      schedule: { intervalMs: 500_000, renewFraction: 2 / 3 },
    });
    assertEquals(sleeps, [20_000, 20_000, 20_000]);
    const warnings = records.filter((r) => r.level === "warning");
    assertEquals(warnings.length, 1);
    assert(String(warnings[0].rawMessage).startsWith("Interval is longer than the token lifetime"));
  } finally {
    await reset();
  }
});

Deno.test("runRefreshLoop() keeps the last good token through failures and backs off", async () => {
  const controller = new AbortController();
  const { clock, sleeps } = fakeClock(controller, 5);
  const failure = new TokenError("Token endpoint answered with HTTP 500", {
    code: "TOKEN_HTTP_ERROR",
    status: 500,
  });
  const { source } = scriptedSource(clock, [3600, failure, failure, failure, 3600]);
  const { fake, writer } = writerFor();
  const seenDuringFailures: Array<string | undefined> = [];
  await runRefreshLoop({
    source,
    writer,
    target,
    clock,
    signal: controller.signal,
    schedule: { intervalMs: 600_000, renewFraction: 2 / 3, random: () => 0.5 },
    observer: { onFailure: () => seenDuringFailures.push(storedToken(fake)) },
  });
  assertEquals(seenDuringFailures, ["token-1", "token-1", "token-1"]);
  assertEquals(sleeps, [600_000, 500, 1000, 2000, 600_000]);
  assertEquals(storedToken(fake), "token-5");
});

Deno.test("runRefreshLoop() retries bad client credentials slowly and says what to check", async () => {
  const records = await captureLogs();
  try {
    const controller = new AbortController();
    const { clock, sleeps } = fakeClock(controller, 2);
    const { source } = scriptedSource(clock, [
      new TokenError('Token endpoint refused the request with HTTP 401, error "invalid_client"', {
        code: "TOKEN_PROVIDER_ERROR",
        status: 401,
        providerError: "invalid_client",
      }),
    ]);
    const { fake, writer } = writerFor();
    await runRefreshLoop({
      source,
      writer,
      target,
      clock,
      signal: controller.signal,
      schedule: { intervalMs: 600_000, renewFraction: 2 / 3, random: () => 0.5 },
    });
    assertEquals(sleeps, [30_000, 30_000]);
    assertEquals(fake.requests.length, 0);
    const errors = records.filter((r) => r.level === "error");
    assertEquals(errors.length, 2);
    assert(String(errors[0].rawMessage).includes("oidc.clientsecret"));
  } finally {
    await reset();
  }
});

Deno.test("runRefreshLoop() stops promptly when aborted during a refresh", async () => {
  const controller = new AbortController();
  const { writer, fake } = writerFor();
  const source: TokenSource = {
    fetchToken: (signal) =>
      new Promise((_, reject) =>
        signal?.addEventListener(
          "abort",
          () => reject(new TokenError("Token request aborted", { code: "TOKEN_ABORTED" })),
        )
      ),
  };
  const loop = runRefreshLoop({
    source,
    writer,
    target,
    signal: controller.signal,
    schedule: { intervalMs: 600_000, renewFraction: 2 / 3 },
  });
  setTimeout(() => controller.abort(), 50);
  const started = Date.now();
  await loop;
  assert(Date.now() - started < 1000);
  assertEquals(fake.secrets.size, 0);
});

Deno.test("runRefreshLoop() stops only for its own signal, and retries an abort it did not ask for", async () => {
  // Only shutdown may end the loop: ending it for another abort would stop the refresher, with
  // exit code 0, while the token in the Secret runs out.
  const controller = new AbortController();
  const { clock, sleeps } = fakeClock(controller, 2);
  const { source, calls } = scriptedSource(clock, [
    new TokenError("Token request aborted", { code: "TOKEN_ABORTED" }),
    3600,
  ]);
  const { fake, writer } = writerFor();
  await runRefreshLoop({
    source,
    writer,
    target,
    clock,
    signal: controller.signal,
    schedule: { intervalMs: 600_000, renewFraction: 2 / 3, random: () => 0.5 },
  });
  assertEquals(calls(), 2);
  assertEquals(sleeps, [500, 600_000]);
  assertEquals(storedToken(fake), "token-2");
});

Deno.test("runRefreshLoop() never logs the token, even at debug", async () => {
  const records = await captureLogs();
  try {
    const controller = new AbortController();
    const { clock } = fakeClock(controller, 2);
    const { source } = scriptedSource(clock, [3600]);
    const { writer } = writerFor();
    await runRefreshLoop({
      source,
      writer,
      target,
      clock,
      signal: controller.signal,
      schedule: { intervalMs: 500_000, renewFraction: 2 / 3 },
    });
    const text = records.map(textFormatter).join("");
    assert(text.includes("Token refreshed"));
    assertNotIncludes(text, "token-1");
    assertNotIncludes(text, "token-2");
  } finally {
    await reset();
  }
});
