/**
 * The operator-facing modes of main.ts: `--once`, `--dry-run`, and the health and metrics server
 * of a long run, against a real OpenID provider and the Kubernetes API fake over TLS in in-cluster
 * mode. They run `main()` in-process; the healthy long run is a real process under the compiled
 * binary's permission set, since its memory figure is the process's own.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { createFakeKube, type FakeKube } from "./fixtures/fake_kube.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { parsePrometheusText, prometheusParserIgnore } from "./fixtures/prometheus_parser.ts";
import { runInProcess } from "./fixtures/in_process.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { hang, startScriptedServer } from "./fixtures/fault_server.ts";
import { makeTestTls } from "./fixtures/tls.ts";
import { systemClock } from "../src/token.ts";
import { startFakeCluster } from "./fixtures/fake_cluster.ts";
import { processRssKiB } from "./stack/stack.ts";

/** The fake API over TLS, and a service-account folder that trusts it; disposing removes both. */
async function fakeCluster(fake: FakeKube) {
  const tls = await makeTestTls();
  const cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  return {
    env: cluster.env,
    saToken: cluster.saToken,
    async [Symbol.asyncDispose]() {
      await cluster.stop();
      await tls[Symbol.asyncDispose]();
    },
  };
}

/**
 * What every mode test starts from: the API fake behind TLS, a real provider, and the
 * environment that points the refresher at both.
 */
async function world(provider: Parameters<typeof startOidcProvider>[0] = {}) {
  const fake = createFakeKube();
  const cluster = await fakeCluster(fake);
  const oidc = await startOidcProvider(provider);
  return {
    fake,
    cluster,
    provider: oidc,
    env: { ...cluster.env, ...providerEnv(oidc) },
    async [Symbol.asyncDispose]() {
      await oidc[Symbol.asyncDispose]();
      await cluster[Symbol.asyncDispose]();
    },
  };
}

const TARGET = ["--secret.name=api-token", "--secret.namespace=team-a"];

/** Writes to Secrets, as opposed to reads and access reviews. */
function secretWrites(fake: FakeKube): string[] {
  return fake.requests
    .filter((r) => r.path.startsWith("/api/") && r.method !== "GET")
    .map((r) => `${r.method} ${r.path}`);
}

