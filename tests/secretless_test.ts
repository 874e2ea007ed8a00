/**
 * The secretless path end to end, with real parts: the real kube-apiserver of the test stack as
 * the service-account token issuer (tokens minted with TokenRequest, discovery and JWKS readable
 * anonymously), main.ts as a subprocess with the compiled binary's permission set, and
 *
 * - Keycloak (from Maven Central) for `workload_identity`: a Kubernetes identity provider and a
 *   federated client, no secret anywhere;
 * - Ory Hydra v2 (from the Go module proxy) for the `jwt_bearer` grant;
 * - `oidc-provider` with a token-exchange grant handler for `token_exchange`: a stand-in, since
 *   no provider that builds here offers token exchange of an external token.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import {
  addFederatedClient,
  addKubernetesIdentityProvider,
  keycloakTestIgnore,
  startKeycloak,
} from "./fixtures/keycloak.ts";
import { hydraTestIgnore, startHydra } from "./fixtures/hydra.ts";
import { startOidcProvider } from "./fixtures/oidc_provider.ts";
import { TOKEN_EXCHANGE, tokenExchangeGrant } from "./fixtures/token_exchange.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { inClusterEnv, readSecret, refresherNamespace } from "./fixtures/real_cluster.ts";
import {
  createServiceAccount,
  type KubeStack,
  requestServiceAccountToken,
  stackTestIgnore,
  startKubeStack,
} from "./stack/stack.ts";

/** Anything that looks like a JWT: no output may hold one. */
const JWT_PATTERN = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;

function claimsOf(token: string): Record<string, unknown> {
  const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
}

/** Lets anyone read the issuer's discovery document and JWKS, as a cloud provider needs. */
async function allowIssuerDiscovery(stack: KubeStack): Promise<void> {
  const out = await stack.kubectl([
    "create",
    "clusterrolebinding",
    "service-account-issuer-discovery",
    "--clusterrole=system:service-account-issuer-discovery",
    "--group=system:unauthenticated",
  ]);
  if (out.code !== 0) throw new Error(`binding the discovery role failed: ${out.stderr}`);
}

/**
 * Grants the service account `refresher` what the TokenRequest variant of the
 * workload-identity component grants: `create` on its own `serviceaccounts/token`, by name.
 */
async function allowTokenRequest(stack: KubeStack, namespace: string, allowed = true) {
  const role = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: "refresher-token", namespace },
    rules: allowed
      ? [{
        apiGroups: [""],
        resources: ["serviceaccounts/token"],
        resourceNames: ["refresher"],
        verbs: ["create"],
      }]
      : [],
  };
  const binding = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: "refresher-token", namespace },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "refresher-token" },
    subjects: [{ kind: "ServiceAccount", name: "refresher", namespace }],
  };
  for (const object of [role, binding]) {
    const out = await stack.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(object) });
    if (out.code !== 0) throw new Error(`kubectl apply failed: ${out.stderr}`);
  }
}

/**
 * The environment of a refresher in the pod of `namespace`, writing the Secret `api-token`,
 * getting its tokens from `tokenUrl`; the test adds how it authenticates.
 */
function podEnv(
  stack: KubeStack,
  saDir: string,
  namespace: string,
  tokenUrl: string,
): Record<string, string> {
  return {
    ...inClusterEnv(stack, saDir),
    KTR_SECRET_NAME: "api-token",
    KTR_SECRET_NAMESPACE: namespace,
    KTR_OIDC_TOKENURL: tokenUrl,
  };
}

/** Writes a token file the way the kubelet does: a new file moved into place. */
async function writeTokenFile(path: string, token: string): Promise<void> {
  await Deno.writeTextFile(`${path}.new`, token);
  await Deno.rename(`${path}.new`, path);
}

