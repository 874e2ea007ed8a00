/**
 * What a new operator meets on a first run, as main.ts gives it: the namespace taken from the
 * pod's service account, refused mode pairs, a dry run that checks the namespace. In-process
 * against the Kubernetes API fake over TLS and a real OpenID provider, and against the real
 * kube-apiserver where the API server's own answer is the point.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { createFakeKube } from "./fixtures/fake_kube.ts";
import { startFakeCluster } from "./fixtures/fake_cluster.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { runInProcess } from "./fixtures/in_process.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { inClusterEnv, refresherNamespace } from "./fixtures/real_cluster.ts";
import { makeTestTls } from "./fixtures/tls.ts";
import { stackTestIgnore, startKubeStack } from "./stack/stack.ts";

/** The API fake behind TLS with a service-account folder for `team-a`, and a real provider. */
async function world() {
  const fake = createFakeKube();
  const tls = await makeTestTls();
  const cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  const provider = await startOidcProvider({ tokenTtlSeconds: 600 });
  return {
    fake,
    cluster,
    provider,
    env: { ...cluster.env, ...providerEnv(provider) },
    async [Symbol.asyncDispose]() {
      await provider[Symbol.asyncDispose]();
      await cluster.stop();
      await tls[Symbol.asyncDispose]();
    },
  };
}

