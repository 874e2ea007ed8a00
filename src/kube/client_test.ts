import {
  assert,
  assertEquals,
  assertMatch,
  assertNotIncludes,
  assertRejects,
} from "../../tests/assert.ts";
import { makeTestTls } from "../../tests/fixtures/tls.ts";
import { RefreshStatus } from "../status.ts";
import { KubeApiError, KubeClient, type KubeConnection } from "./client.ts";

/** A connection to `server` trusting `caPem` (or nothing beyond the system's roots). */
function connectionTo(server: string, caPem?: string): KubeConnection {
  const httpClient = Deno.createHttpClient(caPem === undefined ? {} : { caCerts: [caPem] });
  return {
    server: new URL(server),
    httpClient,
    description: "test connection",
    authorize: () => Promise.resolve({ authorization: "Bearer sa-token-never-shown" }),
    close: () => httpClient.close(),
  };
}

async function unreachable(connection: KubeConnection, fetcher?: typeof fetch) {
  try {
    const client = new KubeClient(connection, { timeoutMs: 5000, fetch: fetcher });
    return await assertRejects(() => client.getSecret("team-a", "api-token"), KubeApiError);
  } finally {
    connection.close();
  }
}

Deno.test("KubeClient says a wrong CA is a TLS failure with the verifier's reason, also in /readyz", async () => {
  await using served = await makeTestTls();
  await using other = await makeTestTls();
  const stop = new AbortController();
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      cert: served.certPem,
      key: served.keyPem,
      signal: stop.signal,
      onListen: () => {},
      // The handshake fails first; a logged TLS error would only be noise.
      onError: () => new Response(null, { status: 500 }),
    },
    () => new Response("{}"),
  );
  try {
    const err = await unreachable(
      connectionTo(`https://127.0.0.1:${server.addr.port}`, other.caPem),
    );
    assertEquals(err.code, "KUBE_UNREACHABLE");
    assertEquals(err.sendFailure, "tls");
    assertMatch(err.message, /could not be reached: TLS failed: invalid peer certificate: \w+/);
    assertNotIncludes(err.message, "fetch failed");

    const status = new RefreshStatus({ version: "0.0.0", clock: { now: () => 0 } });
    status.onFailure({ error: err, durationMs: 1, failures: 1, nextAt: 500 });
    const readiness = status.readiness();
    assert(!readiness.ok);
    assertMatch(readiness.reason, /KUBE_UNREACHABLE: .*TLS failed: invalid peer certificate/);
  } finally {
    stop.abort();
    await server.finished;
  }
});

Deno.test("KubeClient says a closed port refused the connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  const err = await unreachable(connectionTo(`https://127.0.0.1:${port}`));
  assertEquals(err.code, "KUBE_UNREACHABLE");
  assertEquals(err.sendFailure, "refused");
  assertMatch(err.message, /could not be reached: .*Connection refused/i);
  assertNotIncludes(err.message, "fetch failed");
});

Deno.test("KubeClient names DNS and reset failures, and never the request's token", async () => {
  const cases = [
    [
      "dns",
      "dns error: failed to lookup address information: Name or service not known",
      /DNS lookup failed: dns error/,
    ],
    ["reset", "connection closed before message completed", /connection lost: connection closed/],
  ] as const;
  for (const [kind, words, said] of cases) {
    const fetcher = () =>
      Promise.reject(
        new TypeError("fetch failed", {
          cause: new Error(
            `error sending request for url (https://kube.example.test/api): client error (Connect): ${words}`,
          ),
        }),
      );
    const err = await unreachable(connectionTo("https://kube.example.test"), fetcher);
    assertEquals(err.sendFailure, kind);
    assertMatch(err.message, said);
    assertNotIncludes(err.message, "error sending request");
    assertNotIncludes(err.message, "sa-token-never-shown");
  }
});
