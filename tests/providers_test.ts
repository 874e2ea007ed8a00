/**
 * The token source against a real OpenID provider (`oidc-provider` on loopback), configured the
 * way users configure it: `KTR_` variables through `resolveConfig()`, then
 * `tokenSourceFromConfig()`. Each client authentication method, scope, audience and resource is
 * checked in the claims of the JWT the provider issued; discovery, rotated secret and key files,
 * a private CA and a forward proxy are exercised end to end.
 *
 * @module
 */

import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { type OidcProviderFixture, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { refusedUrl, startScriptedServer } from "./fixtures/fault_server.ts";
import { startHttpProxy } from "./fixtures/http_proxy.ts";
import { resolveConfig } from "../src/config/mod.ts";
import { TokenError, tokenSourceFromConfig } from "../src/oidc/mod.ts";
import type { TokenSource } from "../src/token.ts";
import { makeTestTls } from "./fixtures/tls.ts";

/** The keys every configuration needs besides the `oidc.*` ones under test. */
const BASE_ENV = { KTR_SECRET_NAME: "my-token", KTR_SECRET_NAMESPACE: "default" };

interface Requests {
  /** `METHOD url` of every request the token source made. */
  seen: string[];
}

/** The token source a user gets from these variables; its requests are recorded. */
function sourceFrom(env: Record<string, string>, requests: Requests = { seen: [] }): TokenSource {
  const config = resolveConfig({ env: { ...BASE_ENV, ...env } });
  return tokenSourceFromConfig(config.oidc, {
    fetch: (input, init) => {
      requests.seen.push(
        `${init?.method ?? "GET"} ${input instanceof Request ? input.url : input}`,
      );
      return fetch(input, init);
    },
  });
}

function claimsOf(jwt: string): Record<string, unknown> {
  const b64 = jwt.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
  return JSON.parse(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")));
}

function headerOf(jwt: string): Record<string, unknown> {
  const b64 = jwt.split(".")[0].replaceAll("-", "+").replaceAll("_", "/");
  return JSON.parse(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")));
}

async function tempFile(text: string, suffix = ""): Promise<string> {
  const path = await Deno.makeTempFile({ suffix });
  await Deno.writeTextFile(path, text);
  return path;
}

/** Fetches a token and checks it is the one the provider issued last; returns its claims. */
async function issuedClaims(source: TokenSource, op: OidcProviderFixture) {
  const token = await source.fetchToken();
  assertEquals(token.value, op.issued.at(-1));
  assertEquals(token.lifetimeSource, "expires_in");
  return claimsOf(token.value);
}

// --- client authentication ------------------------------------------------------------------

Deno.test("client_secret_post, the default, authenticates in the form body", async () => {
  await using op = await startOidcProvider();
  const claims = await issuedClaims(
    sourceFrom({
      KTR_OIDC_TOKENURL: op.tokenUrl,
      KTR_OIDC_CLIENTID: op.clientId,
      KTR_OIDC_CLIENTSECRET: op.clientSecret,
    }),
    op,
  );
  assertEquals(claims.client_id, op.clientId);
  assertEquals(op.tokenRequests.map((r) => r.authMethod), ["client_secret_post"]);
});

Deno.test("client_secret_basic authenticates with the Authorization header", async () => {
  await using op = await startOidcProvider({
    clients: [{ client_id: "basic-client", token_endpoint_auth_method: "client_secret_basic" }],
  });
  const client = op.clients[1];
  const env = {
    KTR_OIDC_TOKENURL: op.tokenUrl,
    KTR_OIDC_CLIENTID: client.client_id,
    KTR_OIDC_CLIENTSECRET: client.client_secret!,
  };
  const claims = await issuedClaims(
    sourceFrom({ ...env, KTR_OIDC_AUTHMETHOD: "client_secret_basic" }),
    op,
  );
  assertEquals(claims.client_id, "basic-client");

  // The same client with the default method is refused: the method really is chosen by the key.
  const err = await assertRejects(() => sourceFrom(env).fetchToken(), TokenError);
  assertEquals([err.code, err.status, err.providerError], [
    "TOKEN_PROVIDER_ERROR",
    401,
    "invalid_client",
  ]);
  assertEquals(op.tokenRequests.map((r) => r.authMethod), [
    "client_secret_basic",
    "client_secret_post",
  ]);
});

type KeyKind = "RSA" | "P-256" | "Ed25519";

async function keyPair(kind: KeyKind): Promise<CryptoKeyPair> {
  const params = kind === "RSA"
    ? {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    }
    : kind === "P-256"
    ? { name: "ECDSA", namedCurve: "P-256" }
    : { name: "Ed25519" };
  return await crypto.subtle.generateKey(params, true, ["sign", "verify"]) as CryptoKeyPair;
}

async function publicJwk(pair: CryptoKeyPair, kid: string): Promise<JsonWebKey> {
  const jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, n: jwk.n, e: jwk.e, kid } as JsonWebKey;
}

async function privatePem(pair: CryptoKeyPair): Promise<string> {
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const b64 = btoa(String.fromCharCode(...der)).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

async function privateJwkText(pair: CryptoKeyPair, kid: string): Promise<string> {
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  return JSON.stringify({
    kty: jwk.kty,
    crv: jwk.crv,
    ...jwk,
    key_ops: undefined,
    ext: undefined,
    kid,
  });
}

Deno.test("private_key_jwt signs the assertion with the key file, as the provider registered it", async (t) => {
  const cases = [
    // [name, key type, registered alg, file format, configured alg, configured kid]
    ["RS256 from a PKCS#8 PEM", "RSA", "RS256", "pem", undefined, "rsa-1"],
    ["PS256 from the same kind of key", "RSA", "PS256", "pem", "PS256", "rsa-2"],
    ["ES256 from a JWK, its kid used", "P-256", "ES256", "jwk", undefined, undefined],
    ["EdDSA from an Ed25519 PEM", "Ed25519", "EdDSA", "pem", undefined, "ed-1"],
  ] as const;
  for (const [name, kind, registeredAlg, format, keyAlg, keyId] of cases) {
    await t.step(name, async () => {
      const pair = await keyPair(kind);
      const kid = keyId ?? "from-jwk";
      await using op = await startOidcProvider({
        clients: [{
          client_id: "jwt-client",
          token_endpoint_auth_method: "private_key_jwt",
          token_endpoint_auth_signing_alg: registeredAlg,
          jwks: { keys: [await publicJwk(pair, kid)] },
        }],
      });
      const keyFile = await tempFile(
        format === "pem" ? await privatePem(pair) : await privateJwkText(pair, kid),
      );
      try {
        const env: Record<string, string> = {
          KTR_OIDC_TOKENURL: op.tokenUrl,
          KTR_OIDC_CLIENTID: "jwt-client",
          KTR_OIDC_AUTHMETHOD: "private_key_jwt",
          KTR_OIDC_PRIVATEKEYFILE: keyFile,
        };
        if (keyAlg) env.KTR_OIDC_KEYALG = keyAlg;
        if (keyId) env.KTR_OIDC_KEYID = keyId;
        const claims = await issuedClaims(sourceFrom(env), op);
        assertEquals(claims.client_id, "jwt-client");
        const [request] = op.tokenRequests;
        assertEquals(request.authMethod, "client_assertion");
        const assertion = request.parameters.client_assertion as string;
        assertEquals(headerOf(assertion), { alg: registeredAlg, kid });
        assertEquals(claimsOf(assertion).aud, op.tokenUrl);
        assertEquals(request.parameters.client_secret, undefined);
      } finally {
        await Deno.remove(keyFile);
      }
    });
  }
});

Deno.test("private_key_jwt: the provider refuses a key it does not know or the wrong algorithm", async () => {
  const registered = await keyPair("RSA");
  await using op = await startOidcProvider({
    clients: [{
      client_id: "jwt-client",
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "PS256",
      jwks: { keys: [await publicJwk(registered, "k")] },
    }],
  });
  const stranger = await tempFile(await privatePem(await keyPair("RSA")));
  const known = await tempFile(await privatePem(registered));
  try {
    const env = {
      KTR_OIDC_TOKENURL: op.tokenUrl,
      KTR_OIDC_CLIENTID: "jwt-client",
      KTR_OIDC_AUTHMETHOD: "private_key_jwt",
      KTR_OIDC_KEYALG: "PS256",
    };
    for (
      const variant of [
        { ...env, KTR_OIDC_PRIVATEKEYFILE: stranger },
        { ...env, KTR_OIDC_PRIVATEKEYFILE: known, KTR_OIDC_KEYALG: "RS256" },
      ]
    ) {
      const err = await assertRejects(() => sourceFrom(variant).fetchToken(), TokenError);
      assertEquals([err.code, err.providerError], ["TOKEN_PROVIDER_ERROR", "invalid_client"]);
    }
    assertEquals(op.issued.length, 0);
    // And the right combination works, so the failures above are about key and algorithm.
    await issuedClaims(sourceFrom({ ...env, KTR_OIDC_PRIVATEKEYFILE: known }), op);
  } finally {
    await Deno.remove(stranger);
    await Deno.remove(known);
  }
});

Deno.test("private_key_jwt: oidc.assertionaudience replaces the token endpoint as aud", async () => {
  const pair = await keyPair("P-256");
  await using op = await startOidcProvider({
    clients: [{
      client_id: "jwt-client",
      token_endpoint_auth_method: "private_key_jwt",
      jwks: { keys: [await publicJwk(pair, "k")] },
    }],
  });
  const keyFile = await tempFile(await privatePem(pair));
  try {
    await issuedClaims(
      sourceFrom({
        KTR_OIDC_ISSUER: op.issuer,
        KTR_OIDC_CLIENTID: "jwt-client",
        KTR_OIDC_AUTHMETHOD: "private_key_jwt",
        KTR_OIDC_PRIVATEKEYFILE: keyFile,
        KTR_OIDC_ASSERTIONAUDIENCE: op.issuer,
      }),
      op,
    );
    assertEquals(
      claimsOf(op.tokenRequests[0].parameters.client_assertion as string).aud,
      op.issuer,
    );
  } finally {
    await Deno.remove(keyFile);
  }
});

// --- request parameters ---------------------------------------------------------------------

Deno.test("oidc.scope is requested and granted in the token's scope claim", async () => {
  await using op = await startOidcProvider({ scopes: ["secrets.write", "metrics.read"] });
  const env = {
    KTR_OIDC_TOKENURL: op.tokenUrl,
    KTR_OIDC_CLIENTID: op.clientId,
    KTR_OIDC_CLIENTSECRET: op.clientSecret,
  };
  const scoped = await issuedClaims(sourceFrom({ ...env, KTR_OIDC_SCOPE: "secrets.write" }), op);
  assertEquals(scoped.scope, "secrets.write");
  const both = await issuedClaims(
    sourceFrom({ ...env, KTR_OIDC_SCOPE: "metrics.read secrets.write" }),
    op,
  );
  assertEquals(String(both.scope).split(" ").sort(), ["metrics.read", "secrets.write"]);
  const unscoped = await issuedClaims(sourceFrom(env), op);
  assertEquals(unscoped.scope, undefined);
});

Deno.test("oidc.audience picks the audience of the token, as Auth0 does", async () => {
  await using op = await startOidcProvider({
    audienceParameter: true,
    resources: { "https://api.example.test": {} },
  });
  const env = {
    KTR_OIDC_TOKENURL: op.tokenUrl,
    KTR_OIDC_CLIENTID: op.clientId,
    KTR_OIDC_CLIENTSECRET: op.clientSecret,
  };
  const claims = await issuedClaims(
    sourceFrom({ ...env, KTR_OIDC_AUDIENCE: "https://api.example.test" }),
    op,
  );
  assertEquals(claims.aud, "https://api.example.test");
  assertEquals(op.tokenRequests[0].parameters.audience, "https://api.example.test");
  assertEquals((await issuedClaims(sourceFrom(env), op)).aud, op.audience);
});

Deno.test("oidc.resource picks the audience of the token (RFC 8707)", async () => {
  await using op = await startOidcProvider({
    resources: { "https://api.example.test/": { ttlSeconds: 7 } },
  });
  const token = await sourceFrom({
    KTR_OIDC_TOKENURL: op.tokenUrl,
    KTR_OIDC_CLIENTID: op.clientId,
    KTR_OIDC_CLIENTSECRET: op.clientSecret,
    KTR_OIDC_RESOURCE: "https://api.example.test/",
  }).fetchToken();
  const claims = claimsOf(token.value);
  assertEquals(claims.aud, "https://api.example.test/");
  assertEquals(Number(claims.exp) - Number(claims.iat), 7);
  // expires_in is 7; the whole-second exp may make the believed lifetime up to a second shorter.
  assert(token.lifetimeSeconds! > 6 && token.lifetimeSeconds! <= 7, `${token.lifetimeSeconds}`);
});

Deno.test("oidc.resource sends every indicator; the provider's refusal of several passes through", async () => {
  await using op = await startOidcProvider({
    resources: { "https://a.example.test/": {}, "https://b.example.test/": {} },
  });
  const err = await assertRejects(
    () =>
      sourceFrom({
        KTR_OIDC_TOKENURL: op.tokenUrl,
        KTR_OIDC_CLIENTID: op.clientId,
        KTR_OIDC_CLIENTSECRET: op.clientSecret,
        KTR_OIDC_RESOURCE: "https://a.example.test/ https://b.example.test/",
      }).fetchToken(),
    TokenError,
  );
  // oidc-provider issues client credentials tokens for one resource server only.
  assertEquals([err.code, err.status, err.providerError], [
    "TOKEN_PROVIDER_ERROR",
    400,
    "invalid_target",
  ]);
  assertEquals(op.tokenRequests[0].parameters.resource, [
    "https://a.example.test/",
    "https://b.example.test/",
  ]);
});

// --- discovery ------------------------------------------------------------------------------

Deno.test("oidc.issuer finds the token endpoint by discovery, fetched once", async () => {
  await using op = await startOidcProvider();
  const requests: Requests = { seen: [] };
  const source = sourceFrom({
    KTR_OIDC_ISSUER: op.issuer,
    KTR_OIDC_CLIENTID: op.clientId,
    KTR_OIDC_CLIENTSECRET: op.clientSecret,
  }, requests);
  await issuedClaims(source, op);
  await issuedClaims(source, op);
  assertEquals(requests.seen, [
    `GET ${op.discoveryUrl}`,
    `POST ${op.tokenUrl}`,
    `POST ${op.tokenUrl}`,
  ]);
});

Deno.test("oidc.issuer falls back to RFC 8414 metadata", async () => {
  await using op = await startOidcProvider();
  await using metadata = await startScriptedServer((req) => {
    const { pathname } = new URL(req.url);
    if (pathname !== "/.well-known/oauth-authorization-server/tenant") {
      return new Response("not found", { status: 404 });
    }
    return Response.json({ issuer: `${metadata.url}/tenant`, token_endpoint: op.tokenUrl });
  });
  await issuedClaims(
    sourceFrom({
      KTR_OIDC_ISSUER: `${metadata.url}/tenant`,
      KTR_OIDC_CLIENTID: op.clientId,
      KTR_OIDC_CLIENTSECRET: op.clientSecret,
    }),
    op,
  );
  assertEquals(metadata.requests.map((r) => r.path), [
    "/tenant/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server/tenant",
  ]);
});

Deno.test("oidc.issuer: the metadata is fetched again after the token endpoint fails", async () => {
  await using op = await startOidcProvider();
  const dead = await refusedUrl();
  let tokenEndpoint = `${dead}/token`;
  await using metadata = await startScriptedServer(() =>
    Response.json({ issuer: metadata.url, token_endpoint: tokenEndpoint })
  );
  const source = sourceFrom({
    KTR_OIDC_ISSUER: metadata.url,
    KTR_OIDC_CLIENTID: op.clientId,
    KTR_OIDC_CLIENTSECRET: op.clientSecret,
  });
  const err = await assertRejects(() => source.fetchToken(), TokenError);
  assertEquals(err.code, "TOKEN_UNREACHABLE");
  // The provider moved its token endpoint and published the move in its metadata.
  tokenEndpoint = op.tokenUrl;
  await issuedClaims(source, op);
  assertEquals(metadata.requests.length, 2);
});

Deno.test("oidc.issuer: a wrong issuer is a TOKEN_DISCOVERY error that says what to fix", async () => {
  await using op = await startOidcProvider();
  const env = { KTR_OIDC_CLIENTID: op.clientId, KTR_OIDC_CLIENTSECRET: op.clientSecret };
  const notThere = await assertRejects(
    () => sourceFrom({ ...env, KTR_OIDC_ISSUER: `${op.issuer}/realms/nope` }).fetchToken(),
    TokenError,
  );
  assertEquals(notThere.code, "TOKEN_DISCOVERY");
  assertStringIncludes(notThere.message, "answered HTTP 404; ");
  assertStringIncludes(notThere.message, "check oidc.issuer");

  // The same server under another name: its metadata names the issuer it really has.
  const alias = op.issuer.replace("127.0.0.1", "localhost");
  const renamed = await assertRejects(
    () => sourceFrom({ ...env, KTR_OIDC_ISSUER: alias }).fetchToken(),
    TokenError,
  );
  assertEquals(renamed.code, "TOKEN_DISCOVERY");
  assertStringIncludes(renamed.message, `names the issuer "${op.issuer}"`);
  assertEquals(op.requests, 0);
});

// --- files read at every refresh ------------------------------------------------------------

Deno.test("oidc.clientsecretfile: a rotated secret is used without a restart", async () => {
  await using op = await startOidcProvider({ clientSecret: "first-secret" });
  const secretFile = await tempFile("first-secret\n");
  try {
    const source = sourceFrom({
      KTR_OIDC_ISSUER: op.issuer,
      KTR_OIDC_CLIENTID: op.clientId,
      KTR_OIDC_CLIENTSECRETFILE: secretFile,
    });
    await issuedClaims(source, op);

    op.setClientSecret("second-secret");
    const stale = await assertRejects(() => source.fetchToken(), TokenError);
    assertEquals(stale.providerError, "invalid_client");

    // Kubernetes swaps the mounted file when the Secret changes.
    await Deno.writeTextFile(secretFile, "second-secret");
    await issuedClaims(source, op);
    assertEquals(op.issued.length, 2);

    await Deno.remove(secretFile);
    const gone = await assertRejects(() => source.fetchToken(), TokenError);
    assertEquals(gone.code, "TOKEN_CREDENTIALS");
    assertEquals(gone.message, `Cannot read client secret file "${secretFile}": no such file`);
    assertEquals(op.requests, 3, "no request without a secret");
  } finally {
    await Deno.remove(secretFile).catch(() => {});
  }
});

Deno.test("oidc.privatekeyfile: a rotated key is used without a restart", async () => {
  const [oldPair, newPair] = [await keyPair("P-256"), await keyPair("P-256")];
  await using op = await startOidcProvider({
    clients: [{
      client_id: "jwt-client",
      token_endpoint_auth_method: "private_key_jwt",
      jwks: { keys: [await publicJwk(oldPair, "old"), await publicJwk(newPair, "new")] },
    }],
  });
  const keyFile = await tempFile(await privateJwkText(oldPair, "old"));
  try {
    const source = sourceFrom({
      KTR_OIDC_TOKENURL: op.tokenUrl,
      KTR_OIDC_CLIENTID: "jwt-client",
      KTR_OIDC_AUTHMETHOD: "private_key_jwt",
      KTR_OIDC_PRIVATEKEYFILE: keyFile,
    });
    await issuedClaims(source, op);
    await Deno.writeTextFile(keyFile, await privateJwkText(newPair, "new"));
    await issuedClaims(source, op);
    assertEquals(
      op.tokenRequests.map((r) => headerOf(r.parameters.client_assertion as string).kid),
      ["old", "new"],
    );

    await Deno.writeTextFile(keyFile, "not a key\n");
    const broken = await assertRejects(() => source.fetchToken(), TokenError);
    assertEquals(broken.code, "TOKEN_CREDENTIALS");
    assertStringIncludes(broken.message, `Private key file "${keyFile}" is neither PEM`);
  } finally {
    await Deno.remove(keyFile);
  }
});

// --- trust and proxies ----------------------------------------------------------------------

Deno.test("oidc.cafile trusts a provider behind a private CA, for discovery and tokens", async () => {
  await using tls = await makeTestTls();
  await using op = await startOidcProvider({ tls });
  const caFile = await tempFile(`# the provider's CA\n${tls.caPem}`);
  try {
    const env = {
      KTR_OIDC_ISSUER: op.issuer,
      KTR_OIDC_CLIENTID: op.clientId,
      KTR_OIDC_CLIENTSECRET: op.clientSecret,
    };
    const untrusted = await assertRejects(() => sourceFrom(env).fetchToken(), TokenError);
    assertEquals(untrusted.code, "TOKEN_UNREACHABLE");
    assertStringIncludes(untrusted.message, "certificate");

    const claims = await issuedClaims(sourceFrom({ ...env, KTR_OIDC_CAFILE: caFile }), op);
    assertEquals(claims.iss, op.issuer);

    const missing = await assertRejects(
      () => sourceFrom({ ...env, KTR_OIDC_CAFILE: `${caFile}.missing` }).fetchToken(),
      TokenError,
    );
    assertEquals(missing.code, "TOKEN_TRUST");
  } finally {
    await Deno.remove(caFile);
  }
});

/** What the child process reports. */
interface ChildResult {
  ok: boolean;
  code?: string;
  message?: string;
  aud?: unknown;
}

/** Environment a child `deno` needs to find its cache, without any proxy setting of ours. */
function baseChildEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) =>
      /^(HOME|PATH|DENO_DIR|XDG_CACHE_HOME|NPM_CONFIG_\w+)$/i.test(name)
    ),
  );
}

