import assert from "node:assert/strict";
import {
  checkFederationAtStart,
  type ClusterIdentity,
  createServiceAccountTokenSource,
  decodeServiceAccountToken,
  federationDryRun,
  readClusterIdentity,
} from "./federation.ts";
import { createClientCredentialsSource, TokenError } from "./source.ts";
import { KubeApiError, type KubeClient } from "../kube/client.ts";

const API = "https://kubernetes.default.svc.cluster.local";
const NOW = Date.UTC(2026, 0, 1);

function jwt(claims: Record<string, unknown>): string {
  const payload = btoa(JSON.stringify(claims)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
  return `eyJhbGciOiJFUzI1NiJ9.${payload}.c2lnbmF0dXJl`;
}

const IDENTITY: ClusterIdentity = {
  tokenPath: "/sa/token",
  issuer: API,
  apiAudiences: [API],
  serviceAccount: { namespace: "tools", name: "refresher" },
};

const PROVIDER_TOKEN = jwt({
  iss: API,
  aud: ["api://AzureADTokenExchange"],
  sub: "system:serviceaccount:tools:refresher",
  exp: NOW / 1000 + 3600,
});

function fileSource(
  files: Record<string, string>,
  identity: ClusterIdentity | undefined = IDENTITY,
) {
  return createServiceAccountTokenSource({
    federation: { tokenFile: "/tokens/provider" },
    identity,
    readTextFile: (path) =>
      path in files ? Promise.resolve(files[path]) : Promise.reject(new Deno.errors.NotFound(path)),
    now: () => NOW,
  });
}

async function credentialsError(work: Promise<unknown>): Promise<TokenError> {
  const error = await work.then(() => undefined, (e) => e);
  assert.ok(error instanceof TokenError, String(error));
  assert.equal(error.code, "TOKEN_CREDENTIALS");
  return error;
}

Deno.test("decodeServiceAccountToken() reads iss, sub, aud and exp, and never quotes a bad token", () => {
  const claims = decodeServiceAccountToken(PROVIDER_TOKEN);
  assert.deepEqual(claims, {
    issuer: API,
    subject: "system:serviceaccount:tools:refresher",
    audiences: ["api://AzureADTokenExchange"],
    expiresAt: NOW + 3_600_000,
  });
  for (const bad of ["opaque-token-value", "a.%%%.c", `a.${btoa("[1]")}.c`]) {
    assert.throws(
      () => decodeServiceAccountToken(bad),
      (e: unknown) => e instanceof TokenError && !e.message.includes(bad),
    );
  }
});

Deno.test("readClusterIdentity() takes audiences, issuer and service account from the mounted token", async () => {
  const identity = await readClusterIdentity("/sa/", {
    readTextFile: () =>
      Promise.resolve(
        `${jwt({ iss: API, aud: ["k3s"], sub: "system:serviceaccount:tools:refresher" })}\n`,
      ),
  });
  assert.deepEqual(identity, {
    tokenPath: "/sa/token",
    issuer: API,
    apiAudiences: [API, "k3s"],
    serviceAccount: { namespace: "tools", name: "refresher" },
  });
  const none = await readClusterIdentity("/sa", {
    readTextFile: () => Promise.reject(new Deno.errors.NotFound("x")),
  });
  assert.equal(none, undefined);
  await credentialsError(
    readClusterIdentity("/sa", { readTextFile: () => Promise.resolve("not-a-jwt") }),
  );
});

Deno.test("checkFederationAtStart() refuses the API server's audiences and TokenRequest outside a pod", () => {
  for (const audience of [API, "k3s"]) {
    const error = checkFederationAtStart({ audience }, { ...IDENTITY, apiAudiences: [API, "k3s"] });
    assert.equal(error?.code, "CONFIG_INVALID");
    assert.equal(error?.key, "oidc.federation.audience");
    assert.match(error!.message, /audience of the Kubernetes API server itself/);
  }
  const outside = checkFederationAtStart({ audience: "api://AzureADTokenExchange" }, undefined);
  assert.equal(outside?.code, "CONFIG_CONFLICT");
  assert.match(outside!.message, /not running in a pod/);
  assert.equal(
    checkFederationAtStart({ audience: "api://AzureADTokenExchange" }, IDENTITY),
    undefined,
  );
  assert.equal(checkFederationAtStart({ tokenFile: "/t" }, undefined), undefined);
});

Deno.test("a token file is read again before every request", async () => {
  const files = { "/tokens/provider": `${PROVIDER_TOKEN}\n` };
  const source = fileSource(files);
  assert.equal(await source.token(), PROVIDER_TOKEN);
  const rotated = jwt({ iss: API, aud: "api://AzureADTokenExchange", exp: NOW / 1000 + 60 });
  files["/tokens/provider"] = rotated;
  assert.equal(await source.token(), rotated);
  assert.deepEqual(source.lastClaims?.audiences, ["api://AzureADTokenExchange"]);
});

Deno.test("a token file with the API server's audience, or its issuer, is never handed out", async () => {
  for (const aud of [API, [API, "api://AzureADTokenExchange"]]) {
    const token = jwt({ iss: API, aud, exp: NOW / 1000 + 60 });
    const error = await credentialsError(fileSource({ "/tokens/provider": token }).token());
    assert.match(error.message, /has the audience ".+", an audience of the Kubernetes API server/);
    assert.ok(!error.message.includes(token));
  }
  // Outside a pod the mounted token is missing; the issuer, the API server's default audience,
  // still counts.
  const own = jwt({
    iss: "https://issuer.example",
    aud: "https://issuer.example",
    exp: NOW / 1000 + 60,
  });
  await credentialsError(fileSource({ "/tokens/provider": own }, undefined).token());
});

Deno.test("a token file that is missing, empty, expired or without audience fails the refresh", async () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{}, /Cannot read Service-account token file "\/tokens\/provider"/],
    [{ "/tokens/provider": "\n" }, /is empty/],
    [
      { "/tokens/provider": jwt({ aud: "x", exp: NOW / 1000 - 1 }) },
      /expired at 2025-12-31T23:59:59.000Z: the kubelet did not rotate it/,
    ],
    [{ "/tokens/provider": jwt({ exp: NOW / 1000 + 60 }) }, /has no audience/],
  ];
  for (const [files, expected] of cases) {
    const error = await credentialsError(fileSource(files).token());
    assert.match(error.message, expected);
  }
});

