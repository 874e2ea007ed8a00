import {
  assert,
  assertEquals,
  assertNotIncludes,
  assertRejects,
  assertStringIncludes,
} from "../../tests/assert.ts";
import {
  createClientCredentialsSource,
  jwtExpiry,
  parseRetryAfter,
  TokenError,
  tokenSourceFromConfig,
} from "./source.ts";

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

Deno.test("fetchToken() refuses an access_token outside 1*VSCHAR (CR/LF, controls, non-ASCII) without quoting it", async () => {
  for (const bad of [`${TOKEN}\r\nX-Injected: 1`, `${TOKEN}\n`, `${TOKEN}\t`, `${TOKEN}\u00e9`]) {
    const { source } = sourceAnswering(() =>
      Response.json({ access_token: bad, token_type: "Bearer", expires_in: 300 })
    );
    const err = await assertRejects(() => source.fetchToken(), TokenError);
    assertEquals(err.code, "TOKEN_INVALID_RESPONSE");
    assertEquals(err.status, 200);
    assertStringIncludes(err.message, "1*VSCHAR");
    assertStringIncludes(err.message, "RFC 6749 Appendix A.12");
    assertStringIncludes(err.message, `character ${TOKEN.length + 1}`);
    expectSafe(err);
  }
  // Spaces and every other printable ASCII character are VSCHAR.
  const edge = ' !~abc"\\';
  const { source } = sourceAnswering(() =>
    Response.json({ access_token: edge, token_type: "Bearer", expires_in: 300 })
  );
  assertEquals((await source.fetchToken()).value, edge);
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
  // Answered only when the test ends (the served request's signal is not used: Deno prints a
  // notice about its legacy abort behaviour when it is touched).
  const never = Promise.withResolvers<Response>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen() {} },
    () => never.promise,
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
    never.resolve(new Response(null, { status: 499 }));
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

Deno.test("fetchToken() with a signal aborted before the request leaves no unhandled rejection", async () => {
  // Shutdown can come while the secret file is read, before the request starts: the request
  // then fails at once, and its rejection must be handled, or Deno ends the process with it.
  const { source } = sourceAnswering(() =>
    Promise.reject(new DOMException("aborted", "AbortError"))
  );
  const controller = new AbortController();
  controller.abort();
  const err = await assertRejects(() => source.fetchToken(controller.signal), TokenError);
  assertEquals(err.code, "TOKEN_ABORTED");
  // Give the abandoned request time to settle, so an unhandled rejection fails this test.
  await new Promise((resolve) => setTimeout(resolve, 10));
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

// --- client authentication, request parameters, discovery --------------------------------

interface SeenRequest {
  url: string;
  method: string;
  headers: Headers;
  body: URLSearchParams;
  client?: unknown;
}

/** A fetch that answers with `handler` and records every request. */
function fakeFetch(handler: (req: SeenRequest, n: number) => Response | Promise<Response>) {
  const seen: SeenRequest[] = [];
  const fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const req = new Request(input, init);
    const record: SeenRequest = {
      url: req.url,
      method: req.method,
      headers: req.headers,
      body: new URLSearchParams(req.method === "POST" ? await req.text() : ""),
      client: (init as { client?: unknown } | undefined)?.client,
    };
    seen.push(record);
    return await handler(record, seen.length);
  };
  return { fetch, seen };
}

const TOKEN_RESPONSE = () => Response.json({ access_token: TOKEN, token_type: "Bearer" });

function decodeJwtPart(part: string): Record<string, unknown> {
  const b64 = part.replaceAll("-", "+").replaceAll("_", "/");
  return JSON.parse(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")));
}

Deno.test("client_secret_basic sends the secret in an Authorization header, not the body", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const source = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/token",
    clientId: "my client",
    clientSecret: CLIENT_SECRET,
    authMethod: "client_secret_basic",
    fetch,
  });
  await source.fetchToken();
  assertEquals(seen[0].body.get("client_secret"), null);
  assertEquals(seen[0].body.get("client_id"), null);
  assertEquals(seen[0].body.get("grant_type"), "client_credentials");
  const [scheme, credentials] = seen[0].headers.get("authorization")!.split(" ");
  assertEquals(scheme, "Basic");
  // RFC 6749, 2.3.1: both parts are form-encoded before base64 ("my client" is "my+client").
  const [id, secret] = atob(credentials).split(":").map((part) =>
    decodeURIComponent(part.replaceAll("+", " "))
  );
  assertEquals([id, secret], ["my client", CLIENT_SECRET]);
  assertStringIncludes(atob(credentials), "my+client:");
});