Deno.test("--once writes one token, exits 0 and starts no server", async () => {
  await using w = await world({ tokenTtlSeconds: 600 });
  const { fake, provider } = w;
  await using refresher = runInProcess({
    env: {
      ...w.env,
    },
    args: [...TARGET, "--once", "--http.address=127.0.0.1:0"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 0, output);
  assertEquals(provider.issued.length, 1);
  assertEquals(atob(fake.secrets.get("team-a/api-token")?.data?.token ?? ""), provider.issued[0]);
  assertMatch(output, /Token refreshed .*action=created/);
  assert(!output.includes("Serving"), `a server was started:\n${output}`);
  assertNotIncludes(output, provider.issued[0]);
  assertNotIncludes(output, provider.clientSecret);
});

Deno.test("--once exits 1 after one failed attempt, without retrying or writing", async () => {
  await using w = await world();
  const { fake, provider } = w;
  await using refresher = runInProcess({
    env: {
      ...w.env,
      KTR_OIDC_CLIENTSECRET: "wrong-secret-not-to-print",
      KTR_ONCE: "true",
    },
    args: [...TARGET, "--http.address=off"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 1, output);
  assertMatch(output, /Refresh failed: .*invalid_client/);
  assertEquals(provider.requests, 1);
  assertEquals(fake.requests.length, 0);
  assertNotIncludes(output, "wrong-secret-not-to-print");
});

Deno.test("--dry-run obtains a token, reviews permissions, prints the plan, writes nothing, exits 0", async () => {
  await using w = await world({ tokenTtlSeconds: 600 });
  const { fake, cluster, provider } = w;
  await using refresher = runInProcess({
    env: {
      ...w.env,
    },
    args: [...TARGET, "--dry-run", "--http.address=127.0.0.1:0"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 0, output);
  const token = provider.issued[0];
  assertMatch(
    output,
    new RegExp(`^Token: obtained, ${token.length} characters \\(not shown\\)`, "m"),
  );
  assertMatch(output, /^Kubernetes: https:\/\/127\.0\.0\.1:\d+ \(service account in /m);
  assertMatch(output, /^Permission get secret "api-token" in namespace "team-a": allowed$/m);
  for (const verb of ["patch", "create", "list", "watch"]) {
    assertMatch(
      output,
      new RegExp(`^Permission ${verb} secret "api-token" in namespace "team-a": allowed$`, "m"),
    );
  }
  assertMatch(output, /^Watch: permitted/m);
  assertMatch(output, /^Events: permitted/m);
  assertMatch(output, /^Would: create Secret "api-token" in namespace "team-a"/m);
  assertMatch(output, /^Result: OK/m);
  assertEquals(secretWrites(fake), []);
  assertEquals(fake.secrets.size, 0);
  assertEquals(fake.accessReviews.map((a) => `${a.resource} ${a.verb}`), [
    "secrets get",
    "secrets patch",
    "secrets create",
    "secrets list",
    "secrets watch",
    "events create",
    "events patch",
  ]);
  assert(!output.includes("Serving"), `a server was started:\n${output}`);
  assertNotIncludes(output, token);
  assertNotIncludes(output, provider.clientSecret);
  assertNotIncludes(output, cluster.saToken);
});

Deno.test("--dry-run exits 1 and names the missing permission when patch is not allowed", async () => {
  await using w = await world({ tokenTtlSeconds: 600 });
  w.fake.forbidden.add("patch");
  const { fake } = w;
  await using refresher = runInProcess({
    env: {
      ...w.env,
      KTR_DRY_RUN: "1",
    },
    args: [...TARGET, "--http.address=off"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 1, output);
  assertMatch(output, /^Permission patch secret "api-token" in namespace "team-a": MISSING$/m);
  assertMatch(output, /^Problem: Permission missing: patch secret "api-token"/m);
  assertMatch(output, /^Result: FAILED, 1 problem above$/m);
  assertEquals(secretWrites(fake), []);
});

Deno.test("a port already in use for http.address exits 2 before any request is sent", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using w = await world();
  const { fake, provider } = w;
  await using refresher = runInProcess({
    env: {
      ...w.env,
      KTR_HTTP_ADDRESS: `127.0.0.1:${taken.addr.port}`,
    },
    args: TARGET,
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 2, output);
  assertMatch(
    output,
    new RegExp(
      `"127\\.0\\.0\\.1:${taken.addr.port}" \\(http\\.address\\): the address is already in use`,
    ),
  );
  assertEquals(provider.requests, 0);
  assertEquals(fake.requests.length, 0);
});

Deno.test("a failing refresher serves /healthz 200 and /readyz 503 with the reason", async () => {
  await using w = await world();
  await using refresher = runInProcess({
    env: {
      ...w.env,
      KTR_OIDC_CLIENTSECRET: "wrong-secret-not-to-print",
    },
    args: [...TARGET, "--http.address=127.0.0.1:0"],
  });
  const base = (await refresher.waitForOutput(/address=http:\/\/127\.0\.0\.1:\d+/)).slice(8);
  await refresher.waitForOutput(/Refresh failed/);
  const ready = await fetch(`${base}/readyz`);
  assertEquals(ready.status, 503);
  const reason = await ready.text();
  assertMatch(reason, /^Last refresh failed: TOKEN_PROVIDER_ERROR: .*invalid_client.*\n$/);
  const live = await fetch(`${base}/healthz`);
  assertEquals([live.status, await live.text()], [200, "ok\n"]);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assertMatch(metrics, /^ktr_refresh_attempts_total\{result="failure"\} [1-9]/m);
  assertMatch(metrics, /^ktr_refresh_consecutive_failures [1-9]/m);
  refresher.kill("SIGTERM");
  const { code, output } = await refresher.exited;
  assertEquals(code, 0, output);
  for (const text of [reason, metrics, output]) {
    assertNotIncludes(text, "wrong-secret-not-to-print");
  }
});

Deno.test({
  name:
    "a healthy refresher serves ready, live and parseable metrics on a port 0 address, never a token",
  ignore: prometheusParserIgnore(),
  async fn() {
    const fake = createFakeKube();
    await using cluster = await fakeCluster(fake);
    await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });
    await using refresher = spawnRefresher({
      env: {
        ...cluster.env,
        ...providerEnv(provider),
      },
      args: [...TARGET, "--http.address=127.0.0.1:0"],
    });
    const base = (await refresher.waitForOutput(/address=http:\/\/127\.0\.0\.1:\d+/)).slice(8);
    await refresher.waitForOutput(/Token refreshed/);
    const bodies: string[] = [];
    const ready = await fetch(`${base}/readyz`);
    bodies.push(await ready.text());
    assertEquals([ready.status, bodies[0]], [200, "ok\n"]);
    const live = await fetch(`${base}/healthz`);
    bodies.push(await live.text());
    assertEquals(live.status, 200);
    const res = await fetch(`${base}/metrics`);
    const text = await res.text();
    bodies.push(text);
    assertEquals(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");

    const families = await parsePrometheusText(text);
    const value = (name: string, labels: Record<string, string> = {}) =>
      families.flatMap((f) => f.samples).find((s) =>
        s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
      )?.value;
    const token = provider.issued[0];
    const exp = JSON.parse(atob(token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/"))).exp;
    // From expires_in, counted from when the answer arrived: within a second or two of exp.
    const expiry = value("ktr_token_expiry_timestamp_seconds") ?? 0;
    assert(expiry >= exp && expiry - exp < 2, `expiry ${expiry}, exp ${exp}`);
    assertEquals(value("ktr_refresh_attempts_total", { result: "success" }), 1);
    assertEquals(value("ktr_refresh_attempts_total", { result: "failure" }), 0);
    assertEquals(value("ktr_refresh_duration_seconds_count", { result: "success" }), 1);
    assertEquals(value("ktr_build_info"), 1);
    const last = value("ktr_refresh_last_success_timestamp_seconds") ?? 0;
    const next = value("ktr_refresh_next_timestamp_seconds") ?? 0;
    assert(Math.abs(last - Date.now() / 1000) < 30, `last success ${last}`);
    // renew.percent 67 of 600 s: the next refresh is about 402 s after the token was issued.
    assert(Math.abs(next - last - 402) < 5, `next refresh ${next - last} s after the last`);

    // The footprint the deployment's memory request is sized from.
    const rssKiB = await processRssKiB(refresher.pid);
    const reported = value("process_resident_memory_bytes") ?? 0;
    console.log(
      `refresher RSS after one refresh: ${Math.round((rssKiB ?? 0) / 1024)} MiB (/proc), ` +
        `${Math.round(reported / 1048576)} MiB (process_resident_memory_bytes)`,
    );
    assert(reported > 10 * 1048576, "process_resident_memory_bytes is plausible");

    refresher.kill("SIGTERM");
    const { code, output } = await refresher.exited;
    assertEquals(code, 0, output);
    for (const body of [...bodies, output]) {
      assertNotIncludes(body, token, "a token leaked");
      assertNotIncludes(body, provider.clientSecret, "the client secret leaked");
      assertNotIncludes(body, cluster.saToken, "the service account token leaked");
    }
  },
});

Deno.test("--dry-run exits 0 on SIGTERM, as every mode does, and reports no failure", async () => {
  await using tls = await makeTestTls();
  const fake = createFakeKube();
  await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  await using provider = await startScriptedServer((_req, _n, signal) => hang(signal));
  await using refresher = runInProcess({
    env: {
      ...cluster.env,
      KTR_OIDC_TOKENURL: `${provider.url}/token`,
      KTR_OIDC_CLIENTID: "c",
      KTR_OIDC_CLIENTSECRET: "secret-value-not-to-print",
    },
    args: ["--secret.name=api-token", "--secret.namespace=team-a", "--dry-run"],
  });
  while (provider.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
  refresher.kill("SIGTERM");
  const { code, output } = await refresher.exited;
  assertEquals(code, 0, output);
  // A report of aborted requests would read as a failed check.
  assertNotIncludes(output, "Result: FAILED");
  assertNotIncludes(output, "secret-value-not-to-print");
});

Deno.test("--help names every variable and never a secret from the environment", async () => {
  await using refresher = runInProcess({
    env: { KTR_OIDC_CLIENTSECRET: "secret-value-not-to-print" },
    args: ["--help"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 0);
  assertMatch(output, /KTR_OIDC_CLIENTSECRET/);
  assertNotIncludes(output, "secret-value-not-to-print");
});

Deno.test("the loop, the status and the token source read the runtime's one clock", async () => {
  // A clock ten days behind the system's: every timestamp the refresher reports must follow it.
  const behindMs = 10 * 24 * 3600 * 1000;
  const clock = { now: () => Date.now() - behindMs, sleep: systemClock.sleep };
  const fake = createFakeKube();
  await using cluster = await fakeCluster(fake);
  await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });
  await using refresher = runInProcess({
    env: { ...cluster.env, ...providerEnv(provider) },
    args: [...TARGET, "--http.address=127.0.0.1:0"],
    runtime: { clock },
  });
  const base = (await refresher.waitForOutput(/address=http:\/\/127\.0\.0\.1:\d+/)).slice(8);
  await refresher.waitForOutput(/Token refreshed/);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => Number(metrics.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1]);
  const expected = clock.now() / 1000;
  const last = value("ktr_refresh_last_success_timestamp_seconds");
  assert(Math.abs(last - expected) < 30, `last success ${last}, runtime clock ${expected}`);
  // renew.percent 67 of 600 s, from the token source's obtainedAt on the same clock.
  const next = value("ktr_refresh_next_timestamp_seconds");
  assert(Math.abs(next - last - 402) < 5, `next refresh ${next - last} s after the last`);
  refresher.kill("SIGTERM");
  assertEquals((await refresher.exited).code, 0);
});
