import {
  assert,
  assertEquals,
  assertNotIncludes,
  assertRejects,
  assertStringIncludes,
} from "../tests/assert.ts";
import { createClientCredentialsSource, jwtExpiry, parseRetryAfter, TokenError } from "./oidc.ts";

const CLIENT_SECRET = "client-secret-value-6f1d";
const TOKEN = "access-token-value-93ab";

interface Seen {
  url: string;
  method: string;
  contentType: string | null;
  body: URLSearchParams;
}

function sourceAnswering(
  answer: () => Response | Promise<Response>,
  extra: { timeoutMs?: number; maxResponseBytes?: number; now?: () => number } = {},
) {
  const seen: Seen[] = [];
  const source = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/oauth/token",
    clientId: "my-client",
    clientSecret: CLIENT_SECRET,
    fetch: async (input, init) => {
      const req = new Request(input, init);
      seen.push({
        url: req.url,
        method: req.method,
        contentType: req.headers.get("content-type"),
        body: new URLSearchParams(await req.text()),
      });
      return answer();
    },
    ...extra,
  });
  return { source, seen };
}

function expectSafe(err: TokenError) {
  assertNotIncludes(err.message, CLIENT_SECRET);
  assertNotIncludes(err.message, TOKEN);
  assertNotIncludes(JSON.stringify(err), CLIENT_SECRET);
}

Deno.test("fetchToken() posts client credentials in the form body and returns the token", async () => {
  const { source, seen } = sourceAnswering(() =>
    Response.json({ access_token: TOKEN, token_type: "Bearer", expires_in: 300 })
  );
  const token = await source.fetchToken();
  assertEquals(token.value, TOKEN);
  assertEquals(token.lifetimeSeconds, 300);
  assertEquals(token.lifetimeSource, "expires_in");
  assertEquals(token.expiresAt, token.obtainedAt + 300_000);
  assertEquals(seen.length, 1);
  assertEquals(seen[0].method, "POST");
  assertEquals(seen[0].url, "https://auth.example.test/oauth/token");
  assertStringIncludes(seen[0].contentType ?? "", "application/x-www-form-urlencoded");
  assertEquals(seen[0].body.get("grant_type"), "client_credentials");
  assertEquals(seen[0].body.get("client_id"), "my-client");
  assertEquals(seen[0].body.get("client_secret"), CLIENT_SECRET);
});

Deno.test("fetchToken() reports a 401 with the provider's error and description", async () => {
  const { source } = sourceAnswering(() =>
    Response.json({ error: "invalid_client", error_description: "client authentication failed" }, {
      status: 401,
    })
  );
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_PROVIDER_ERROR");
  assertEquals(err.status, 401);
  assertEquals(err.providerError, "invalid_client");
  assertEquals(err.providerDescription, "client authentication failed");
  assertStringIncludes(err.message, "invalid_client");
  assertStringIncludes(err.message, "client authentication failed");
  expectSafe(err);
});

Deno.test("fetchToken() refuses a 200 answer without access_token", async () => {
  const { source } = sourceAnswering(() => Response.json({}));
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_INVALID_RESPONSE");
  assertStringIncludes(err.message, "access_token");
});

Deno.test("fetchToken() refuses a 200 answer that is not JSON", async () => {
  const { source } = sourceAnswering(() =>
    new Response("<html>login</html>", { headers: { "content-type": "text/html" } })
  );
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_INVALID_RESPONSE");
});

Deno.test("fetchToken() never puts a token from an invalid answer into its error", async () => {
  const { source } = sourceAnswering(() => Response.json({ access_token: TOKEN }));
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_INVALID_RESPONSE");
  expectSafe(err);
  assertEquals(err.cause, undefined);
});

Deno.test("fetchToken() reports a 500 without an OAuth body as an HTTP error", async () => {
  const { source } = sourceAnswering(() => new Response("<h1>oops</h1>", { status: 500 }));
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_HTTP_ERROR");
  assertEquals(err.status, 500);
});

Deno.test("fetchToken() passes Retry-After of a 503 and a 429 on", async () => {
  for (const status of [503, 429]) {
    const { source } = sourceAnswering(() =>
      new Response("busy", { status, headers: { "retry-after": "12" } })
    );
    const err = await assertRejects(() => source.fetchToken(), TokenError);
    assertEquals(err.status, status);
    assertEquals(err.retryAfterMs, 12_000);
  }
});