Deno.test("fetchToken() reads a function-valued secret again for every request", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const secrets = ["first-secret", "second-secret"];
  let calls = 0;
  const source = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/token",
    clientId: "c",
    clientSecret: () => Promise.resolve(secrets[calls++]),
    fetch,
  });
  await source.fetchToken();
  await source.fetchToken();
  assertEquals(seen.map((r) => r.body.get("client_secret")), secrets);
});

Deno.test("fetchToken() sends scope, audience and every resource indicator", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const source = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/token",
    clientId: "c",
    clientSecret: CLIENT_SECRET,
    scope: "api.read api.write",
    audience: "https://api.example.test",
    resource: ["https://a.example.test/", "urn:example:b"],
    fetch,
  });
  await source.fetchToken();
  const body = seen[0].body;
  assertEquals(body.get("scope"), "api.read api.write");
  assertEquals(body.get("audience"), "https://api.example.test");
  assertEquals(body.getAll("resource"), ["https://a.example.test/", "urn:example:b"]);
});

Deno.test("fetchToken() sends no scope, audience or resource unless configured", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const source = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/token",
    clientId: "c",
    clientSecret: CLIENT_SECRET,
    fetch,
  });
  await source.fetchToken();
  assertEquals([...seen[0].body.keys()].sort(), ["client_id", "client_secret", "grant_type"]);
});

async function ecPrivateKey(kid?: string) {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return { pair, key: { key: pair.privateKey, alg: "ES256" as const, kid } };
}

Deno.test("private_key_jwt signs an assertion for the token endpoint and sends no secret", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const { pair, key } = await ecPrivateKey("key-1");
  const source = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/oauth/token",
    clientId: "my-client",
    authMethod: "private_key_jwt",
    privateKey: key,
    fetch,
  });
  await source.fetchToken();
  const body = seen[0].body;
  assertEquals(body.get("client_secret"), null);
  assertEquals(seen[0].headers.get("authorization"), null);
  assertEquals(body.get("client_id"), "my-client");
  assertEquals(
    body.get("client_assertion_type"),
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
  );
  const [header, payload, signature] = body.get("client_assertion")!.split(".");
  assertEquals(decodeJwtPart(header), { alg: "ES256", kid: "key-1" });
  const claims = decodeJwtPart(payload);
  assertEquals(claims.aud, "https://auth.example.test/oauth/token");
  assertEquals([claims.iss, claims.sub], ["my-client", "my-client"]);
  assert(typeof claims.jti === "string" && typeof claims.exp === "number");
  const valid = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    pair.publicKey,
    Uint8Array.from(
      atob(signature.replaceAll("-", "+").replaceAll("_", "/")),
      (c) => c.charCodeAt(0),
    ),
    new TextEncoder().encode(`${header}.${payload}`),
  );
  assert(valid, "the assertion is signed with the key");
});

Deno.test("private_key_jwt uses the configured assertion audience and alg name", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  let reads = 0;
  const source = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/oauth/token",
    clientId: "c",
    authMethod: "private_key_jwt",
    privateKey: () => {
      reads++;
      return { key: (pair as CryptoKeyPair).privateKey, alg: "EdDSA" };
    },
    assertionAudience: "https://auth.example.test/",
    fetch,
  });
  await source.fetchToken();
  await source.fetchToken();
  assertEquals(reads, 2);
  const [header, payload] = seen[1].body.get("client_assertion")!.split(".");
  assertEquals(decodeJwtPart(header), { alg: "EdDSA" });
  assertEquals(decodeJwtPart(payload).aud, "https://auth.example.test/");
});