/**
 * Fetches one token in a child process whose environment holds `processEnv` (the proxy
 * variables), configured by `ktrEnv`. The child may use the network and read files, but not
 * read the environment: Deno's fetch takes the proxy variables without that permission.
 */
async function fetchTokenInChild(
  ktrEnv: Record<string, string>,
  processEnv: Record<string, string>,
): Promise<ChildResult> {
  const script = await tempFile(
    `import { resolveConfig } from ${JSON.stringify(import.meta.resolve("../src/config/mod.ts"))};
import { tokenSourceFromConfig } from ${JSON.stringify(import.meta.resolve("../src/oidc/mod.ts"))};
const config = resolveConfig({ env: JSON.parse(Deno.args[0]) });
try {
  const token = await tokenSourceFromConfig(config.oidc).fetchToken();
  const b64 = token.value.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
  const claims = JSON.parse(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")));
  console.log(JSON.stringify({ ok: true, aud: claims.aud }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, code: err.code, message: err.message }));
}
`,
    ".ts",
  );
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--config",
        new URL(import.meta.resolve("../deno.json")).pathname,
        "--allow-net",
        "--allow-read",
        script,
        JSON.stringify({ ...BASE_ENV, ...ktrEnv }),
      ],
      clearEnv: true,
      env: { ...baseChildEnv(), ...processEnv },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout).trim();
    assert(stdout !== "", new TextDecoder().decode(output.stderr));
    return JSON.parse(stdout);
  } finally {
    await Deno.remove(script);
  }
}