Deno.test("fetchToken() refuses a body larger than the limit", async () => {
  const huge = JSON.stringify({ access_token: "x".repeat(5000), token_type: "Bearer" });
  const { source } = sourceAnswering(() => Response.json(JSON.parse(huge)), {
    maxResponseBytes: 1024,
  });
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_RESPONSE_TOO_LARGE");
  const streamed = sourceAnswering(
    () =>
      new Response(
        new ReadableStream({
          start(c) {
            for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(512));
            c.close();
          },
        }),
      ),
    { maxResponseBytes: 1024 },
  );
  const err2 = await assertRejects(() => streamed.source.fetchToken(), TokenError);
  assertEquals(err2.code, "TOKEN_RESPONSE_TOO_LARGE");
});

Deno.test("fetchToken() times out on a provider that never answers", async () => {
  const controller = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen() {} },
    (req) =>
      new Promise<Response>((resolve) => {
        req.signal.addEventListener("abort", () => resolve(new Response(null, { status: 499 })));
      }),
  );
  try {
    const source = createClientCredentialsSource({
      tokenUrl: `http://127.0.0.1:${server.addr.port}/token`,
      clientId: "c",
      clientSecret: CLIENT_SECRET,
      timeoutMs: 300,
    });
    const started = Date.now();
    const err = await assertRejects(() => source.fetchToken(), TokenError);
    assertEquals(err.code, "TOKEN_TIMEOUT");
    assert(Date.now() - started < 5000, "the timeout must end the request");
  } finally {
    controller.abort();
    await server.finished;
  }
});

Deno.test("fetchToken() reports a closed port as unreachable", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const source = createClientCredentialsSource({
    tokenUrl: `http://127.0.0.1:${port}/token`,
    clientId: "c",
    clientSecret: CLIENT_SECRET,
  });
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_UNREACHABLE");
  expectSafe(err);
});

Deno.test("fetchToken() stops at once when its signal aborts", async () => {
  const { source } = sourceAnswering(() => new Promise<Response>(() => {}));
  const controller = new AbortController();
  const pending = source.fetchToken(controller.signal);
  controller.abort();
  // The fake fetch ignores the signal; the wrapper must still settle as aborted.
  const err = await Promise.race([
    assertRejects(() => pending, TokenError),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("not aborted")), 2000)),
  ]);
  assertEquals(err.code, "TOKEN_ABORTED");
});

Deno.test("fetchToken() takes the lifetime from the JWT exp claim when expires_in is absent", async () => {
  const now = 1_700_000_000_000;
  const payload = btoa(JSON.stringify({ exp: now / 1000 + 90 })).replace(/=+$/, "");
  const jwt = `eyJhbGciOiJub25lIn0.${payload}.sig`;
  const { source } = sourceAnswering(
    () => Response.json({ access_token: jwt, token_type: "Bearer" }),
    {
      now: () => now,
    },
  );
  const token = await source.fetchToken();
  assertEquals(token.lifetimeSource, "jwt");
  assertEquals(token.lifetimeSeconds, 90);
  assertEquals(token.expiresAt, now + 90_000);
});

Deno.test("fetchToken() leaves the lifetime unknown for an opaque token without expires_in", async () => {
  const { source } = sourceAnswering(() =>
    Response.json({ access_token: TOKEN, token_type: "Bearer" })
  );
  const token = await source.fetchToken();
  assertEquals(token.lifetimeSource, "unknown");
  assertEquals(token.expiresAt, undefined);
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  assertEquals(parseRetryAfter("7", 0), 7000);
  assertEquals(parseRetryAfter(null, 0), undefined);
  assertEquals(parseRetryAfter("soon", 0), undefined);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assertEquals(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now), 30_000);
});

Deno.test("jwtExpiry() ignores tokens that are not JWTs", () => {
  assertEquals(jwtExpiry("opaque"), undefined);
  assertEquals(jwtExpiry("a.b.c"), undefined);
  assertEquals(jwtExpiry(`x.${btoa('{"exp":"soon"}')}.y`), undefined);
});