Deno.test("createClientCredentialsSource() refuses options that cannot work", async () => {
  const { key } = await ecPrivateKey();
  const cases = [
    { clientId: "c", clientSecret: "s" },
    { clientId: "c", clientSecret: "s", tokenUrl: "https://a.test/t", issuer: "https://a.test" },
    { clientId: "c", tokenUrl: "https://a.test/t" },
    { clientId: "c", tokenUrl: "https://a.test/t", authMethod: "private_key_jwt" as const },
    { clientId: "c", tokenUrl: "https://a.test/t", privateKey: key },
  ];
  for (const options of cases) {
    let thrown: unknown;
    try {
      createClientCredentialsSource(options);
    } catch (err) {
      thrown = err;
    }
    assert(thrown instanceof TypeError, JSON.stringify(Object.keys(options)));
  }
});

Deno.test("fetchToken() sends nothing when the credentials cannot be read", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const missing = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/token",
    clientId: "c",
    clientSecret: () =>
      Promise.reject(
        new TokenError('Client secret file "/s" is empty', { code: "TOKEN_CREDENTIALS" }),
      ),
    fetch,
  });
  const passed = await assertRejects(() => missing.fetchToken(), TokenError);
  assertEquals([passed.code, passed.message], [
    "TOKEN_CREDENTIALS",
    'Client secret file "/s" is empty',
  ]);

  const foreign = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/token",
    clientId: "c",
    clientSecret: () => Promise.reject(new Error(`could not parse ${CLIENT_SECRET}`)),
    fetch,
  });
  const wrapped = await assertRejects(() => foreign.fetchToken(), TokenError);
  assertEquals(wrapped.code, "TOKEN_CREDENTIALS");
  assertNotIncludes(wrapped.message, CLIENT_SECRET);
  assertEquals(seen.length, 0);
});

Deno.test("fetchToken() uses a fresh HTTP client for every token, and closes it", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const clients: Deno.HttpClient[] = [];
  let closed = 0;
  const source = createClientCredentialsSource({
    tokenUrl: "https://auth.example.test/token",
    clientId: "c",
    clientSecret: CLIENT_SECRET,
    httpClient: () => {
      const client = Deno.createHttpClient({});
      const close = client.close.bind(client);
      client.close = () => {
        closed++;
        close();
      };
      clients.push(client);
      return Promise.resolve(client);
    },
    fetch,
  });
  await source.fetchToken();
  await source.fetchToken();
  assertEquals(clients.length, 2);
  assertEquals(seen.map((r) => r.client), clients);
  assertEquals(closed, 2);
});

const ISSUER = "https://auth.example.test/tenant";

/** A source that finds its token endpoint through the issuer's metadata, over `fetch`. */
function issuerSource(fetch: typeof globalThis.fetch) {
  return createClientCredentialsSource({
    issuer: ISSUER,
    clientId: "c",
    clientSecret: CLIENT_SECRET,
    fetch,
  });
}

function metadata(overrides: Record<string, unknown> = {}) {
  return Response.json({
    issuer: ISSUER,
    token_endpoint: "https://auth.example.test/tenant/oauth/token",
    ...overrides,
  });
}

Deno.test("fetchToken() finds the token endpoint by OpenID Connect discovery, once", async () => {
  const { fetch, seen } = fakeFetch((req) => req.method === "GET" ? metadata() : TOKEN_RESPONSE());
  const source = issuerSource(fetch);
  assertEquals(seen.length, 0, "nothing is fetched before the first token is wanted");
  await source.fetchToken();
  await source.fetchToken();
  assertEquals(seen.map((r) => `${r.method} ${r.url}`), [
    "GET https://auth.example.test/tenant/.well-known/openid-configuration",
    "POST https://auth.example.test/tenant/oauth/token",
    "POST https://auth.example.test/tenant/oauth/token",
  ]);
});

Deno.test("fetchToken() falls back to RFC 8414 metadata when there is no OpenID configuration", async () => {
  const { fetch, seen } = fakeFetch((req) => {
    if (req.method === "POST") return TOKEN_RESPONSE();
    return req.url.includes("oauth-authorization-server")
      ? metadata()
      : new Response("not found", { status: 404 });
  });
  const source = issuerSource(fetch);
  await source.fetchToken();
  assertEquals(seen.map((r) => r.url), [
    "https://auth.example.test/tenant/.well-known/openid-configuration",
    "https://auth.example.test/.well-known/oauth-authorization-server/tenant",
    "https://auth.example.test/tenant/oauth/token",
  ]);
});