Deno.test("in a pod without secret.namespace, --once writes into the pod's namespace and the start log says where it came from", async () => {
  await using w = await world();
  await using refresher = runInProcess({
    env: w.env,
    args: ["--secret.name=api-token", "--once"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 0, output);
  assert(w.fake.secrets.has("team-a/api-token"), [...w.fake.secrets.keys()].join());
  assertMatch(
    output,
    new RegExp(`Refreshing once .*namespace=team-a.*namespaceFrom=${w.cluster.saDir}/namespace`),
  );
  assertNotIncludes(output, w.provider.clientSecret);
});

Deno.test("in a pod without secret.namespace, --dry-run names the namespace and its file", async () => {
  await using w = await world();
  await using refresher = runInProcess({
    env: { ...w.env, KTR_SECRET_NAME: "api-token", KTR_DRY_RUN: "true" },
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 0, output);
  assertMatch(
    output,
    new RegExp(
      `^Namespace "team-a" \\(the pod's own, from ${w.cluster.saDir}/namespace; set secret\\.namespace to write elsewhere\\): exists$`,
      "m",
    ),
  );
  assertEquals(w.fake.secrets.size, 0);
});

Deno.test("--once with --dry-run exits 2 and sends nothing anywhere", async () => {
  await using w = await world();
  await using refresher = runInProcess({
    env: w.env,
    args: ["--secret.name=api-token", "--once", "--dry-run"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 2, output);
  assertMatch(output, /^Error: Key dry-run .* is not used with once/m);
  assertEquals(w.fake.requests, []);
  assertEquals(w.provider.issued, []);
});

const ignore = stackTestIgnore();

Deno.test({
  name:
    "stack: --dry-run finds a missing namespace, by reading it (admin) or by a dry-run apply (least privilege), and stores nothing",
  ignore,
  async fn() {
    await using stack = await startKubeStack();
    await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });
    const home = await Deno.makeTempDir({ prefix: "ktr-home-" });
    const { namespace, saDir } = await refresherNamespace(stack, "api-token");
    try {
      // An admin may read namespaces: the missing one is named, exit 1.
      await using admin = spawnRefresher({
        permissionSet: "kubeconfig",
        env: { KUBECONFIG: stack.kubeconfigPath, HOME: home, ...providerEnv(provider) },
        args: ["--secret.name=api-token", "--secret.namespace=no-such-namespace", "--dry-run"],
      });
      const missing = await admin.exited;
      assertEquals(missing.code, 1, missing.output);
      assertMatch(missing.output, /^Namespace "no-such-namespace": DOES NOT EXIST$/m);
      assertMatch(missing.output, /^Problem: Namespace "no-such-namespace" does not exist/m);

      // The shipped Role cannot read namespaces; the run's apply, checked and discarded by the
      // API server, answers instead. The namespace comes from the service account folder.
      await using pod = spawnRefresher({
        env: { ...inClusterEnv(stack, saDir), ...providerEnv(provider) },
        args: ["--secret.name=api-token", "--dry-run"],
      });
      const present = await pod.exited;
      assertEquals(present.code, 0, present.output);
      assertMatch(
        present.output,
        new RegExp(`^Namespace "${namespace}" \\(the pod's own.*: exists$`, "m"),
      );
      assertMatch(present.output, /^Result: OK/m);

      // With patch and create on the Secret's name everywhere (and still no namespace reads), the
      // API server's NamespaceLifecycle check answers the dry-run apply for a missing namespace
      // with 404.
      const grant = await stack.kubectl(["apply", "-f", "-"], {
        stdin: JSON.stringify({
          apiVersion: "v1",
          kind: "List",
          items: [{
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRole",
            metadata: { name: `${namespace}-create-secrets` },
            rules: [{
              apiGroups: [""],
              resources: ["secrets"],
              resourceNames: ["api-token"],
              verbs: ["patch", "create"],
            }],
          }, {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: { name: `${namespace}-create-secrets` },
            roleRef: {
              apiGroup: "rbac.authorization.k8s.io",
              kind: "ClusterRole",
              name: `${namespace}-create-secrets`,
            },
            subjects: [{ kind: "ServiceAccount", name: "refresher", namespace }],
          }],
        }),
      });
      assertEquals(grant.code, 0, grant.stderr);
      await using elsewhere = spawnRefresher({
        env: { ...inClusterEnv(stack, saDir), ...providerEnv(provider) },
        args: ["--secret.name=api-token", "--secret.namespace=no-such-namespace", "--dry-run"],
      });
      const gone = await elsewhere.exited;
      assertEquals(gone.code, 1, gone.output);
      assertMatch(gone.output, /^Namespace "no-such-namespace": DOES NOT EXIST$/m);

      const secrets = await stack.kubectl(["get", "secrets", "-n", namespace, "-o", "name"]);
      assertEquals(secrets.code, 0, secrets.stderr);
      assertEquals(secrets.stdout.trim(), "", "a dry run stored a Secret");
    } finally {
      await Deno.remove(home, { recursive: true });
      await Deno.remove(saDir, { recursive: true });
    }
  },
});

Deno.test("misspelt variables are warned about alike under the in-cluster and the kubeconfig permission set", async () => {
  const env = {
    KTR_SECRET_NAME: "api-token",
    KTR_SECRET_NAMESPACE: "team-a",
    KTR_OIDC_TOKENURL: "https://auth.example.com/token",
    KTR_OIDC_CLIENT_ID: "my-client",
    KTR_OIDC_CLIENTSECRET: "client-secret-never-shown-77a1",
    KTR_RENEW_PERCENTAGE: "50",
  };
  for (const permissionSet of ["incluster", "kubeconfig"] as const) {
    await using refresher = spawnRefresher({ permissionSet, env });
    const { code, output } = await refresher.exited;
    assertEquals(code, 2, `${permissionSet}:\n${output}`);
    assertMatch(output, /^Error: Missing required key oidc\.clientid/m);
    assertMatch(
      output,
      /^Warning: Ignoring unknown environment variable KTR_OIDC_CLIENT_ID: did you mean KTR_OIDC_CLIENTID\?$/m,
    );
    assertMatch(
      output,
      /^Warning: Ignoring unknown environment variable KTR_RENEW_PERCENTAGE: did you mean KTR_RENEW_PERCENT\?$/m,
    );
    assertNotIncludes(output, env.KTR_OIDC_CLIENTSECRET);
  }
});

Deno.test("http.address :port serves the probes on IPv4 and IPv6 loopback", async () => {
  await using w = await world();
  await using refresher = runInProcess({
    env: w.env,
    args: ["--secret.name=api-token", "--http.address=:0"],
  });
  const line = await refresher.waitForOutput(/Serving \/healthz.*address=http:\/\/\[::\]:\d+/);
  const port = Number(line.match(/address=http:\/\/\[::\]:(\d+)/)![1]);
  for (const host of ["127.0.0.1", "[::1]"]) {
    const res = await fetch(`http://${host}:${port}/healthz`);
    assertEquals([host, res.status], [host, 200]);
    await res.body?.cancel();
  }
  assert(!/IPv6 is not available/.test(refresher.output()), refresher.output());
});

/** A loopback port nothing listens on. */
function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("a dead HTTPS_PROXY is reported as the proxy failing, not the token URL refusing", async () => {
  await using tls = await makeTestTls();
  const saDir = await Deno.makeTempDir({ prefix: "ktr-sa-" });
  try {
    await Deno.writeTextFile(`${saDir}/token`, "sa-token-never-shown");
    await Deno.writeTextFile(`${saDir}/ca.crt`, tls.caPem);
    await Deno.writeTextFile(`${saDir}/namespace`, "team-a");
    const proxyPort = deadPort();
    const env = {
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: String(deadPort()),
      KTR_KUBE_SERVICEACCOUNTDIR: saDir,
      KTR_SECRET_NAME: "api-token",
      KTR_OIDC_TOKENURL: `https://localhost:${deadPort()}/token`,
      KTR_OIDC_CLIENTID: "my-client",
      KTR_OIDC_CLIENTSECRET: "client-secret-never-shown-5b0c",
      KTR_ONCE: "true",
    };
    await using proxied = spawnRefresher({
      env: {
        ...env,
        HTTPS_PROXY: `http://proxy-user:proxy-password-9d@127.0.0.1:${proxyPort}`,
        NO_PROXY: "127.0.0.1",
      },
    });
    const viaProxy = await proxied.exited;
    assertEquals(viaProxy.code, 1, viaProxy.output);
    assertMatch(
      viaProxy.output,
      new RegExp(
        `Refresh failed: Token endpoint could not be reached: the proxy http://127\\.0\\.0\\.1:${proxyPort} \\(from HTTPS_PROXY\\) is not reachable: .*Connection refused`,
      ),
    );
    assertNotIncludes(viaProxy.output, "proxy-password-9d");
    assertNotIncludes(viaProxy.output, "client-secret-never-shown-5b0c");

    // Without the proxy the same refusal is the token URL's own.
    await using direct = spawnRefresher({ env });
    const straight = await direct.exited;
    assertEquals(straight.code, 1, straight.output);
    assertMatch(
      straight.output,
      /Token endpoint could not be reached: tcp connect error: Connection refused/,
    );
    assert(!straight.output.includes("proxy"), straight.output);
  } finally {
    await Deno.remove(saDir, { recursive: true });
  }
});