async function runOnce(env: Record<string, string>, args: string[] = []) {
  await using refresher = spawnRefresher({ env, args: ["--once", "--http.address=off", ...args] });
  return await refresher.exited;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test({
  name: "Keycloak: a service-account token authenticates the client, with no secret anywhere",
  ignore: stackTestIgnore() || keycloakTestIgnore(),
  async fn(t) {
    await using stack = await startKubeStack();
    await allowIssuerDiscovery(stack);
    await using keycloak = await startKeycloak({ truststore: [stack.caFile] });
    console.log(`Keycloak started in ${keycloak.startMs} ms`);
    await addKubernetesIdentityProvider(keycloak, stack.issuer);
    const { namespace, saDir } = await refresherNamespace(stack, "api-token");
    await addFederatedClient(keycloak, "refresher", `system:serviceaccount:${namespace}:refresher`);
    const tokens = await Deno.makeTempDir({ prefix: "ktr-tokens-" });
    const tokenFile = `${tokens}/token`;
    const mint = async (audience: string, account = "refresher") =>
      (await requestServiceAccountToken(stack, namespace, account, {
        audiences: [audience],
        expirationSeconds: 3600,
      })).token;
    const env = {
      ...podEnv(stack, saDir, namespace, keycloak.tokenUrl),
      KTR_OIDC_AUTHMETHOD: "workload_identity",
    };
    const fileEnv = { ...env, KTR_OIDC_FEDERATION_TOKENFILE: tokenFile };
    try {
      await t.step("a projected token file: the access token lands in the Secret", async () => {
        const saToken = await mint(keycloak.issuer);
        await writeTokenFile(tokenFile, saToken);
        const { code, output } = await runOnce(fileEnv);
        assertEquals(code, 0, output);
        const secret = await readSecret(stack, namespace, "api-token");
        const claims = claimsOf(secret.decoded.token);
        assertEquals(claims.iss, keycloak.issuer);
        assertEquals(claims.azp, "refresher");
        assertNotIncludes(output, saToken, "the service-account token leaked");
        assertNotIncludes(output, secret.decoded.token, "the access token leaked");
        assert(!JWT_PATTERN.test(output), output);
        // No secret anywhere: none configured, and Keycloak's client has none either.
        assert(
          !Object.keys(fileEnv).some((name) => /CLIENTSECRET|PRIVATEKEY/.test(name)),
          "a client secret or key is configured",
        );
        const response = await keycloak.admin("/clients?clientId=refresher");
        const [client] = await response.json() as { clientAuthenticatorType: string }[];
        assertEquals(client.clientAuthenticatorType, "federated-jwt");
      });

      await t.step("a rotated token file is read again; a bad one fails the refresh", async () => {
        await createServiceAccount(stack, namespace, "rotated");
        await addFederatedClient(keycloak, "rotated", `system:serviceaccount:${namespace}:rotated`);
        await writeTokenFile(tokenFile, await mint(keycloak.issuer));
        await using refresher = spawnRefresher({
          env: fileEnv,
          args: ["--interval=1", "--http.address=off"],
        });
        await refresher.waitForOutput(/Token refreshed/, 60_000);
        // The kubelet rotates the file; here the new token is another service account's, so the
        // Secret shows which file content was sent.
        await writeTokenFile(tokenFile, await mint(keycloak.issuer, "rotated"));
        const rotated = await waitFor("a token of the rotated client", async () => {
          const { decoded } = await readSecret(stack, namespace, "api-token");
          return claimsOf(decoded.token).azp === "rotated" ? decoded.token : undefined;
        });
        await writeTokenFile(tokenFile, await mint("https://wrong.example.test"));
        await refresher.waitForOutput(/Invalid token audience/, 30_000);
        assertEquals((await readSecret(stack, namespace, "api-token")).decoded.token, rotated);
        refresher.kill("SIGTERM");
        const { code, output } = await refresher.exited;
        assertEquals(code, 0, output);
        assert(!JWT_PATTERN.test(output), output);
      });

      await t.step("a token for another audience is refused, Keycloak's error quoted", async () => {
        await writeTokenFile(tokenFile, await mint("https://wrong.example.test"));
        const { code, output } = await runOnce(fileEnv);
        assertEquals(code, 1, output);
        assertMatch(output, /HTTP 400, error "invalid_client": Invalid token audience/);
      });

      await t.step("a token of another subject is refused, Keycloak's error quoted", async () => {
        await createServiceAccount(stack, namespace, "stranger");
        await writeTokenFile(tokenFile, await mint(keycloak.issuer, "stranger"));
        const { code, output } = await runOnce(fileEnv);
        assertEquals(code, 1, output);
        assertMatch(
          output,
          /HTTP 401, error "invalid_client": Invalid client or Invalid client credentials/,
        );
      });

      await t.step("a token for the API server's own audience is never sent", async () => {
        const { token } = await requestServiceAccountToken(stack, namespace, "refresher", {
          expirationSeconds: 3600,
        });
        await writeTokenFile(tokenFile, token);
        const { code, output } = await runOnce(fileEnv);
        assertEquals(code, 1, output);
        assertMatch(output, /an audience of the Kubernetes API server itself: it is not sent/);
        assertNotIncludes(output, "invalid_client");
      });

      const mintEnv = { ...env, KTR_OIDC_FEDERATION_AUDIENCE: keycloak.issuer };
      await t.step("TokenRequest: a fresh token for the configured audience", async () => {
        await allowTokenRequest(stack, namespace);
        const { code, output } = await runOnce(mintEnv);
        assertEquals(code, 0, output);
        const { decoded } = await readSecret(stack, namespace, "api-token");
        assertEquals(claimsOf(decoded.token).azp, "refresher");
        assert(!JWT_PATTERN.test(output), output);
      });

      await t.step("--dry-run: source, audience, issuer, subject, expiry, permission", async () => {
        await using refresher = spawnRefresher({ env: mintEnv, args: ["--dry-run"] });
        const { code, output } = await refresher.exited;
        assertEquals(code, 0, output);
        assertMatch(output, /Service-account token: TokenRequest for service account "e2e-/);
        assertMatch(
          output,
          new RegExp(
            `audience "${keycloak.issuer}", issuer "${stack.issuer}", subject "system:serviceaccount:${namespace}:refresher", expires \\d{4}-`,
          ),
        );
        assertMatch(
          output,
          new RegExp(
            `Permission create serviceaccounts/token "refresher" in namespace "${namespace}": allowed`,
          ),
        );
        assert(!JWT_PATTERN.test(output), output);
      });

      await t.step("--dry-run names the missing TokenRequest permission and its rule", async () => {
        await allowTokenRequest(stack, namespace, false);
        await using refresher = spawnRefresher({ env: mintEnv, args: ["--dry-run"] });
        const { code, output } = await refresher.exited;
        assertEquals(code, 1, output);
        assertMatch(
          output,
          /Problem: Permission missing: create serviceaccounts\/token "refresher"/,
        );
        assertMatch(
          output,
          /resources: \["serviceaccounts\/token"\], resourceNames: \["refresher"\]/,
        );
      });

      await t.step("the API server's own audience is refused at start (exit 2)", async () => {
        const { code, output } = await runOnce({
          ...env,
          KTR_OIDC_FEDERATION_AUDIENCE: stack.issuer,
        });
        assertEquals(code, 2, output);
        assertMatch(output, /oidc\.federation\.audience: it is an audience of the Kubernetes API/);
      });
    } finally {
      await Deno.remove(saDir, { recursive: true });
      await Deno.remove(tokens, { recursive: true });
    }
  },
});

Deno.test({
  name: "Hydra: jwt_bearer with a fresh TokenRequest token per request; a reused one is refused",
  ignore: stackTestIgnore() || hydraTestIgnore(),
  async fn() {
    await using stack = await startKubeStack();
    await using hydra = await startHydra();
    console.log(`Hydra started in ${hydra.startMs} ms`);
    const { namespace, saDir } = await refresherNamespace(stack, "api-token");
    const tokens = await Deno.makeTempDir({ prefix: "ktr-tokens-" });
    try {
      await allowTokenRequest(stack, namespace);
      const response = await stack.request("/openid/v1/jwks");
      const jwks = await response.json() as { keys: JsonWebKey[] };
      await hydra.admin("/admin/trust/grants/jwt-bearer/issuers", {
        issuer: stack.issuer,
        subject: `system:serviceaccount:${namespace}:refresher`,
        scope: [],
        jwk: jwks.keys[0],
        expires_at: new Date(Date.now() + 86_400_000).toISOString(),
      });
      await hydra.admin("/admin/clients", {
        client_id: "refresher",
        grant_types: ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        token_endpoint_auth_method: "none",
        response_types: [],
      });
      const env = {
        ...podEnv(stack, saDir, namespace, hydra.tokenUrl),
        KTR_OIDC_CLIENTID: "refresher",
        KTR_OIDC_AUTHMETHOD: "none",
        KTR_OIDC_GRANT: "jwt_bearer",
      };
      await using refresher = spawnRefresher({
        env: { ...env, KTR_OIDC_FEDERATION_AUDIENCE: hydra.tokenUrl },
        args: ["--interval=1", "--http.address=off"],
      });
      // Three refreshes in a row: each sent a token with a new jti, or Hydra would refuse it.
      await refresher.waitForOutput(/(Token refreshed[^\n]*\n[^]*){3}/, 30_000);
      refresher.kill("SIGTERM");
      const { code, output } = await refresher.exited;
      assertEquals(code, 0, output);
      assert(!JWT_PATTERN.test(output), output);
      const { decoded } = await readSecret(stack, namespace, "api-token");
      assert(decoded.token.length > 20, "no access token in the Secret");

      // A token file is sent as it is until the kubelet rotates it: Hydra takes it once only.
      const { token } = await requestServiceAccountToken(stack, namespace, "refresher", {
        audiences: [hydra.tokenUrl],
        expirationSeconds: 3600,
      });
      await writeTokenFile(`${tokens}/token`, token);
      const fileEnv = { ...env, KTR_OIDC_FEDERATION_TOKENFILE: `${tokens}/token` };
      assertEquals((await runOnce(fileEnv)).code, 0);
      const again = await runOnce(fileEnv);
      assertEquals(again.code, 1, again.output);
      assertMatch(again.output, /HTTP 400, error "jti_known": The jti was already used/);
    } finally {
      await Deno.remove(saDir, { recursive: true });
      await Deno.remove(tokens, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "token_exchange (oidc-provider stand-in): the token as subject_token, with its type and params",
  ignore: stackTestIgnore(),
  async fn() {
    await using stack = await startKubeStack();
    const response = await stack.request("/openid/v1/jwks");
    const jwks = await response.json() as { keys: JsonWebKey[] };
    // The provider's issuer is the audience; it is known once the provider listens, so the
    // trust is filled in after the start.
    const trust = { jwks, issuer: stack.issuer, audience: "" };
    const { grant, received } = tokenExchangeGrant(trust);
    await using provider = await startOidcProvider({
      grantTypes: [grant],
      clients: [{
        client_id: "exchanger",
        token_endpoint_auth_method: "none",
        grant_types: [TOKEN_EXCHANGE],
      }],
    });
    trust.audience = provider.issuer;
    const { namespace, saDir } = await refresherNamespace(stack, "api-token");
    const tokens = await Deno.makeTempDir({ prefix: "ktr-tokens-" });
    try {
      const { token } = await requestServiceAccountToken(stack, namespace, "refresher", {
        audiences: [provider.issuer],
        expirationSeconds: 3600,
      });
      await writeTokenFile(`${tokens}/token`, token);
      const env = {
        ...podEnv(stack, saDir, namespace, provider.tokenUrl),
        KTR_OIDC_CLIENTID: "exchanger",
        KTR_OIDC_AUTHMETHOD: "none",
        KTR_OIDC_GRANT: "token_exchange",
        KTR_OIDC_FEDERATION_TOKENFILE: `${tokens}/token`,
        KTR_OIDC_FEDERATION_PARAMS: "connector_id=kubernetes",
      };
      const first = await runOnce(env);
      assertEquals(first.code, 0, first.output);
      const { decoded } = await readSecret(stack, namespace, "api-token");
      assertEquals(decoded.token, provider.issued.at(-1));
      assertEquals(received[0].subjectTokenType, "urn:ietf:params:oauth:token-type:jwt");
      assertEquals(received[0].parameters.connector_id, "kubernetes");
      assertEquals(provider.tokenRequests.at(-1)?.authMethod, "none");
      assertNotIncludes(first.output, token);

      const typed = await runOnce({
        ...env,
        KTR_OIDC_FEDERATION_TOKENTYPE: "urn:ietf:params:oauth:token-type:id_token",
      });
      assertEquals(typed.code, 0, typed.output);
      assertEquals(received[1].subjectTokenType, "urn:ietf:params:oauth:token-type:id_token");

      // A token for someone else is refused by the provider, its error quoted.
      const { token: other } = await requestServiceAccountToken(stack, namespace, "refresher", {
        audiences: ["https://elsewhere.example.test"],
        expirationSeconds: 3600,
      });
      await writeTokenFile(`${tokens}/token`, other);
      const refused = await runOnce(env);
      assertEquals(refused.code, 1, refused.output);
      assertMatch(refused.output, /error "invalid_grant"/);
    } finally {
      await Deno.remove(saDir, { recursive: true });
      await Deno.remove(tokens, { recursive: true });
    }
  },
});
