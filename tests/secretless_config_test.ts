/**
 * The bad-input matrix of the secretless keys, through the real entrypoint with the compiled
 * binary's permission set: every new key and every refused combination exits 2 before anything
 * is sent, with one message that names the key, where its value came from and what to do.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";

const CLIENT_SECRET = "matrix-client-secret-value";

/** A valid secretless configuration: Entra-like, with a projected token file. */
const BASE: Record<string, string> = {
  KTR_SECRET_NAME: "api-token",
  KTR_SECRET_NAMESPACE: "tools",
  KTR_OIDC_TOKENURL: "https://login.example.com/tenant/oauth2/v2.0/token",
  KTR_OIDC_CLIENTID: "app",
  KTR_OIDC_AUTHMETHOD: "workload_identity",
  KTR_OIDC_FEDERATION_TOKENFILE: "/var/run/secrets/tokens/provider",
};

interface Case {
  /** What is wrong. */
  name: string;
  /** Changes to {@link BASE}; `undefined` removes a variable. */
  env: Record<string, string | undefined>;
  /** Command-line arguments. */
  args?: string[];
  /** Each must match the error output: key, source, fix. */
  expect: RegExp[];
}

const CASES: Case[] = [
  {
    name: "an unknown grant",
    env: { KTR_OIDC_GRANT: "password" },
    expect: [
      /oidc\.grant/,
      /environment variable KTR_OIDC_GRANT/,
      /"jwt_bearer" or "token_exchange"/,
    ],
  },
  {
    name: "workload_identity with jwt_bearer",
    env: { KTR_OIDC_GRANT: "jwt_bearer" },
    expect: [
      /oidc\.authmethod "workload_identity" from environment variable KTR_OIDC_AUTHMETHOD/,
      /oidc\.grant "jwt_bearer"/,
      /set oidc\.authmethod to none/,
    ],
  },
  {
    name: "workload_identity with token_exchange",
    env: { KTR_OIDC_GRANT: "token_exchange" },
    expect: [/does not go with oidc\.grant "token_exchange"/, /set oidc\.authmethod to none/],
  },
  {
    name: "none with client_credentials",
    env: { KTR_OIDC_AUTHMETHOD: "none" },
    expect: [/oidc\.authmethod "none"/, /only for clients that authenticate/, /workload_identity/],
  },
  {
    name: "a client secret with workload_identity",
    env: { KTR_OIDC_CLIENTSECRET: CLIENT_SECRET },
    expect: [
      /oidc\.clientsecret from environment variable KTR_OIDC_CLIENTSECRET/,
      /authenticates with the service-account token: remove oidc\.clientsecret/,
    ],
  },
  {
    name: "a client secret file with workload_identity",
    env: {},
    args: ["--oidc.clientsecretfile=/run/secret"],
    expect: [/oidc\.clientsecretfile "\/run\/secret" from flag/, /remove oidc\.clientsecretfile/],
  },
  {
    name: "a private key with workload_identity",
    env: { KTR_OIDC_PRIVATEKEYFILE: "/run/key.pem" },
    expect: [/oidc\.privatekeyfile/, /remove oidc\.privatekeyfile/],
  },
  {
    name: "a client secret with a public client",
    env: {
      KTR_OIDC_AUTHMETHOD: "none",
      KTR_OIDC_GRANT: "jwt_bearer",
      KTR_OIDC_CLIENTSECRET: CLIENT_SECRET,
    },
    expect: [/sends only the client id \(a public client\): remove oidc\.clientsecret/],
  },
  {
    name: "no client id with a public client",
    env: {
      KTR_OIDC_AUTHMETHOD: "none",
      KTR_OIDC_GRANT: "jwt_bearer",
      KTR_OIDC_CLIENTID: undefined,
    },
    expect: [/Missing required key oidc\.clientid/, /KTR_OIDC_CLIENTID/],
  },
  {
    name: "neither token file nor audience",
    env: { KTR_OIDC_FEDERATION_TOKENFILE: undefined },
    expect: [
      /Missing required key oidc\.federation\.tokenfile or oidc\.federation\.audience/,
      /KTR_OIDC_FEDERATION_TOKENFILE/,
      /KTR_OIDC_FEDERATION_AUDIENCE/,
    ],
  },
  {
    name: "both token file and audience",
    env: { KTR_OIDC_FEDERATION_AUDIENCE: "api://AzureADTokenExchange" },
    expect: [/Conflicting keys oidc\.federation\.tokenfile/, /set only one/],
  },
  {
    name: "a token file path with whitespace",
    env: { KTR_OIDC_FEDERATION_TOKENFILE: "/token " },
    expect: [/Invalid value "\/token " for oidc\.federation\.tokenfile from environment/],
  },
  {
    name: "an audience with whitespace",
    env: { KTR_OIDC_FEDERATION_TOKENFILE: undefined, KTR_OIDC_FEDERATION_AUDIENCE: "api://a b" },
    expect: [/oidc\.federation\.audience/, /without whitespace/],
  },
  {
    name: "an expiration below 600",
    env: {
      KTR_OIDC_FEDERATION_TOKENFILE: undefined,
      KTR_OIDC_FEDERATION_AUDIENCE: "api://AzureADTokenExchange",
      KTR_OIDC_FEDERATION_EXPIRATION: "599",
    },
    expect: [/Invalid value "599" for oidc\.federation\.expiration/, /from 600 to 3600/],
  },
  {
    name: "an expiration above 3600",
    env: {
      KTR_OIDC_FEDERATION_TOKENFILE: undefined,
      KTR_OIDC_FEDERATION_AUDIENCE: "api://AzureADTokenExchange",
    },
    args: ["--oidc.federation.expiration", "1h"],
    expect: [/Invalid value "1h" for oidc\.federation\.expiration from flag/],
  },
  {
    name: "an expiration with a token file",
    env: { KTR_OIDC_FEDERATION_EXPIRATION: "900" },
    expect: [/oidc\.federation\.expiration "900"/, /expirationSeconds of the projected volume/],
  },
  {
    name: "a token type that is no URI",
    env: {
      KTR_OIDC_AUTHMETHOD: "none",
      KTR_OIDC_GRANT: "token_exchange",
      KTR_OIDC_FEDERATION_TOKENTYPE: "id_token",
    },
    expect: [/Invalid value "id_token" for oidc\.federation\.tokentype/, /absolute URI/],
  },
  {
    name: "a token type without token exchange",
    env: { KTR_OIDC_FEDERATION_TOKENTYPE: "urn:ietf:params:oauth:token-type:id_token" },
    expect: [/oidc\.federation\.tokentype/, /only used with oidc\.grant "token_exchange"/],
  },
  {
    name: "a parameter the tool sets itself",
    env: { KTR_OIDC_FEDERATION_PARAMS: "connector_id=k grant_type=password" },
    expect: [/oidc\.federation\.params/, /"grant_type" comes from the other oidc keys/],
  },
  {
    name: "a parameter without a value",
    env: { KTR_OIDC_FEDERATION_PARAMS: "connector_id" },
    expect: [/oidc\.federation\.params/, /name=value/],
  },
  {
    name: "federation keys without a service-account token",
    env: {
      KTR_OIDC_AUTHMETHOD: undefined,
      KTR_OIDC_CLIENTSECRET: CLIENT_SECRET,
    },
    expect: [
      /oidc\.federation\.tokenfile "\/var\/run\/secrets\/tokens\/provider"/,
      /only used when a service-account token is sent/,
      /or remove oidc\.federation\.tokenfile/,
    ],
  },
];

