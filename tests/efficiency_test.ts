/**
 * Efficiency while healthy (issue 4), counted over real sockets with the process as users run
 * it: one token request and one API write (a server-side apply) per refresh in steady state.
 */
import { assert, assertEquals, assertNotIncludes } from "./assert.ts";
import { createFakeKube } from "./fixtures/fake_kube.ts";
import { startFakeCluster } from "./fixtures/fake_cluster.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { makeTestTls } from "./fixtures/tls.ts";

const REFRESHES = 4;

Deno.test("main.ts makes one token request and one Secret apply per refresh in steady state", async () => {
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
    // Each refresh is one server-side apply; besides, the start reads the Secret once, the
    // watch lists it once and stays open, and Events are aggregated (one create for all these
    // refreshes).
    const secretCalls = fake.requests.filter((r) => r.path.includes("/secrets")).map((r) =>
      `${r.method} ${r.path.endsWith("/secrets") ? "collection" : "object"}`
    );
    assertEquals(secretCalls.filter((c) => c === "PATCH object").length, REFRESHES);
    assertEquals(secretCalls.filter((c) => c === "GET object").length, 1);
    assertEquals(secretCalls.filter((c) => c === "GET collection").length, 2, "list + watch");
    assertEquals(secretCalls.length, REFRESHES + 3);
    const eventWrites = fake.events.length;
    assertEquals(eventWrites, 1);
    console.log(
      `requests per steady-state refresh: 1 token + 1 Secret apply; Event writes over ${REFRESHES} refreshes: ${eventWrites}`,
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
