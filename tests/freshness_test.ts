/**
 * The freshness figure of issue 4: the real process (main.ts as users run it) keeps tokens of a
 * few seconds' lifetime fresh in a Secret while a seeded random sequence of provider and API
 * server faults hits it, and a sampler reads the Secret every 50 ms.
 *
 * Set-up: a real OpenID provider issues JWT access tokens living 6 s (`expires_in` 6, `exp` =
 * `iat` + 6) behind an HTTPS front that injects the provider faults; the TLS Kubernetes API fake
 * injects the API server faults. Three refreshers, each with its own Secret, started a third of
 * a renewal apart, run with the defaults: renewal at 67 % of the lifetime (every 4 s), backoff
 * 0.5 s doubling with jitter. (6 s rather than 3-4 s: `exp` has whole-second precision and the
 * provider stamps `iat` rounded down, so a token may expire up to 1 s before `expires_in`, counted
 * from its arrival, says; with 3-4 s tokens that second alone eats the retry margin.)
 *
 * Faults: a window starts 50 to 300 ms before the next renewal of one of the refreshers is due (so
 * it meets that renewal and its retries, and the others wherever they are), lasts 0.3 to 2 s,
 * then clears; the next window waits until every refresher has recovered, so each refresher's
 * failures in a row come from one bounded fault. A window is one fault drawn from: provider
 * connection refused, TLS failure, hang (answered when the window ends), 500, 503 and 429 with
 * `Retry-After: 1`, 200 with HTML, 200 with `{}`, a 2 MiB body; API server connection refused,
 * 500, 503, 401 after the service account token rotated, 403, a write that hangs. One time in ten, instead, someone deletes the Secrets. Bad client credentials (provider
 * 401) are left out: the issue asks for them to be retried at the slowest pace (30 s), so by
 * design no token of seconds stays fresh through them; the fault matrix and the shutdown tests
 * cover them.
 *
 * The figure: a sample counts as taken "while the provider was reachable" when no fault is active
 * and the last fault ended at least one backoff step before it: the issue's own allowance ("the
 * next success happens as soon as the fault clears, within one backoff step"). One backoff step
 * is the SPEC's longest wait after the failures in a row that refresher had in that window
 * (counted from its log since its last success: 0.5 s doubling, +20 % jitter; at least the
 * Retry-After of 1 s, +20 %), plus 0.3 s for the refresh itself. A sample is expired when the
 * JWT `exp` of the token in the Secret has passed. Target: 0 expired samples while the provider
 * was reachable. Printed with the samples taken during faults and their recovery step.
 *
 * A deleted Secret holds no expired token: samples without a Secret are counted apart, and
 * outside faults each must fall between a deletion and the next scheduled renewal (the watch
 * writes the Secret back at once; the renewal would at the latest). Seed and length can be
 * changed with FRESHNESS_SEED and FRESHNESS_SECONDS.
 */