/** A KubeClient stand-in with only what the TokenRequest source and the dry run call. */
function fakeClient(
  mint: (spec: { audiences: readonly string[]; expirationSeconds: number }) => Promise<string>,
  allowed = true,
) {
  const calls: unknown[] = [];
  const client = {
    requestServiceAccountToken(
      namespace: string,
      name: string,
      spec: { audiences: readonly string[]; expirationSeconds: number },
    ) {
      calls.push({ namespace, name, ...spec });
      return mint(spec).then((token) => ({ token }));
    },
    reviewAccess(attributes: unknown) {
      calls.push(attributes);
      return Promise.resolve({ allowed });
    },
  } as unknown as KubeClient;
  return { client, calls };
}

Deno.test("TokenRequest mints a token per request for the audience and lifetime configured", async () => {
  const { client, calls } = fakeClient((spec) =>
    Promise.resolve(jwt({ iss: API, aud: spec.audiences, exp: NOW / 1000 + 600 }))
  );
  const source = createServiceAccountTokenSource({
    federation: { audience: "api://AzureADTokenExchange", expiration: 900 },
    identity: IDENTITY,
    client,
    now: () => NOW,
  });
  await source.token();
  await source.token();
  assert.deepEqual(calls, [
    {
      namespace: "tools",
      name: "refresher",
      audiences: ["api://AzureADTokenExchange"],
      expirationSeconds: 900,
    },
    {
      namespace: "tools",
      name: "refresher",
      audiences: ["api://AzureADTokenExchange"],
      expirationSeconds: 900,
    },
  ]);
  assert.match(source.description, /TokenRequest for service account "tools\/refresher", 900 s/);
});

Deno.test("a refused TokenRequest names the Role rule to add", async () => {
  const { client } = fakeClient(() =>
    Promise.reject(
      new KubeApiError("Kubernetes API answered create ... with HTTP 403 Forbidden: no", {
        code: "KUBE_HTTP",
        status: 403,
      }),
    )
  );
  const source = createServiceAccountTokenSource({
    federation: { audience: "api://AzureADTokenExchange" },
    identity: IDENTITY,
    client,
  });
  const error = await credentialsError(source.token());
  assert.match(error.message, /TokenRequest for service account "tools\/refresher" failed: /);
  assert.match(
    error.message,
    /grant create on serviceaccounts\/token with resourceNames \["refresher"\]/,
  );
});

