/**
 * The fault matrix of issue 4, in process: the real refresh loop (`runRefreshLoop` with the real
 * token source, Kubernetes client and Secret writer) against real loopback servers, a token
 * endpoint that injects each provider fault and the TLS API fake that injects each API server
 * fault, reached through the in-cluster connection.
 *
 * Time is a stepped clock: every sleep of the loop waits for the test, then moves virtual time
 * forward by the planned delay. So each case runs the schedule's real delays (0.5 s doubling to
 * 30 s, Retry-After) without waiting for them, and the test changes the fault between two
 * attempts. Only request timeouts (250 ms here) take real time.
 *
 * For every fault the test asserts: the loop keeps going (each failure is reported, with the
 * right error and the next retry planned by the schedule), the Secret keeps its last good token
 * during the fault, and the first attempt after the fault clears succeeds, one backoff step after
 * the last failure. Logs never contain a token or a secret.
 */
import { captureLogs } from "./fixtures/logs.ts";
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { createFakeKube, type FakeKube, storedValue } from "./fixtures/fake_kube.ts";
import { type ApiFault, type FakeCluster, startFakeCluster } from "./fixtures/fake_cluster.ts";
import { makeTestTls, type TestTls } from "./fixtures/tls.ts";
import {
  CRLF_TOKEN_PREFIX,
  type ProviderFault,
  startTokenFront,
  type TokenFront,
} from "./fixtures/token_front.ts";
import { resetLogging, textFormatter } from "../src/log.ts";
import { KubeApiError, KubeClient } from "../src/kube/client.ts";
import { type SecretTarget, SecretWriter } from "../src/kube/secret.ts";
import { createClientCredentialsSource, TokenError } from "../src/oidc/mod.ts";
import { type RefreshResult, runRefreshLoop } from "../src/refresh.ts";
import type { Clock } from "../src/token.ts";
import type { ScheduleOptions } from "../src/schedule.ts";

const TARGET: SecretTarget = { namespace: "team-a", name: "api-token", key: "token" };
const CLIENT_ID = "fault-matrix-client";
const CLIENT_SECRET = "client-secret-never-logged-4e1b";
const REQUEST_TIMEOUT_MS = 250;
/** The SPEC's schedule, without jitter (factor 1), and an interval that never decides. */
const SCHEDULE: ScheduleOptions = {
  intervalMs: 600_000,
  renewFraction: 2 / 3,
  random: () => 0.5,
};

/** One attempt of the loop, as the observer saw it. */
interface Attempt {
  outcome: "success" | "failure";
  /** Virtual time the attempt started. */
  at: number;
  /** The wait the loop planned after it. */
  delayMs: number;
  /** Failures in a row (0 after a success). */
  failures: number;
  error?: unknown;
  result?: RefreshResult;
  /** The token in the Secret when the attempt ended. */
  stored: string | undefined;
}

function storedToken(fake: FakeKube): string | undefined {
  return storedValue(fake, TARGET);
}

/**
 * Runs the real loop on a stepped clock. `next()` lets the loop go on from its current sleep
 * (moving virtual time by the planned delay) and returns the next attempt.
 */
function steppedLoop(options: {
  fake: FakeKube;
  front: TokenFront;
  connection: Awaited<ReturnType<FakeCluster["connection"]>>;
  trust: Deno.HttpClient;
  schedule?: ScheduleOptions;
}) {
  let now = Date.UTC(2030, 0, 1);
  let attemptStart = now;
  let release: (() => void) | undefined;
  const attempts: Attempt[] = [];
  let wake: (() => void) | undefined;
  const controller = new AbortController();
  const clock: Clock = {
    now: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          release = undefined;
          resolve();
        };
        release = () => {
          now += ms;
          attemptStart = now;
          done();
        };
        signal.addEventListener("abort", done, { once: true });
      }),
  };
  const record = (attempt: Omit<Attempt, "at" | "stored">) => {
    attempts.push({ ...attempt, at: attemptStart, stored: storedToken(options.fake) });
    wake?.();
  };
  const source = createClientCredentialsSource({
    tokenUrl: options.front.tokenUrl,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    timeoutMs: REQUEST_TIMEOUT_MS,
    now: clock.now,
    fetch: (input, init) => {
      const trusting: RequestInit & { client: Deno.HttpClient } = {
        ...init,
        client: options.trust,
      };
      return fetch(input, trusting);
    },
  });
  const writer = new SecretWriter(
    new KubeClient(options.connection, { timeoutMs: REQUEST_TIMEOUT_MS }),
    TARGET,
  );
  const loop = runRefreshLoop({
    source,
    writer,
    target: TARGET,
    schedule: options.schedule ?? SCHEDULE,
    signal: controller.signal,
    clock,
    observer: {
      onSuccess: (e) =>
        record({ outcome: "success", delayMs: e.nextAt - now, failures: 0, result: e.result }),
      onFailure: (e) =>
        record({
          outcome: "failure",
          delayMs: e.nextAt - now,
          failures: e.failures,
          error: e.error,
        }),
    },
  });
  let consumed = 0;
  return {
    async next(): Promise<Attempt> {
      release?.();
      const deadline = Date.now() + 10_000;
      while (attempts.length <= consumed) {
        if (Date.now() > deadline) throw new Error("The loop made no attempt within 10 s");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      return attempts[consumed++];
    },
    async stop() {
      controller.abort();
      await loop;
    },
  };
}

