import { captureLogs } from "../tests/fixtures/logs.ts";
import { assert, assertEquals, assertNotIncludes } from "../tests/assert.ts";
import {
  createFakeKube,
  type FakeKube,
  fakeKubeClient,
  storedValue,
} from "../tests/fixtures/fake_kube.ts";
import { SecretWriter } from "./kube/secret.ts";
import { TokenError } from "./oidc/mod.ts";
import type { Token, TokenSource } from "./token.ts";
import { type RefreshObserver, runRefreshLoop } from "./refresh.ts";
import type { ScheduleOptions } from "./schedule.ts";
import type { Clock } from "./token.ts";
import { resetLogging, textFormatter } from "./log.ts";

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
  return { fake, writer: new SecretWriter(fakeKubeClient(fake), target) };
}

function storedToken(fake: FakeKube): string | undefined {
  return storedValue(fake, target);
}

/**
 * Runs the real loop on the fake clock against the fake API until `sleeps` sleeps have happened,
 * with the token source playing `script`.
 */
async function runScripted(options: {
  script: Array<number | Error>;
  sleeps: number;
  schedule?: Partial<ScheduleOptions>;
  observer?: (fake: FakeKube) => RefreshObserver;
}) {
  const controller = new AbortController();
  const { clock, sleeps } = fakeClock(controller, options.sleeps);
  const { source, calls } = scriptedSource(clock, options.script);
  const { fake, writer } = writerFor();
  await runRefreshLoop({
    source,
    writer,
    target,
    clock,
    signal: controller.signal,
    schedule: { intervalMs: 600_000, renewFraction: 2 / 3, random: () => 0.5, ...options.schedule },
    observer: options.observer?.(fake),
  });
  return { sleeps, calls: calls(), fake };
}

Deno.test("runRefreshLoop() refreshes at start and then every interval", async () => {
  const { sleeps, calls, fake } = await runScripted({
    script: [3600],
    sleeps: 3,
    schedule: { intervalMs: 500_000 },
  });
  assertEquals(calls, 3);
  assertEquals(sleeps, [500_000, 500_000, 500_000]);
  assertEquals(storedToken(fake), "token-3");
});

Deno.test("runRefreshLoop() renews a short-lived token before it expires and warns once", async () => {
  const records = captureLogs();
  try {
    const { sleeps } = await runScripted({
      script: [30],
      sleeps: 3,
      schedule: { intervalMs: 500_000 },
    });
    assertEquals(sleeps, [20_000, 20_000, 20_000]);
    const warnings = records.filter((r) => r.level === "warning");
    assertEquals(warnings.length, 1);
    assert(String(warnings[0].rawMessage).startsWith("Interval is longer than the token lifetime"));
  } finally {
    resetLogging();
  }
});

Deno.test("runRefreshLoop() keeps the last good token through failures and backs off", async () => {
  const failure = new TokenError("Token endpoint answered with HTTP 500", {
    code: "TOKEN_HTTP_ERROR",
    status: 500,
  });
  const seenDuringFailures: Array<string | undefined> = [];
  const { sleeps, fake } = await runScripted({
    script: [3600, failure, failure, failure, 3600],
    sleeps: 5,
    observer: (fake) => ({ onFailure: () => seenDuringFailures.push(storedToken(fake)) }),
  });
  assertEquals(seenDuringFailures, ["token-1", "token-1", "token-1"]);
  assertEquals(sleeps, [600_000, 500, 1000, 2000, 600_000]);
  assertEquals(storedToken(fake), "token-5");
});

Deno.test("runRefreshLoop() retries bad client credentials slowly and says what to check", async () => {
  const records = captureLogs();
  try {
    const { sleeps, fake } = await runScripted({
      script: [
        new TokenError('Token endpoint refused the request with HTTP 401, error "invalid_client"', {
          code: "TOKEN_PROVIDER_ERROR",
          status: 401,
          providerError: "invalid_client",
        }),
      ],
      sleeps: 2,
    });
    assertEquals(sleeps, [30_000, 30_000]);
    assertEquals(fake.requests.length, 0);
    const errors = records.filter((r) => r.level === "error");
    assertEquals(errors.length, 2);
    assert(String(errors[0].rawMessage).includes("oidc.clientsecret"));
  } finally {
    resetLogging();
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
  const { sleeps, calls, fake } = await runScripted({
    script: [new TokenError("Token request aborted", { code: "TOKEN_ABORTED" }), 3600],
    sleeps: 2,
  });
  assertEquals(calls, 2);
  assertEquals(sleeps, [500, 600_000]);
  assertEquals(storedToken(fake), "token-2");
});

Deno.test("runRefreshLoop() never logs the token, even at debug", async () => {
  const records = captureLogs();
  try {
    await runScripted({ script: [3600], sleeps: 2, schedule: { intervalMs: 500_000 } });
    const text = records.map(textFormatter).join("");
    assert(text.includes("Token refreshed"));
    assertNotIncludes(text, "token-1");
    assertNotIncludes(text, "token-2");
  } finally {
    resetLogging();
  }
});