import { assert, assertEquals, assertNotIncludes } from "./assert.ts";
import { createFakeKube } from "./fixtures/fake_kube.ts";
import { type ApiFault, startFakeCluster } from "./fixtures/fake_cluster.ts";
import { startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { makeTestTls } from "./fixtures/tls.ts";
import { type ProviderFault, startTokenFront } from "./fixtures/token_front.ts";

const SEED = Number(Deno.env.get("FRESHNESS_SEED") || 20260415);
/** How long faults are injected; the whole test takes about this plus 5 s. */
const FAULT_PHASE_MS = Number(Deno.env.get("FRESHNESS_SECONDS") || 24) * 1000;
/** Fault windows that must cause failures for the figure to mean anything. */
const MIN_HIT_WINDOWS = 5;
const TOKEN_TTL_S = 6;
/** The refresher's default renewal point. */
const RENEW_MS = TOKEN_TTL_S * 1000 * 0.67;
const RETRY_AFTER_S = 1;
const REFRESH_ALLOWANCE_MS = 300;
const SAMPLE_EVERY_MS = 50;
const NAMESPACE = "team-a";
/** Refreshers running side by side, each with its own Secret: more samples, more phases. */
const REFRESHERS = 3;

const PROVIDER_MIX: ProviderFault[] = [
  "refused",
  "tls",
  "hang",
  "http500",
  "http503",
  "http429",
  "html",
  "empty",
  "large",
];
const API_MIX: ApiFault[] = [
  "refused",
  "http500",
  "http503",
  "rotated",
  "forbidden",
  "hang",
];

/** A small seeded PRNG (mulberry32), so a failing run can be replayed with its seed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function jwtExp(token: string): number {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return (JSON.parse(atob(part)) as { exp: number }).exp * 1000;
}

/** The SPEC's longest wait after `failures` failures in a row: 0.5 s doubling, 30 s cap, +20 %. */
function longestStep(failures: number): number {
  if (failures === 0) return 0;
  return Math.min(30_000, 500 * 2 ** (failures - 1)) * 1.2;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

interface Window {
  side: "provider" | "api";
  kind: string;
  start: number;
  end: number;
}

interface Sample {
  t: number;
  token?: string;
  expired: boolean;
}

interface Refresher {
  name: string;
  process: ReturnType<typeof spawnRefresher>;
  samples: Sample[];
  /** The token last seen in its Secret, and when it appeared. */
  token: string | undefined;
  renewedAt: number;
}

Deno.test("freshness: under random provider and API faults the Secret never holds an expired token while the provider is reachable", async () => {
  const random = seeded(SEED);
  const good = await makeTestTls();
  const bad = await makeTestTls();
  try {
    await using provider = await startOidcProvider({ tokenTtlSeconds: TOKEN_TTL_S });
    const fake = createFakeKube();
    await using cluster = await startFakeCluster(fake, good, { namespace: NAMESPACE });
    await using front = await startTokenFront({
      upstream: provider.tokenUrl,
      tls: { trusted: good, untrusted: bad },
      retryAfterSeconds: RETRY_AFTER_S,
    });
    const refreshers: Refresher[] = [];
    try {
      // Started a third of a renewal period apart, so their renewals (and the faults aimed at
      // them) take turns.
      for (let i = 0; i < REFRESHERS; i++) {
        if (i > 0) await sleep(RENEW_MS / REFRESHERS);
        const name = `api-token-${i + 1}`;
        const process = spawnRefresher({
          env: {
            ...cluster.env,
            KTR_OIDC_CAFILE: `${good.dir}/ca.crt`,
            KTR_OIDC_TOKENURL: front.tokenUrl,
            KTR_OIDC_CLIENTID: provider.clientId,
            KTR_OIDC_CLIENTSECRET: provider.clientSecret,
          },
          args: [
            `--secret.name=${name}`,
            `--secret.namespace=${NAMESPACE}`,
            "--http.address=off",
            "--log.format=json",
          ],
        });
        refreshers.push({
          name,
          process,
          samples: [],
          token: undefined,
          renewedAt: 0,
        });
      }
      const current = (name: string) => {
        const b64 = fake.secrets.get(`${NAMESPACE}/${name}`)?.data?.token;
        return b64 === undefined ? undefined : atob(b64);
      };
      await Promise.all(refreshers.map((r) => r.process.waitForOutput(/Token refreshed/)));

      // Watches for renewals (to aim the faults) and samples every Secret every 50 ms.
      let running = true;
      const watcher = (async () => {
        let lastSample = 0;
        while (running) {
          const t = Date.now();
          const sample = t - lastSample >= SAMPLE_EVERY_MS;
          if (sample) lastSample = t;
          for (const r of refreshers) {
            const token = current(r.name);
            if (token !== undefined && token !== r.token) {
              r.token = token;
              r.renewedAt = t;
            }
            if (sample) {
              r.samples.push({ t, token, expired: token !== undefined && t >= jwtExp(token) });
            }
          }
          await sleep(10);
        }
      })();

      /** True while a refresher's last refresh failed (as its log says). */
      const failing = (r: Refresher) => {
        const output = r.process.output();
        return output.lastIndexOf('"message":"Refresh failed') >
          output.lastIndexOf('"message":"Token refreshed"');
      };
      const windows: Window[] = [];
      const deletions: number[] = [];
      const failuresLogged = () =>
        refreshers.reduce(
          (n, r) => n + (r.process.output().match(/"message":"Refresh failed/g)?.length ?? 0),
          0,
        );
      // On a loaded machine fewer windows fit and fewer of them land on a renewal: the phase
      // goes on (up to a hard bound) until enough windows have really hit a refresher.
      let windowsThatHit = 0;
      const phaseEnd = Date.now() + FAULT_PHASE_MS;
      const hardEnd = Date.now() + FAULT_PHASE_MS * 2.5;
      while (
        Date.now() < phaseEnd || (windowsThatHit < MIN_HIT_WINDOWS && Date.now() < hardEnd)
      ) {
        // Aim at the next renewal that is due: strike 50 to 300 ms before it, so the renewal and
        // its retries meet the fault (the other refreshers meet it wherever they are).
        const lead = 50 + 250 * random();
        const due = refreshers.map((r) => r.renewedAt + RENEW_MS - lead)
          .filter((t) => t > Date.now())
          .sort((a, b) => a - b)[0];
        if (due === undefined) {
          await sleep(50);
          continue;
        }
        await sleep(due - Date.now());
        if (random() < 0.1) {
          deletions.push(Date.now());
          await cluster.setFault("deleted");
          await cluster.setFault(undefined);
          continue;
        }
        const side = random() < 0.6 ? "provider" : "api";
        const kind = side === "provider"
          ? PROVIDER_MIX[Math.floor(random() * PROVIDER_MIX.length)]
          : API_MIX[Math.floor(random() * API_MIX.length)];
        const length = 300 + random() * 1700;
        const failedBefore = failuresLogged();
        const start = Date.now();
        if (side === "provider") await front.setFault(kind as ProviderFault);
        else await cluster.setFault(kind as ApiFault);
        await sleep(start + length - Date.now());
        if (side === "provider") await front.setFault(undefined);
        else await cluster.setFault(undefined);
        windows.push({ side, kind, start, end: Date.now() });
        // Judged as the report judges it: a failure logged by the window's end plus the allowance.
        const hit = sleep(REFRESH_ALLOWANCE_MS).then(() => failuresLogged() > failedBefore);
        // Each window on its own: the next one waits until every refresher the fault hit has
        // recovered, so a refresher's failures in a row come from one bounded fault.
        const recovered = Date.now() + 10_000;
        while (refreshers.some(failing) && Date.now() < recovered) await sleep(20);
        if (await hit) windowsThatHit++;
      }
      // A healthy tail, so the last fault's recovery is sampled too.
      await sleep(RENEW_MS + 1000);
      running = false;
      await watcher;

      let reachableCount = 0;
      let excusedCount = 0;
      let excusedExpired = 0;
      let absentCount = 0;
      let longestStreak = 0;
      const hitWindows = new Set<Window>();
      const expired: string[] = [];
      const lateAbsent: string[] = [];
      for (const r of refreshers) {
        r.process.kill("SIGTERM");
        const { code, output } = await r.process.exited;
        assertEquals(code, 0, output);
        assert(!/uncaught|unhandled/i.test(output), output);
        assertNotIncludes(output, provider.clientSecret);
        for (const token of provider.issued) assertNotIncludes(output, token);

        // Failures in a row (since the last success) as this refresher logged them, to size its
        // recovery step per window. Counted here rather than read from the log's `failures`
        // field, so a refresher that forgot to reset its backoff would not excuse itself.
        const failures: Array<{ t: number; failures: number }> = [];
        let inARow = 0;
        for (const line of output.split("\n")) {
          if (!line.startsWith("{")) continue;
          const record = JSON.parse(line) as { "@timestamp": string; message: string };
          if (record.message.startsWith("Token refreshed")) inARow = 0;
          if (record.message.startsWith("Refresh failed")) {
            failures.push({ t: Date.parse(record["@timestamp"]), failures: ++inARow });
          }
        }
        const excusedUntil = windows.map((w) => {
          const streak = Math.max(
            0,
            ...failures.filter((f) => f.t >= w.start && f.t <= w.end + REFRESH_ALLOWANCE_MS)
              .map((f) => f.failures),
          );
          if (streak > 0) hitWindows.add(w);
          longestStreak = Math.max(longestStreak, streak);
          const step = streak === 0 ? 0 : Math.max(longestStep(streak), RETRY_AFTER_S * 1000 * 1.2);
          return { start: w.start, until: w.end + step + REFRESH_ALLOWANCE_MS };
        });
        const excused = (t: number) => excusedUntil.some((w) => w.start <= t && t < w.until);

        for (const s of r.samples) {
          if (excused(s.t)) {
            excusedCount++;
            if (s.expired) excusedExpired++;
          } else if (s.token === undefined) {
            absentCount++;
            // A deleted Secret comes back at once (the watch), at the latest with the next renewal.
            if (!deletions.some((d) => d <= s.t && s.t <= d + RENEW_MS + REFRESH_ALLOWANCE_MS)) {
              lateAbsent.push(`${r.name} ${new Date(s.t).toISOString()}`);
            }
          } else {
            reachableCount++;
            if (s.expired) expired.push(`${r.name} ${new Date(s.t).toISOString()}`);
          }
        }
      }

      const fraction = reachableCount === 0 ? 0 : expired.length / reachableCount;
      console.log(
        `freshness: ${expired.length} expired samples of ${reachableCount} (fraction ${
          fraction.toFixed(4)
        }) while the provider was reachable`,
      );
      console.log(
        `  seed ${SEED}, ${REFRESHERS} refreshers: ${windows.length} fault windows (${hitWindows.size} caused failures, up to ${longestStreak} in a row), ${deletions.length} deletions; ${excusedExpired} expired of ${excusedCount} samples during faults or their recovery step; ${absentCount} samples without a Secret after a deletion`,
      );
      console.log(`  faults: ${windows.map((w) => `${w.side}:${w.kind}`).join(" ")}`);

      assertEquals(expired, [], "samples with an expired token while the provider was reachable");
      assertEquals(lateAbsent, [], "samples without a Secret long after any deletion");
      assert(reachableCount > 300, `too few samples to judge: ${reachableCount}`);
      assert(hitWindows.size >= MIN_HIT_WINDOWS, "the faults must actually hit the refreshers");
    } finally {
      for (const r of refreshers) await r.process[Symbol.asyncDispose]();
    }
  } finally {
    await Deno.remove(good.dir, { recursive: true });
    await Deno.remove(bad.dir, { recursive: true });
  }
});