Deno.test("HTTP_PROXY and NO_PROXY from the environment apply to token requests", async () => {
  await using op = await startOidcProvider();
  await using proxy = await startHttpProxy();
  const ktrEnv = {
    KTR_OIDC_ISSUER: op.issuer,
    KTR_OIDC_CLIENTID: op.clientId,
    KTR_OIDC_CLIENTSECRET: op.clientSecret,
  };
  const proxied = await fetchTokenInChild(ktrEnv, { HTTP_PROXY: proxy.url });
  assertEquals(proxied, { ok: true, aud: op.audience });
  assertEquals(proxy.requests, [
    `GET ${op.discoveryUrl} HTTP/1.1`,
    `POST ${op.tokenUrl} HTTP/1.1`,
  ]);

  const lowercase = await fetchTokenInChild(ktrEnv, { http_proxy: proxy.url });
  assertEquals(lowercase.ok, true, lowercase.message);
  assertEquals(proxy.requests.length, 4);

  // Loopback gets no exception of its own: only NO_PROXY keeps requests off the proxy.
  const bypassed = await fetchTokenInChild(ktrEnv, {
    HTTP_PROXY: proxy.url,
    NO_PROXY: "127.0.0.1",
  });
  assertEquals(bypassed.ok, true, bypassed.message);
  assertEquals(proxy.requests.length, 4);
  assertEquals(op.issued.length, 3);
});

Deno.test("HTTPS_PROXY tunnels to a provider behind a private CA", async () => {
  await using tls = await makeTestTls();
  await using op = await startOidcProvider({ tls });
  await using proxy = await startHttpProxy();
  const caFile = await tempFile(tls.caPem);
  try {
    const result = await fetchTokenInChild({
      KTR_OIDC_ISSUER: op.issuer,
      KTR_OIDC_CLIENTID: op.clientId,
      KTR_OIDC_CLIENTSECRET: op.clientSecret,
      KTR_OIDC_CAFILE: caFile,
    }, { HTTPS_PROXY: proxy.url });
    assertEquals(result, { ok: true, aud: op.audience });
    const authority = new URL(op.issuer).host;
    // One tunnel per token request: the client that trusts the CA file lives for one request.
    assertEquals(proxy.requests, [`CONNECT ${authority} HTTP/1.1`]);
  } finally {
    await Deno.remove(caFile);
  }
});