Deno.test("private_key_jwt with discovery addresses the assertion to the discovered token endpoint", async () => {
  const { fetch, seen } = fakeFetch((req) => req.method === "GET" ? metadata() : TOKEN_RESPONSE());
  const { key } = await ecPrivateKey();
  const source = createClientCredentialsSource({
    issuer: ISSUER,
    clientId: "c",
    authMethod: "private_key_jwt",
    privateKey: key,
    fetch,
  });
  await source.fetchToken();
  const payload = seen[1].body.get("client_assertion")!.split(".")[1];
  assertEquals(decodeJwtPart(payload).aud, "https://auth.example.test/tenant/oauth/token");
});

Deno.test("fetchToken() reports unusable metadata as TOKEN_DISCOVERY and sends no secret", async () => {
  const cases: [() => Response, RegExp][] = [
    [
      () => new Response("nope", { status: 404 }),
      /^No metadata found for issuer "https:\/\/auth\.example\.test\/tenant": https:\/\/auth\.example\.test\/tenant\/\.well-known\/openid-configuration answered HTTP 404; https:\/\/auth\.example\.test\/\.well-known\/oauth-authorization-server\/tenant answered HTTP 404; check oidc\.issuer, or set oidc\.tokenurl instead$/,
    ],
    [() => new Response("<html>", { status: 200 }), /gave no usable metadata/],
    [
      () => metadata({ issuer: "https://auth.example.test/other" }),
      /names the issuer "https:\/\/auth\.example\.test\/other", not "https:\/\/auth\.example\.test\/tenant": set oidc\.issuer to exactly/,
    ],
    [() => metadata({ token_endpoint: undefined }), /names no token_endpoint$/],
    [
      () => metadata({ token_endpoint: "http://auth.example.test/token" }),
      /neither https: nor on a loopback host$/,
    ],
  ];
  for (const [answer, expected] of cases) {
    const { fetch, seen } = fakeFetch(answer);
    const source = issuerSource(fetch);
    const err = await assertRejects(() => source.fetchToken(), TokenError);
    assertEquals(err.code, "TOKEN_DISCOVERY");
    assert(expected.test(err.message), err.message);
    assert(seen.every((r) => r.method === "GET"), "no token request without metadata");
    expectSafe(err);
  }
});

Deno.test("fetchToken() reports an unreachable issuer as TOKEN_UNREACHABLE and tries again next time", async () => {
  let up = false;
  const { fetch, seen } = fakeFetch((req) => {
    if (!up) throw new TypeError("fetch failed", { cause: new Error("connection refused") });
    return req.method === "GET" ? metadata() : TOKEN_RESPONSE();
  });
  const source = issuerSource(fetch);
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_UNREACHABLE");
  assertStringIncludes(
    err.message,
    "/.well-known/openid-configuration could not be reached: connection refused",
  );
  assertEquals(seen.length, 1, "no RFC 8414 attempt against a host that cannot be reached");
  up = true;
  assertEquals((await source.fetchToken()).value, TOKEN);
});

Deno.test("fetchToken() fetches the metadata again after the token endpoint fails with 404, 5xx or no answer", async () => {
  const failures: (() => Response)[] = [
    () => new Response("gone", { status: 404 }),
    () => new Response("oops", { status: 502 }),
    () => {
      throw new TypeError("fetch failed");
    },
  ];
  for (const failure of failures) {
    let posts = 0;
    const { fetch, seen } = fakeFetch((req) => {
      if (req.method === "GET") return metadata();
      return ++posts === 1 ? failure() : TOKEN_RESPONSE();
    });
    const source = issuerSource(fetch);
    await assertRejects(() => source.fetchToken(), TokenError);
    await source.fetchToken();
    assertEquals(seen.map((r) => r.method), ["GET", "POST", "GET", "POST"]);
  }
});

Deno.test("fetchToken() keeps the metadata after the provider refuses the client", async () => {
  let posts = 0;
  const { fetch, seen } = fakeFetch((req) => {
    if (req.method === "GET") return metadata();
    return ++posts === 1
      ? Response.json({ error: "invalid_client" }, { status: 401 })
      : TOKEN_RESPONSE();
  });
  const source = issuerSource(fetch);
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_PROVIDER_ERROR");
  await source.fetchToken();
  assertEquals(seen.map((r) => r.method), ["GET", "POST", "POST"]);
});

