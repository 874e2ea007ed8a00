import {
  assert,
  assertEquals,
  assertNotIncludes,
  assertStringIncludes,
  assertThrows,
} from "../tests/assert.ts";
import { createFakeKube, fakeKubeClient, storedValue } from "../tests/fixtures/fake_kube.ts";
import { SecretWriter } from "./kube/secret.ts";
import { TokenError } from "./oidc/mod.ts";
import type { Token, TokenSource } from "./token.ts";
import { runRefreshLoop } from "./refresh.ts";
import type { Clock } from "./token.ts";
import {
  createHealthHandler,
  HealthServerError,
  parseListenAddress,
  startHealthServer,
} from "./server.ts";
import { type CheckResult, type HealthSource, RefreshStatus } from "./status.ts";

function source(checks: { live?: CheckResult; ready?: CheckResult; metrics?: string } = {}) {
  const health: HealthSource = {
    liveness: () => checks.live ?? { ok: true },
    readiness: () => checks.ready ?? { ok: true },
    metrics: () => checks.metrics ?? "# HELP x y\n# TYPE x gauge\nx 1\n",
  };
  return createHealthHandler(health);
}

Deno.test("/healthz and /readyz answer 200 ok when their check passes", async () => {
  const handler = source();
  for (const path of ["/healthz", "/readyz"]) {
    const res = handler(new Request(`http://x${path}`));
    assertEquals(res.status, 200);
    assertEquals(await res.text(), "ok\n");
    assertEquals(res.headers.get("cache-control"), "no-store");
    assertEquals(res.headers.get("content-type"), "text/plain; charset=utf-8");
  }
});

Deno.test("/readyz answers 503 with the one-line reason when not ready", async () => {
  const handler = source({ ready: { ok: false, reason: "No successful refresh yet" } });
  const res = handler(new Request("http://x/readyz"));
  assertEquals(res.status, 503);
  assertEquals(await res.text(), "No successful refresh yet\n");
  assertEquals(handler(new Request("http://x/healthz")).status, 200, "liveness unaffected");
});

Deno.test("/healthz answers 503 with the reason when the loop is stuck", async () => {
  const handler = source({ live: { ok: false, reason: "Refresh attempt running for 50 s" } });
  const res = handler(new Request("http://x/healthz"));
  assertEquals(res.status, 503);
  assertEquals(await res.text(), "Refresh attempt running for 50 s\n");
});

Deno.test("/metrics answers the exposition with the Prometheus text content type", async () => {
  const res = source()(new Request("http://x/metrics"));
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assertEquals(await res.text(), "# HELP x y\n# TYPE x gauge\nx 1\n");
});

Deno.test("HEAD gets the status without a body; other methods get 405; other paths 404", async () => {
  const handler = source({ ready: { ok: false, reason: "nope" } });
  const head = handler(new Request("http://x/readyz", { method: "HEAD" }));
  assertEquals(head.status, 503);
  assertEquals(head.body, null);
  const post = handler(new Request("http://x/metrics", { method: "POST" }));
  assertEquals(post.status, 405);
  assertEquals(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
  const other = handler(new Request("http://x/"));
  assertEquals(other.status, 404);
  assertStringIncludes(await other.text(), "/healthz, /readyz, /metrics");
  const query = handler(new Request("http://x/healthz?verbose=1"));
  assertEquals(query.status, 200, "a query string does not change the path");
  await query.body?.cancel();
});

Deno.test("no endpoint ever shows the token or the client secret, after successes and failures", async () => {
  const TOKEN = "eyJhbGciOi.very-secret-access-token.sig";
  const CLIENT_SECRET = "client-secret-never-shown";
  const controller = new AbortController();
  let now = 1_700_000_000_000;
  let sleeps = 0;
  const clock: Clock = {
    now: () => now,
    sleep(ms) {
      now += ms;
      if (++sleeps >= 3) controller.abort();
      return Promise.resolve();
    },
  };
  let calls = 0;
  const tokens: TokenSource = {
    fetchToken() {
      calls++;
      if (calls === 2) {
        // A provider's error text is what a failure shows; it never holds the client secret.
        return Promise.reject(
          new TokenError(
            'Token endpoint refused the request with HTTP 401, error "invalid_client"',
            {
              code: "TOKEN_PROVIDER_ERROR",
              status: 401,
              providerError: "invalid_client",
            },
          ),
        );
      }
      const token: Token = {
        value: TOKEN,
        obtainedAt: now,
        lifetimeSeconds: 600,
        expiresAt: now + 600_000,
        lifetimeSource: "expires_in",
      };
      return Promise.resolve(token);
    },
  };
  const fake = createFakeKube();
  const client = fakeKubeClient(fake, { authorization: `Bearer ${CLIENT_SECRET}` });
  const target = { namespace: "ns", name: "tok", key: "token" };
  const status = new RefreshStatus({ version: "1.0.0", clock: { now: () => now } });
  const handler = createHealthHandler(status);
  const seen: string[] = [];
  const look = async () => {
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      seen.push(await handler(new Request(`http://x${path}`)).text());
    }
  };
  await runRefreshLoop({
    source: tokens,
    writer: new SecretWriter(client, target),
    target,
    schedule: { intervalMs: 60_000, renewFraction: 0.67 },
    signal: controller.signal,
    clock: {
      now: clock.now,
      sleep: async (ms, signal) => {
        await look();
        await clock.sleep(ms, signal);
      },
    },
    observer: status,
  });
  await look();
  assertEquals(calls, 3);
  assertEquals(storedValue(fake, target), TOKEN, "the token was written");
  const all = seen.join("\n");
  assertStringIncludes(all, "invalid_client", "the failure reason was shown");
  assertNotIncludes(all, TOKEN);
  assertNotIncludes(all, "very-secret-access-token");
  assertNotIncludes(all, CLIENT_SECRET);
  assertNotIncludes(all, btoa(TOKEN));
});