function envOf(changes: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string | undefined> = { ...BASE, ...changes };
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

Deno.test("every secretless key and combination refuses bad input with exit 2", async (t) => {
  // Four at a time: each case is a process start.
  for (let i = 0; i < CASES.length; i += 4) {
    const batch = CASES.slice(i, i + 4);
    const results = await Promise.all(batch.map(async (c) => {
      await using refresher = spawnRefresher({ env: envOf(c.env), args: c.args });
      return await refresher.exited;
    }));
    for (const [index, c] of batch.entries()) {
      await t.step(c.name, () => {
        const { code, output } = results[index];
        assertEquals(code, 2, output);
        for (const pattern of c.expect) assertMatch(output, pattern);
        assertMatch(output, /^Error: /m);
        assertNotIncludes(output, CLIENT_SECRET, "the client secret leaked");
      });
    }
  }
});

Deno.test("an audience of the API server itself is refused at start with exit 2", async () => {
  const saDir = await Deno.makeTempDir({ prefix: "ktr-sa-" });
  try {
    const payload = btoa(JSON.stringify({
      iss: "https://kubernetes.default.svc.cluster.local",
      aud: ["https://kubernetes.default.svc.cluster.local", "k3s"],
      sub: "system:serviceaccount:tools:refresher",
      exp: Math.floor(Date.now() / 1000) + 3600,
    })).replace(/=+$/, "");
    await Deno.writeTextFile(`${saDir}/token`, `eyJhbGciOiJFUzI1NiJ9.${payload}.c2ln`);
    for (const audience of ["k3s", "https://kubernetes.default.svc.cluster.local"]) {
      await using refresher = spawnRefresher({
        env: envOf({
          KTR_OIDC_FEDERATION_TOKENFILE: undefined,
          KTR_OIDC_FEDERATION_AUDIENCE: audience,
          KTR_KUBE_SERVICEACCOUNTDIR: saDir,
        }),
      });
      const { code, output } = await refresher.exited;
      assertEquals(code, 2, output);
      assertMatch(
        output,
        /for oidc\.federation\.audience: it is an audience of the Kubernetes API/,
      );
      assert(output.includes(`${saDir}/token`), output);
      assertNotIncludes(output, payload, "the mounted token leaked");
    }
  } finally {
    await Deno.remove(saDir, { recursive: true });
  }
});

Deno.test("TokenRequest outside a pod is refused at start with exit 2", async () => {
  const saDir = await Deno.makeTempDir({ prefix: "ktr-sa-" });
  try {
    await using refresher = spawnRefresher({
      env: envOf({
        KTR_OIDC_FEDERATION_TOKENFILE: undefined,
        KTR_OIDC_FEDERATION_AUDIENCE: "api://AzureADTokenExchange",
        KTR_KUBE_SERVICEACCOUNTDIR: saDir,
      }),
    });
    const { code, output } = await refresher.exited;
    assertEquals(code, 2, output);
    assertMatch(
      output,
      /oidc\.federation\.audience mints tokens for the tool's own service account/,
    );
    assertMatch(output, /or set oidc\.federation\.tokenfile/);
  } finally {
    await Deno.remove(saDir, { recursive: true });
  }
});