Deno.test("fetchToken() times out on a discovery endpoint that never answers", async () => {
  const { fetch } = fakeFetch(() => new Promise<Response>(() => {}));
  const source = createClientCredentialsSource({
    issuer: ISSUER,
    clientId: "c",
    clientSecret: CLIENT_SECRET,
    timeoutMs: 100,
    fetch,
  });
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_TIMEOUT");
  assertStringIncludes(
    err.message,
    'Discovery endpoint of issuer "https://auth.example.test/tenant"',
  );
});

Deno.test("tokenSourceFromConfig() reads the secret file before every request", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const files: Record<string, string> = { "/run/secret": "first\n" };
  const source = tokenSourceFromConfig({
    tokenUrl: "https://auth.example.test/token",
    clientId: "c",
    authMethod: "client_secret_basic",
    grant: "client_credentials",
    clientSecretFile: "/run/secret",
    scope: "api.read",
  }, { fetch, readTextFile: (path) => Promise.resolve(files[path]) });
  await source.fetchToken();
  files["/run/secret"] = "second\n";
  await source.fetchToken();
  assertEquals(seen.map((r) => atob(r.headers.get("authorization")!.slice(6))), [
    "c:first",
    "c:second",
  ]);
  assertEquals(seen[0].body.get("scope"), "api.read");
});

Deno.test("tokenSourceFromConfig() reports unreadable files by code, and sends nothing", async () => {
  const { fetch, seen } = fakeFetch(TOKEN_RESPONSE);
  const readTextFile = () => Promise.reject(new Deno.errors.NotFound("x"));
  const cases = [
    [
      { clientSecretFile: "/run/secret" },
      "TOKEN_CREDENTIALS",
      /client secret file "\/run\/secret"/,
    ],
    [
      { authMethod: "private_key_jwt" as const, privateKeyFile: "/run/key" },
      "TOKEN_CREDENTIALS",
      /private key file "\/run\/key"/,
    ],
    [
      { clientSecret: CLIENT_SECRET, caFile: "/etc/ca.pem" },
      "TOKEN_TRUST",
      /CA file "\/etc\/ca.pem"/,
    ],
  ] as const;
  for (const [oidc, code, expected] of cases) {
    const source = tokenSourceFromConfig({
      tokenUrl: "https://auth.example.test/token",
      clientId: "c",
      authMethod: "client_secret_post",
      grant: "client_credentials",
      ...oidc,
    }, { fetch, readTextFile });
    const err = await assertRejects(() => source.fetchToken(), TokenError);
    assertEquals(err.code, code);
    assert(expected.test(err.message), err.message);
  }
  assertEquals(seen.length, 0);
});

Deno.test("fetchToken() reports a discovery endpoint that fails with 5xx as an HTTP error", async () => {
  const { fetch } = fakeFetch((req) =>
    req.url.includes("openid-configuration")
      ? new Response("busy", { status: 503, headers: { "retry-after": "5" } })
      : new Response("not found", { status: 404 })
  );
  const source = issuerSource(fetch);
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals([err.code, err.status, err.retryAfterMs], ["TOKEN_HTTP_ERROR", 503, 5000]);
  assertStringIncludes(err.message, "openid-configuration answered HTTP 503");
});

Deno.test("fetchToken() believes a JWT exp slightly earlier than expires_in, not a far one", async () => {
  const now = 1_700_000_000_000;
  const jwt = (exp: number) =>
    `eyJhbGciOiJub25lIn0.${btoa(JSON.stringify({ exp })).replace(/=+$/, "")}.sig`;
  // exp rounded down by the provider: 0.8 s before now + expires_in.
  const rounded = sourceAnswering(
    () =>
      Response.json({ access_token: jwt(now / 1000 + 59.2), token_type: "Bearer", expires_in: 60 }),
    { now: () => now },
  );
  const token = await rounded.source.fetchToken();
  assertEquals(token.expiresAt, now + 59_200);
  assertEquals(token.lifetimeSeconds, 59.2);
  // A provider clock ten minutes behind: the relative expires_in is the safer guide.
  const skewed = sourceAnswering(
    () =>
      Response.json({ access_token: jwt(now / 1000 - 540), token_type: "Bearer", expires_in: 60 }),
    { now: () => now },
  );
  assertEquals((await skewed.source.fetchToken()).expiresAt, now + 60_000);
});
