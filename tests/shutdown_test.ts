/**
 * Shutdown in the middle of each fault of issue 4: `main()` run in-process, stopped through its
 * runtime's shutdown signal, against a real OpenID provider behind a fault-injecting HTTPS front
 * and the TLS Kubernetes API fake. That a real process turns SIGTERM and SIGINT into that signal
 * is shown by tests/process_test.ts.
 *
 * Each step starts the refresher while the fault is in effect, against a Secret that already
 * holds a good token (a restart during an outage), waits until the fault has hit the refresher
 * (a request hangs, or a failure was logged and the refresher sleeps before its retry), and sends
 * SIGTERM. It asserts: exit code 0 within 1.5 s (the "within a second", plus noise), an
 * orderly stop with no uncaught error or unhandled rejection, no secret in the output, and no
 * partial write: the Secret still holds the good token with every other key (a deleted Secret:
 * absent, or created again with a whole token), and every write that reached the API server
 * carried a whole token the provider issued.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { createFakeKube, type FakeKube } from "./fixtures/fake_kube.ts";
import { type ApiFault, type FakeCluster, startFakeCluster } from "./fixtures/fake_cluster.ts";
import { startOidcProvider } from "./fixtures/oidc_provider.ts";
import { runInProcess } from "./fixtures/in_process.ts";
import { stopTimed } from "./fixtures/refresher_process.ts";
import { makeTestTls, type TestTls } from "./fixtures/tls.ts";
import { type ProviderFault, startTokenFront, type TokenFront } from "./fixtures/token_front.ts";

const NAMESPACE = "team-a";
const NAME = "api-token";
const PREVIOUS_TOKEN = `previous-good-token-${crypto.randomUUID()}`;
const ARGS = [
  `--secret.name=${NAME}`,
  `--secret.namespace=${NAMESPACE}`,
  "--http.address=off",
  "--log.level=debug",
];

/** A Secret as a previous run left it: a good token, another key, a label, an annotation. */
function seedSecret(fake: FakeKube) {
  fake.secrets.clear();
  fake.secrets.set(`${NAMESPACE}/${NAME}`, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: NAME,
      namespace: NAMESPACE,
      resourceVersion: "7",
      labels: { "ktr.appuio.ch/managed": "true", team: "a" },
      annotations: { "example.com/owner": "team-a" },
    },
    type: "Opaque",
    data: { token: btoa(PREVIOUS_TOKEN), "ca.crt": btoa("kept") },
  });
}

/** When to send SIGTERM: while a request is in flight, or while sleeping after a failure. */
type Moment = "in-flight" | "backing-off";

interface World {
  tls: { good: TestTls; bad: TestTls };
  cluster: FakeCluster;
  front: TokenFront;
  provider: Awaited<ReturnType<typeof startOidcProvider>>;
}