/** A token endpoint behind the front: checks the client and issues opaque tokens. */
function tokenIssuer(lifetimeSeconds: number) {
  const issued: string[] = [];
  const handler = async (req: Request) => {
    const form = new URLSearchParams(await req.text());
    if (form.get("client_id") !== CLIENT_ID || form.get("client_secret") !== CLIENT_SECRET) {
      return Response.json({ error: "invalid_client" }, { status: 401 });
    }
    const token = `access-${issued.length + 1}-${crypto.randomUUID()}`;
    issued.push(token);
    return Response.json({
      access_token: token,
      token_type: "Bearer",
      expires_in: lifetimeSeconds,
    });
  };
  return { issued, handler };
}

/** Everything one case needs, torn down by `close()`. */
async function world(
  tls: { good: TestTls; bad: TestTls },
  options: { retryAfterSeconds?: number; lifetimeSeconds?: number; schedule?: ScheduleOptions },
) {
  const issuer = tokenIssuer(options.lifetimeSeconds ?? 3600);
  const fake = createFakeKube();
  const cluster = await startFakeCluster(fake, tls.good, { namespace: TARGET.namespace });
  const front = await startTokenFront({
    upstream: issuer.handler,
    tls: { trusted: tls.good, untrusted: tls.bad },
    retryAfterSeconds: options.retryAfterSeconds,
  });
  const connection = await cluster.connection();
  const trust = Deno.createHttpClient({ caCerts: [tls.good.caPem] });
  const loop = steppedLoop({
    fake,
    front,
    connection,
    trust,
    schedule: options.schedule,
  });
  return {
    fake,
    cluster,
    front,
    issuer,
    loop,
    async close() {
      await loop.stop();
      connection.close();
      trust.close();
      await front.stop();
      await cluster.stop();
    },
  };
}

async function withTls(fn: (tls: { good: TestTls; bad: TestTls }) => Promise<void>) {
  const good = await makeTestTls();
  const bad = await makeTestTls();
  try {
    await fn({ good, bad });
  } finally {
    await Deno.remove(good.dir, { recursive: true });
    await Deno.remove(bad.dir, { recursive: true });
  }
}

interface FaultCase {
  /** Which side fails. */
  side: "provider" | "api";
  fault: ProviderFault | ApiFault;
  /** What the failure should look like. */
  check: (err: unknown) => void;
  /** The retries the schedule should plan, one per failure observed during the fault. */
  delays: number[];
  /** `Retry-After` the provider sends with 503 and 429. */
  retryAfterSeconds?: number;
  /** API requests the first write after the fault takes. */
  recoveryRequests: number;
  /** Level of the failure log. Default warning. */
  logLevel?: "warning" | "error";
}

function tokenError(code: string, status?: number, extra: Partial<TokenError> = {}) {
  return (err: unknown) => {
    assert(err instanceof TokenError, `expected a TokenError, got ${err}`);
    assertEquals(err.code, code, err.message);
    if (status !== undefined) assertEquals(err.status, status, err.message);
    for (const [k, v] of Object.entries(extra)) {
      assertEquals((err as unknown as Record<string, unknown>)[k], v, `${k}: ${err.message}`);
    }
  };
}

function kubeError(code: string, status?: number, message?: RegExp) {
  return (err: unknown) => {
    assert(err instanceof KubeApiError, `expected a KubeApiError, got ${err}`);
    assertEquals(err.code, code, err.message);
    if (status !== undefined) assertEquals(err.status, status, err.message);
    if (message) assertMatch(err.message, message);
  };
}

const BACKOFF = [500, 1000, 2000];