Deno.test("the dry run shows the token's claims and reviews the TokenRequest permission", async () => {
  const { client, calls } = fakeClient((spec) =>
    Promise.resolve(jwt({
      iss: API,
      aud: spec.audiences,
      sub: "system:serviceaccount:tools:refresher",
      exp: NOW / 1000 + 600,
    })), false);
  const source = createServiceAccountTokenSource({
    federation: { audience: "api://AzureADTokenExchange" },
    identity: IDENTITY,
    client,
    now: () => NOW,
  });
  await source.token();
  const report = await federationDryRun(source, { client, identity: IDENTITY });
  assert.deepEqual(report.lines.slice(1), [
    `Service-account token: audience "api://AzureADTokenExchange", issuer "${API}", subject "system:serviceaccount:tools:refresher", expires 2026-01-01T00:10:00.000Z (token not shown)`,
    'Permission create serviceaccounts/token "refresher" in namespace "tools": MISSING',
  ]);
  assert.equal(report.problems.length, 1);
  assert.deepEqual(calls.at(-1), {
    namespace: "tools",
    verb: "create",
    resource: "serviceaccounts",
    subresource: "token",
    name: "refresher",
  });
});

// --- on the wire ---------------------------------------------------------------------------

function recordingFetch() {
  const bodies: URLSearchParams[] = [];
  const headers: Headers[] = [];
  const fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const request = new Request(input, init);
    bodies.push(new URLSearchParams(await request.text()));
    headers.push(request.headers);
    return Response.json({ access_token: "access", token_type: "Bearer", expires_in: 60 });
  };
  return { fetch: fetch as typeof globalThis.fetch, bodies, headers };
}

const STATIC_TOKEN = {
  description: "test",
  token: () => Promise.resolve(PROVIDER_TOKEN),
};

Deno.test("workload_identity sends the token as client_assertion, client_id only when set", async () => {
  for (const clientId of [undefined, "app"]) {
    const { fetch, bodies, headers } = recordingFetch();
    const source = createClientCredentialsSource({
      tokenUrl: "https://login.example.test/token",
      clientId,
      authMethod: "workload_identity",
      serviceAccountToken: STATIC_TOKEN,
      scope: "api://app/.default",
      fetch,
    });
    await source.fetchToken();
    assert.deepEqual(Object.fromEntries(bodies[0]), {
      grant_type: "client_credentials",
      scope: "api://app/.default",
      ...(clientId === undefined ? {} : { client_id: clientId }),
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
      client_assertion: PROVIDER_TOKEN,
    });
    assert.equal(headers[0].get("authorization"), null);
  }
});

Deno.test("jwt_bearer sends the token as assertion; a public client sends only its id", async () => {
  const { fetch, bodies } = recordingFetch();
  const source = createClientCredentialsSource({
    tokenUrl: "https://hydra.example.test/oauth2/token",
    clientId: "refresher",
    authMethod: "none",
    grant: "jwt_bearer",
    serviceAccountToken: STATIC_TOKEN,
    fetch,
  });
  const token = await source.fetchToken();
  assert.equal(token.value, "access");
  assert.deepEqual(Object.fromEntries(bodies[0]), {
    grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
    assertion: PROVIDER_TOKEN,
    client_id: "refresher",
  });
});

Deno.test("token_exchange sends subject_token, its type, audience and the extra parameters", async () => {
  const { fetch, bodies, headers } = recordingFetch();
  const source = createClientCredentialsSource({
    tokenUrl: "https://sts.example.test/v1/token",
    clientId: "exchanger",
    clientSecret: "exchanger-secret",
    authMethod: "client_secret_basic",
    grant: "token_exchange",
    serviceAccountToken: STATIC_TOKEN,
    audience: "//iam.example.test/pools/p/providers/k8s",
    subjectTokenType: "urn:ietf:params:oauth:token-type:id_token",
    extraParameters: ["connector_id=kubernetes", "requested_token_type=urn:x"],
    fetch,
  });
  await source.fetchToken();
  assert.deepEqual(Object.fromEntries(bodies[0]), {
    grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
    audience: "//iam.example.test/pools/p/providers/k8s",
    connector_id: "kubernetes",
    requested_token_type: "urn:x",
    subject_token: PROVIDER_TOKEN,
    subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
  });
  assert.match(headers[0].get("authorization") ?? "", /^Basic /);
});

Deno.test("a service-account token that cannot be had fails the refresh before anything is sent", async () => {
  const { fetch, bodies } = recordingFetch();
  const source = createClientCredentialsSource({
    tokenUrl: "https://login.example.test/token",
    authMethod: "workload_identity",
    serviceAccountToken: fileSource({}),
    fetch,
  });
  await credentialsError(source.fetchToken());
  assert.equal(bodies.length, 0);
});
