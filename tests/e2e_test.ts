/**
 * End to end: main.ts as a subprocess with the compiled binary's permission set, a real OpenID
 * provider and a real kube-apiserver, in-cluster mode with a real service account and RBAC.
 */
import { assert, assertEquals, assertNotIncludes } from "./assert.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher, stopTimed } from "./fixtures/refresher_process.ts";
import { stackTestIgnore, startKubeStack } from "./stack/stack.ts";
import { inClusterEnv, readSecret, refresherNamespace } from "./fixtures/real_cluster.ts";

const ignore = stackTestIgnore();

Deno.test({
  name: "the refresher keeps a real provider's token in a real Secret and stops cleanly on SIGTERM",
  ignore,
  async fn() {
    await using stack = await startKubeStack();
    await using provider = await startOidcProvider({ tokenTtlSeconds: 3 });
    const { namespace, saDir } = await refresherNamespace(stack, "api-token");
    try {
      const existing = `
apiVersion: v1
kind: Secret
metadata:
  name: api-token
  namespace: ${namespace}
  labels: { app: consumer }
  annotations: { example.com/owner: team-a }
type: Opaque
stringData: { ca.crt: PEM-DATA, other: keep-me }
`;
      assertEquals((await stack.kubectl(["apply", "-f", "-"], { stdin: existing })).code, 0);

      await using refresher = spawnRefresher({
        env: {
          ...inClusterEnv(stack, saDir),
          KTR_SECRET_NAME: "api-token",
          KTR_SECRET_NAMESPACE: namespace,
          ...providerEnv(provider),
          KTR_LOG_LEVEL: "debug",
        },
        args: ["--http.address=off"],
      });
      // Token lifetime 3 s: renewal every 2 s, so three writes take about 4 s.
      await refresher.waitForOutput(/(Token refreshed[^\n]*\n[^]*){3}/, 30_000);
      const { code, output, stopMs } = await stopTimed(refresher);
      assertEquals(code, 0, output);
      assert(stopMs < 2000, `stopping took ${stopMs} ms`);

      const writes = output.match(/Token refreshed/g)?.length ?? 0;
      const secret = await readSecret(stack, namespace, "api-token");
      assertEquals(secret.decoded.token, provider.issued[writes - 1]);
      assertEquals(secret.metadata.labels?.["ktr.appuio.ch/managed"], "true");
      assertEquals(secret.metadata.labels?.app, "consumer");
      assertEquals(secret.metadata.annotations?.["example.com/owner"], "team-a");
      assertEquals(secret.decoded.other, "keep-me");
      assertEquals(secret.decoded["ca.crt"], "PEM-DATA");
      assertEquals(secret.type, "Opaque");

      for (const token of provider.issued) {
        assertNotIncludes(output, token, "a token leaked into the output");
      }
      assertNotIncludes(output, provider.clientSecret, "the client secret leaked into the output");
      assert(output.includes("Shutting down"), output);
    } finally {
      await Deno.remove(saDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the refresher creates a missing Secret as Opaque with the managed label",
  ignore,
  async fn() {
    await using stack = await startKubeStack();
    await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });
    const { namespace, saDir } = await refresherNamespace(stack, "new-token");
    try {
      await using refresher = spawnRefresher({
        env: {
          ...inClusterEnv(stack, saDir),
          ...providerEnv(provider),
        },
        args: [
          "--secret.name=new-token",
          `--secret.namespace=${namespace}`,
          "--secret.key=access_token",
          "--http.address=off",
          "--log.format=json",
        ],
      });
      const line = await refresher.waitForOutput(/\{[^\n]*Token refreshed[^\n]*\}/, 30_000);
      const record = JSON.parse(line);
      assertEquals(record.action, "created");
      assertEquals(record.secret, "new-token");
      assertEquals(record.level, "INFO");
      refresher.kill("SIGTERM");
      assertEquals((await refresher.exited).code, 0);
      const secret = await readSecret(stack, namespace, "new-token");
      assertEquals(secret.type, "Opaque");
      assertEquals(secret.metadata.labels, { "ktr.appuio.ch/managed": "true" });
      assertEquals(Object.keys(secret.decoded), ["access_token"]);
      assertEquals(secret.decoded.access_token, provider.issued[0]);
    } finally {
      await Deno.remove(saDir, { recursive: true });
    }
  },
});