const CASES: Record<string, FaultCase> = {
  "provider refuses connections": {
    side: "provider",
    fault: "refused",
    check: tokenError("TOKEN_UNREACHABLE"),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "provider's TLS certificate is not trusted": {
    side: "provider",
    fault: "tls",
    check: (err) => {
      tokenError("TOKEN_UNREACHABLE")(err);
      assertMatch((err as Error).message, /certificate|UnknownIssuer|tls/i);
    },
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "provider hangs past the request timeout": {
    side: "provider",
    fault: "hang",
    check: tokenError("TOKEN_TIMEOUT"),
    delays: [500, 1000],
    recoveryRequests: 1,
  },
  "provider answers 500": {
    side: "provider",
    fault: "http500",
    check: tokenError("TOKEN_HTTP_ERROR", 500),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "provider answers 503 with Retry-After": {
    side: "provider",
    fault: "http503",
    retryAfterSeconds: 7,
    check: tokenError("TOKEN_HTTP_ERROR", 503, { retryAfterMs: 7000 }),
    // Retry-After wins over the shorter backoff; the jitter (fixed at its middle here) spreads it
    // over the next 20 %.
    delays: [7700, 7700, 7700],
    recoveryRequests: 1,
  },
  "provider answers 429 with Retry-After": {
    side: "provider",
    fault: "http429",
    retryAfterSeconds: 3,
    check: tokenError("TOKEN_PROVIDER_ERROR", 429, {
      providerError: "rate_limited",
      retryAfterMs: 3000,
    }),
    // At least Retry-After (plus jitter), and the backoff once it has grown past it.
    delays: [3300, 3300, 3300, 4000],
    recoveryRequests: 1,
  },
  "provider rejects the client credentials (401)": {
    side: "provider",
    fault: "http401",
    check: tokenError("TOKEN_PROVIDER_ERROR", 401, { providerError: "invalid_client" }),
    // Retrying soon cannot help: the slowest pace from the first failure, no crash loop.
    delays: [30_000, 30_000, 30_000],
    recoveryRequests: 1,
    logLevel: "error",
  },
  "provider answers 200 with an HTML page": {
    side: "provider",
    fault: "html",
    check: tokenError("TOKEN_INVALID_RESPONSE", 200),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "provider answers 200 with {}": {
    side: "provider",
    fault: "empty",
    check: tokenError("TOKEN_INVALID_RESPONSE", 200),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "provider streams a 2 MiB body": {
    side: "provider",
    fault: "large",
    check: tokenError("TOKEN_RESPONSE_TOO_LARGE", 200),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "provider answers an access_token with CR/LF in it": {
    side: "provider",
    fault: "crlf",
    check: (err) => {
      tokenError("TOKEN_INVALID_RESPONSE", 200)(err);
      assertMatch((err as Error).message, /1\*VSCHAR .*RFC 6749 Appendix A\.12/);
      assertNotIncludes((err as Error).message, CRLF_TOKEN_PREFIX);
    },
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "API server refuses connections": {
    side: "api",
    fault: "refused",
    check: kubeError("KUBE_UNREACHABLE"),
    delays: BACKOFF,
    // One server-side apply, as always.
    recoveryRequests: 1,
  },
  "API server answers 500": {
    side: "api",
    fault: "http500",
    check: kubeError("KUBE_HTTP", 500),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "API server answers 503": {
    side: "api",
    fault: "http503",
    check: kubeError("KUBE_HTTP", 503),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "API server answers 401 after the service account token rotated": {
    side: "api",
    fault: "rotated",
    check: kubeError("KUBE_HTTP", 401),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "API server answers 403": {
    side: "api",
    fault: "forbidden",
    check: kubeError("KUBE_HTTP", 403, /lacks the "patch" verb .*on secret "api-token"/),
    delays: BACKOFF,
    recoveryRequests: 1,
  },
  "API server hangs past the request timeout": {
    side: "api",
    fault: "hang",
    check: kubeError("KUBE_TIMEOUT"),
    delays: [500, 1000],
    recoveryRequests: 1,
  },
};

for (const [name, c] of Object.entries(CASES)) {
  Deno.test(`fault: ${name}: the loop retries on schedule, the Secret keeps its last good token, the first attempt after the fault succeeds`, async () => {
    const records = captureLogs();
    try {
      await withTls(async (tls) => {
        const w = await world(tls, { retryAfterSeconds: c.retryAfterSeconds });
        try {
          const first = await w.loop.next();
          assertEquals(first.outcome, "success", String(first.error));
          assertEquals(first.result?.write.action, "created");
          const lastGood = w.issuer.issued[0];
          assertEquals(first.stored, lastGood);

          if (c.side === "provider") await w.front.setFault(c.fault as ProviderFault);
          else await w.cluster.setFault(c.fault as ApiFault);
          const apiRequestsBefore = w.fake.requests.length;
          let last = first;
          for (const [i, delay] of c.delays.entries()) {
            last = await w.loop.next();
            assertEquals(last.outcome, "failure", `attempt ${i + 2} should fail`);
            c.check(last.error);
            assertEquals(last.failures, i + 1);
            assertEquals(last.delayMs, delay, `retry delay after failure ${i + 1}`);
            assertEquals(last.stored, lastGood, "the Secret must keep its last good token");
          }
          if (c.side === "provider") {
            // A failed token request never reaches the API server.
            assertEquals(w.fake.requests.length, apiRequestsBefore);
          }

          if (c.side === "provider") await w.front.setFault(undefined);
          else await w.cluster.setFault(undefined);
          const recovered = await w.loop.next();
          assertEquals(recovered.outcome, "success", String(recovered.error));
          assertEquals(recovered.at - last.at, last.delayMs, "within one backoff step");
          assertEquals(recovered.stored, w.issuer.issued.at(-1));
          assertEquals(recovered.result?.write.requests, c.recoveryRequests);
          if (c.fault === "rotated") {
            assertEquals(w.fake.requests.at(-1)?.authorization, "Bearer sa-token-2");
          }

          const failed = records.filter((r) => String(r.rawMessage).startsWith("Refresh failed"));
          assertEquals(failed.length, c.delays.length);
          for (const r of failed) assertEquals(r.level, c.logLevel ?? "warning");
          if (c.logLevel === "error") {
            assertMatch(String(failed[0].rawMessage), /oidc\.clientid.*oidc\.clientsecret/);
          }
          const text = records.map(textFormatter).join("");
          for (const token of w.issuer.issued) assertNotIncludes(text, token);
          assertNotIncludes(text, CLIENT_SECRET);
          assertNotIncludes(text, CRLF_TOKEN_PREFIX);
          assertNotIncludes(text, "sa-token-");
        } finally {
          await w.close();
        }
      });
    } finally {
      resetLogging();
    }
  });
}

Deno.test("fault: someone deleted the Secret: the next refresh creates it again in its one apply, no failure", async () => {
  await withTls(async (tls) => {
    const w = await world(tls, {});
    try {
      const first = await w.loop.next();
      assertEquals(first.result?.write.action, "created");
      w.fake.mutate(TARGET.namespace, TARGET.name, (s) => {
        s.metadata.labels = { ...s.metadata.labels, team: "a" };
      });
      const second = await w.loop.next();
      // Another writer's change needs no read: the apply carries no resourceVersion.
      assertEquals(second.result?.write.requests, 1);
      await w.cluster.setFault("deleted");
      assertEquals(storedToken(w.fake), undefined);
      const third = await w.loop.next();
      assertEquals(third.outcome, "success", String(third.error));
      assertEquals(third.result?.write.action, "created");
      assertEquals(third.result?.write.requests, 1);
      assertEquals(w.fake.requests.at(-1)?.method, "PATCH");
      assertEquals(third.stored, w.issuer.issued.at(-1));
      assertEquals(third.at - second.at, second.delayMs);
    } finally {
      await w.close();
    }
  });
});

Deno.test("fault: a provider outage late in a short token's life is retried at the retry deadline, despite a longer Retry-After", async () => {
  await withTls(async (tls) => {
    const w = await world(tls, { lifetimeSeconds: 60, retryAfterSeconds: 100 });
    try {
      const first = await w.loop.next();
      assertEquals(first.outcome, "success");
      // Renewal at two thirds of 60 s.
      assertEquals(first.delayMs, 40_000);
      await w.front.setFault("http503");
      const failed = await w.loop.next();
      assertEquals(failed.outcome, "failure");
      // Deadline: expiry minus half of the remaining third (60 s - 10 s), 40 s after the start.
      assertEquals(failed.at - first.at, 40_000);
      assertEquals(failed.delayMs, 10_000);
      await w.front.setFault(undefined);
      const recovered = await w.loop.next();
      assertEquals(recovered.outcome, "success");
      assertEquals(recovered.at - first.at, 50_000);
      assert(recovered.at < first.at + 60_000, "renewed before the old token expired");
    } finally {
      await w.close();
    }
  });
});
