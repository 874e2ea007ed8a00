/**
 * The process as users run it (main.ts under the compiled binary's permission set), against a
 * real OpenID provider and the in-test Kubernetes API fake over TLS: what only a real process
 * shows. The permission set reading a rotated service-account token, SIGTERM and SIGINT in the
 * middle of hanging requests, and the exit codes 2 and 3 as the operating system sees them.
 * Everything a function call can reach runs in-process (modes_test.ts, shutdown_test.ts).
 * Runs without the real stack.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { createFakeKube } from "./fixtures/fake_kube.ts";
import { hang, startScriptedServer } from "./fixtures/fault_server.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher, stopTimed } from "./fixtures/refresher_process.ts";
import { makeTestTls } from "./fixtures/tls.ts";
import { startFakeCluster } from "./fixtures/fake_cluster.ts";

const BASE_ARGS = ["--secret.name=api-token", "--secret.namespace=team-a", "--http.address=off"];
/** The client secret of a scripted provider: it must never reach the output. */
const CLIENT_SECRET = "secret-value-not-to-print";

/** The client settings for a token endpoint that is not a real provider. */
function clientEnv(tokenUrl: string): Record<string, string> {
  return {
    KTR_OIDC_TOKENURL: tokenUrl,
    KTR_OIDC_CLIENTID: "c",
    KTR_OIDC_CLIENTSECRET: CLIENT_SECRET,
  };
}

Deno.test("main.ts writes the provider's token and rereads a rotated service account token", async () => {
  await using tls = await makeTestTls();
  const fake = createFakeKube();
  await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  await using provider = await startOidcProvider({ tokenTtlSeconds: 3 });
  await using refresher = spawnRefresher({
    env: {
      ...cluster.env,
      ...providerEnv(provider),
    },
    args: [...BASE_ARGS, "--log.level=debug"],
  });
  await refresher.waitForOutput(/Token refreshed/);
  await Deno.writeTextFile(`${cluster.saDir}/token`, "sa-token-2");
  await refresher.waitForOutput(/(Token refreshed[^]*){2}/);
  refresher.kill("SIGTERM");
  const { code, output } = await refresher.exited;
  assertEquals(code, 0, output);
  const auth = fake.requests.map((r) => r.authorization);
  assertEquals(auth[0], "Bearer sa-token-1");
  assertEquals(auth.at(-1), "Bearer sa-token-2");
  const stored = fake.secrets.get("team-a/api-token");
  assert(stored?.data?.token);
  assert(provider.issued.includes(atob(stored.data.token)));
  for (const token of provider.issued) assertNotIncludes(output, token);
  assertNotIncludes(output, provider.clientSecret);
  assertNotIncludes(output, "sa-token-");
});

Deno.test("main.ts exits 0 within a second on SIGTERM while the provider hangs", async () => {
  await using tls = await makeTestTls();
  const fake = createFakeKube();
  await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  await using provider = await startScriptedServer((_req, _n, signal) => hang(signal));
  await using refresher = spawnRefresher({
    env: {
      ...cluster.env,
      ...clientEnv(`${provider.url}/token`),
    },
    args: [...BASE_ARGS, "--log.level=debug"],
  });
  await refresher.waitForOutput(/Refreshing token/);
  while (provider.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
  const { code, output, stopMs } = await stopTimed(refresher);
  assertEquals(code, 0, output);
  assert(stopMs < 1500, `stopping took ${stopMs} ms`);
  // Reads only (the start-up read, the watch, the Events review): nothing was written.
  assertEquals(
    fake.requests.filter((r) => r.method !== "GET" && !r.path.includes("accessreview")),
    [],
  );
  assertNotIncludes(output, CLIENT_SECRET);
});

Deno.test("main.ts exits 0 within a second on SIGINT while the API server hangs", async () => {
  await using tls = await makeTestTls();
  const fake = createFakeKube();
  await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  await cluster.setFault("hang");
  await using provider = await startOidcProvider({ tokenTtlSeconds: 60 });
  await using refresher = spawnRefresher({
    env: {
      ...cluster.env,
      ...providerEnv(provider),
    },
    args: BASE_ARGS,
  });
  // The write reached the server, which holds it unanswered.
  while (cluster.writes.length === 0) await new Promise((r) => setTimeout(r, 20));
  const { code, output, stopMs } = await stopTimed(refresher, "SIGINT");
  assertEquals(code, 0, output);
  assert(stopMs < 1500, `stopping took ${stopMs} ms`);
  assertEquals(fake.secrets.size, 0);
});

Deno.test("main.ts exits 2 on bad configuration before contacting anything", async () => {
  await using tls = await makeTestTls();
  const fake = createFakeKube();
  await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  await using provider = await startScriptedServer(() => Response.json({}));
  await using refresher = spawnRefresher({
    env: {
      ...cluster.env,
      ...clientEnv(`${provider.url}/token`),
      KTR_INTERVAL: "10s",
    },
    args: BASE_ARGS,
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 2, output);
  assertMatch(output, /Invalid value "10s" for interval from environment variable KTR_INTERVAL/);
  assertEquals(fake.requests.length, 0);
  assertEquals(provider.requests.length, 0);
  assertNotIncludes(output, CLIENT_SECRET);
});

Deno.test("main.ts exits 3 when the service account folder is missing", async () => {
  await using refresher = spawnRefresher({
    env: {
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: "1",
      KTR_KUBE_SERVICEACCOUNTDIR: "/nonexistent/serviceaccount",
      ...clientEnv("http://127.0.0.1:1/token"),
    },
    args: BASE_ARGS,
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 3, output);
  assertMatch(
    output,
    /Service account CA file "\/nonexistent\/serviceaccount\/ca.crt" could not be read/,
  );
});