Deno.test("parseListenAddress() reads :port as every interface of both families, brackets off IPv6", () => {
  assertEquals(parseListenAddress(":8080"), { hostname: "::", port: 8080, bothFamilies: true });
  assertEquals(parseListenAddress("0.0.0.0:8080"), { hostname: "0.0.0.0", port: 8080 });
  assertEquals(parseListenAddress("[::]:8080"), { hostname: "::", port: 8080 });
  assertEquals(parseListenAddress("127.0.0.1:0"), { hostname: "127.0.0.1", port: 0 });
  assertEquals(parseListenAddress("[::1]:9000"), { hostname: "::1", port: 9000 });
  assertEquals(parseListenAddress("localhost:1"), { hostname: "localhost", port: 1 });
  assertEquals(parseListenAddress("off"), undefined);
});

Deno.test("startHealthServer() on port 0 binds a free port, serves the handler, stops on abort", async () => {
  const stop = new AbortController();
  const server = startHealthServer({
    address: "127.0.0.1:0",
    handler: source({ ready: { ok: false, reason: "not yet" } }),
    signal: stop.signal,
  });
  try {
    assert(server.addr.port > 0);
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/readyz`);
    assertEquals(res.status, 503);
    assertEquals(await res.text(), "not yet\n");
  } finally {
    stop.abort();
    await server.finished;
  }
});

Deno.test("startHealthServer() on a port in use throws HTTP_LISTEN naming the address and the key", () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const address = `127.0.0.1:${taken.addr.port}`;
  const error = assertThrows(
    () =>
      startHealthServer({
        address,
        handler: () => new Response(),
        signal: AbortSignal.abort(),
      }),
    HealthServerError,
  );
  assertEquals(error.code, "HTTP_LISTEN");
  assertEquals(error.address, address);
  assertStringIncludes(error.message, `"${address}" (http.address): the address is already in use`);
});

/** GETs /readyz at a loopback address and returns the status. */
async function readyzStatus(host: string, port: number): Promise<number> {
  const res = await fetch(`http://${host}:${port}/readyz`);
  await res.body?.cancel();
  return res.status;
}

Deno.test("startHealthServer() on :port answers on IPv4 and IPv6 loopback alike", async () => {
  const stop = new AbortController();
  const server = startHealthServer({
    address: ":0",
    handler: source({ ready: { ok: true } }),
    signal: stop.signal,
  });
  try {
    assertEquals(server.ipv4Only, undefined);
    assertEquals(await readyzStatus("127.0.0.1", server.addr.port), 200);
    assertEquals(await readyzStatus("[::1]", server.addr.port), 200);
  } finally {
    stop.abort();
    await server.finished;
  }
});

Deno.test("startHealthServer() on :port falls back to IPv4 where IPv6 cannot be listened on, and says why", async () => {
  const stop = new AbortController();
  const asked: string[] = [];
  const server = startHealthServer({
    address: ":0",
    handler: source({ ready: { ok: true } }),
    signal: stop.signal,
    serve: (options, handler) => {
      asked.push(options.hostname!);
      // What a kernel without IPv6 answers for an AF_INET6 socket.
      if (options.hostname === "::") {
        throw new Error("Address family not supported by protocol (os error 97)");
      }
      return Deno.serve(options, handler);
    },
  });
  try {
    assertEquals(asked, ["::", "0.0.0.0"]);
    assertEquals(server.ipv4Only, "Address family not supported by protocol (os error 97)");
    assertEquals(await readyzStatus("127.0.0.1", server.addr.port), 200);
  } finally {
    stop.abort();
    await server.finished;
  }
});

Deno.test("startHealthServer() on :port in use does not fall back: IPv4 would be taken too", () => {
  const error = assertThrows(
    () =>
      startHealthServer({
        address: ":8080",
        handler: () => new Response(),
        signal: AbortSignal.abort(),
        serve: () => {
          throw new Deno.errors.AddrInUse("Address already in use (os error 98)");
        },
      }),
    HealthServerError,
  );
  assertStringIncludes(error.message, `":8080" (http.address): the address is already in use`);
});

Deno.test("startHealthServer() on [::1]:0 answers on IPv6 loopback", async () => {
  const stop = new AbortController();
  const server = startHealthServer({
    address: "[::1]:0",
    handler: source({ ready: { ok: true } }),
    signal: stop.signal,
  });
  try {
    assertEquals(await readyzStatus("[::1]", server.addr.port), 200);
  } finally {
    stop.abort();
    await server.finished;
  }
});
