/**
 * Efficiency while healthy (issue 4), counted over real sockets with the process as users run
 * it: one token request and one API write per refresh in steady state. The refresher keeps the
 * Secret as it last wrote it and updates it directly; only the first refresh reads (and, the
 * Secret being absent, creates).
 */
import { assert, assertEquals, assertNotIncludes } from "./assert.ts";
import { createFakeKube } from "./fixtures/fake_kube.ts";
import { startFakeCluster } from "./fixtures/fake_cluster.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { makeTestTls } from "./fixtures/tls.ts";

const REFRESHES = 4;

Deno.test("main.ts makes one token request and one API write per refresh in steady state", async () => {
  const tls = await makeTestTls();
  try {
    const fake = createFakeKube();
    await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
    // Tokens living 2 s: renewed every 1.34 s, well inside the default interval.
    await using provider = await startOidcProvider({ tokenTtlSeconds: 2 });
    await using refresher = spawnRefresher({
      env: {
        ...cluster.env,
        ...providerEnv(provider),
      },
      args: ["--secret.name=api-token", "--secret.namespace=team-a", "--http.address=off"],
    });
    await refresher.waitForOutput(new RegExp(`(Token refreshed[^]*){${REFRESHES}}`));
    // Stopped right after a refresh, long before the next one is due: nothing is in flight.
    refresher.kill("SIGTERM");
    const { code, output } = await refresher.exited;
    assertEquals(code, 0, output);

    const refreshes = output.match(/Token refreshed/g)?.length ?? 0;
    assertEquals(refreshes, REFRESHES);
    assertEquals(provider.requests, REFRESHES, "token requests");
    assert(provider.tokenRequests.every((r) => r.status === 200));
    // The first refresh finds no Secret and creates it; every later one is a single update.
    assertEquals(
      fake.requests.map((r) => r.method),
      ["GET", "POST", ...Array(REFRESHES - 1).fill("PUT")],
    );
    assertEquals(
      atob(fake.secrets.get("team-a/api-token")?.data?.token ?? ""),
      provider.issued.at(-1),
    );
    // The lifetime, not the interval, set the pace; said once.
    assertEquals(output.match(/Interval is longer than the token lifetime allows/g)?.length, 1);
    assertNotIncludes(output, provider.clientSecret);
    for (const token of provider.issued) assertNotIncludes(output, token);
  } finally {
    await Deno.remove(tls.dir, { recursive: true });
  }
});