async function stopDuring(
  w: World,
  fault: { side: "provider"; kind: ProviderFault } | { side: "api"; kind: ApiFault },
  moment: Moment,
) {
  const { cluster, front, provider } = w;
  seedSecret(cluster.fake);
  cluster.fake.requests.length = 0;
  cluster.writes.length = 0;
  const issuedBefore = provider.issued.length;
  if (fault.side === "provider") await front.setFault(fault.kind);
  else await cluster.setFault(fault.kind);
  try {
    await using refresher = runInProcess({
      env: {
        ...cluster.env,
        KTR_OIDC_CAFILE: `${w.tls.good.dir}/ca.crt`,
        KTR_OIDC_TOKENURL: front.tokenUrl,
        KTR_OIDC_CLIENTID: provider.clientId,
        KTR_OIDC_CLIENTSECRET: provider.clientSecret,
      },
      args: ARGS,
    });
    if (moment === "in-flight") {
      if (fault.side === "provider") await front.waitForRequests(1);
      else {
        // A write is on its way.
        while (cluster.writes.length < 1) await new Promise((r) => setTimeout(r, 5));
      }
    } else {
      await refresher.waitForOutput(/Refresh failed/);
    }
    const { code, output, stopMs } = await stopTimed(refresher);
    assertEquals(code, 0, output);
    assert(stopMs < 1500, `stopping took ${stopMs} ms`);
    assertMatch(output, /Refresh loop stopped/);
    for (const sign of [/uncaught/i, /unhandled/i, /panicked/i, /^error: /m]) {
      assert(!sign.test(output), `${sign} in the output:\n${output}`);
    }
    assertNotIncludes(output, provider.clientSecret);
    assertNotIncludes(output, PREVIOUS_TOKEN);
    assertNotIncludes(output, "sa-token-");
    for (const token of provider.issued) assertNotIncludes(output, token);

    // No partial write: what was sent was whole, and the Secret is as it was (or, deleted by
    // someone, absent or created again with a whole new token).
    const issued = new Set(provider.issued.slice(issuedBefore));
    for (const write of cluster.writes) {
      assert(issued.has(write.data.token), `a ${write.method} carried a token never issued`);
      // An apply carries only the tool's key: the other keys are the server's to keep.
      assertEquals(Object.keys(write.data), ["token"]);
    }
    const stored = cluster.fake.secrets.get(`${NAMESPACE}/${NAME}`);
    if (fault.kind === "deleted") {
      if (stored) assert(issued.has(atob(stored.data?.token ?? "")), "a whole new token");
    } else {
      assert(stored, "the Secret is still there");
      assertEquals(atob(stored.data?.token ?? ""), PREVIOUS_TOKEN);
      assertEquals(atob(stored.data?.["ca.crt"] ?? ""), "kept");
      assertEquals(stored.metadata.labels?.team, "a");
      assertEquals(stored.metadata.annotations?.["example.com/owner"], "team-a");
    }
    return { output, stopMs };
  } finally {
    if (fault.side === "provider") await front.setFault(undefined);
    else await cluster.setFault(undefined);
  }
}

async function withWorld(fn: (w: World) => Promise<void>) {
  const good = await makeTestTls();
  const bad = await makeTestTls();
  try {
    await using provider = await startOidcProvider({ tokenTtlSeconds: 60 });
    await using cluster = await startFakeCluster(createFakeKube(), good, { namespace: NAMESPACE });
    await using front = await startTokenFront({
      upstream: provider.tokenUrl,
      tls: { trusted: good, untrusted: bad },
      // Long enough that the refresher is asleep in its Retry-After wait when stopped.
      retryAfterSeconds: 60,
    });
    await fn({ tls: { good, bad }, cluster, front, provider });
  } finally {
    await Deno.remove(good.dir, { recursive: true });
    await Deno.remove(bad.dir, { recursive: true });
  }
}

const PROVIDER_STEPS: Array<[ProviderFault, Moment, string]> = [
  ["refused", "backing-off", "connection refused"],
  ["tls", "backing-off", "TLS handshake failure"],
  ["hang", "in-flight", "a token request hanging"],
  ["http500", "backing-off", "500"],
  ["http503", "backing-off", "503 with a 60 s Retry-After"],
  ["http429", "backing-off", "429 with a 60 s Retry-After"],
  ["http401", "backing-off", "401: the 30 s wait of bad credentials"],
  ["html", "backing-off", "200 with HTML"],
  ["empty", "backing-off", "200 with {}"],
  ["large", "in-flight", "a 2 MiB body being sent"],
];

const API_STEPS: Array<[ApiFault, Moment, string]> = [
  ["refused", "backing-off", "connection refused"],
  ["http500", "backing-off", "500"],
  ["http503", "backing-off", "503"],
  ["rotated", "backing-off", "401 after the service account token rotated"],
  ["forbidden", "backing-off", "403"],
  ["hang", "in-flight", "a write hanging"],
  ["deleted", "in-flight", "the Secret's re-creation after someone deleted it"],
];

Deno.test("main.ts exits 0 within a second on SIGTERM during each provider fault, leaving the Secret's good token", async (t) => {
  await withWorld(async (w) => {
    for (const [kind, moment, what] of PROVIDER_STEPS) {
      await t.step(`during ${what}`, async () => {
        await stopDuring(w, { side: "provider", kind }, moment);
        // The provider's fault kept every token request from producing a token to write.
        assertEquals(w.cluster.writes.length, 0);
      });
    }
  });
});

Deno.test("main.ts exits 0 within a second on SIGTERM during each API server fault, with no partial write", async (t) => {
  await withWorld(async (w) => {
    for (const [kind, moment, what] of API_STEPS) {
      await t.step(`during ${what}`, async () => {
        await stopDuring(w, { side: "api", kind }, moment);
      });
    }
  });
});
