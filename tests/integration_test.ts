/**
 * Integration tests against the real kube-apiserver of tests/stack and a real OpenID provider,
 * with the refresher as a subprocess, as users run it: least-privilege RBAC and its errors,
 * service account token rotation, a concurrent writer, kubeconfig users, and validation compared
 * with what the real server refuses.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import {
  type OidcProviderFixture,
  providerEnv,
  startOidcProvider,
} from "./fixtures/oidc_provider.ts";
import { type RefresherProcess, spawnRefresher } from "./fixtures/refresher_process.ts";
import { KubeClient } from "../src/kube/client.ts";
import { kubeconfigConnection } from "../src/kube/connect.ts";
import {
  applyRole,
  bindRole,
  inClusterEnv,
  readSecret,
  refresherNamespace,
  shippedVerbs,
} from "./fixtures/real_cluster.ts";
import {
  createNamespace,
  type KubeStack,
  requestServiceAccountToken,
  stackTestIgnore,
  startKubeStack,
} from "./stack/stack.ts";

const ignore = stackTestIgnore();

/** Counts the refreshes a process has logged so far. */
function refreshes(process: RefresherProcess): number {
  return process.output().match(/Token refreshed/g)?.length ?? 0;
}

/** Waits until the process has logged `count` refreshes. */
async function waitForRefreshes(process: RefresherProcess, count: number, timeoutMs = 30_000) {
  await process.waitForOutput(new RegExp(`(Token refreshed[^]*){${count}}`), timeoutMs);
}

async function stop(process: RefresherProcess): Promise<string> {
  process.kill("SIGTERM");
  const { code, output } = await process.exited;
  assertEquals(code, 0, output);
  return output;
}

async function withStack(fn: (stack: KubeStack) => Promise<void>) {
  await using stack = await startKubeStack();
  await fn(stack);
}

/**
 * A stack, a provider and a namespace with the refresher's service account (and, unless `rbac`
 * says otherwise, the shipped Role), with a way to spawn the refresher there as a pod runs it,
 * writing the Secret `api-token`.
 */
function inNamespace(
  options: { tokenTtlSeconds: number; rbac?: Parameters<typeof refresherNamespace>[2] },
  fn: (world: {
    stack: KubeStack;
    provider: OidcProviderFixture;
    namespace: string;
    saDir: string;
    /** Spawns the refresher; `args` come after the Secret's namespace and name. */
    spawn(args?: string[]): RefresherProcess;
  }) => Promise<void>,
): () => Promise<void> {
  return () =>
    withStack(async (stack) => {
      await using provider = await startOidcProvider({ tokenTtlSeconds: options.tokenTtlSeconds });
      const { namespace, saDir } = await refresherNamespace(stack, "api-token", options.rbac);
      try {
        await fn({
          stack,
          provider,
          namespace,
          saDir,
          spawn: (args = []) =>
            spawnRefresher({
              env: { ...inClusterEnv(stack, saDir), ...providerEnv(provider) },
              args: [
                `--secret.namespace=${namespace}`,
                "--secret.name=api-token",
                ...args,
                "--http.address=off",
              ],
            }),
        });
      } finally {
        await Deno.remove(saDir, { recursive: true });
      }
    });
}

Deno.test({
  name:
    "integration: without create the error names the verb, and granting it fixes the loop without a restart",
  ignore,
  fn: inNamespace({
    tokenTtlSeconds: 600,
    rbac: { verbs: { named: ["get", "patch", "list", "watch"], unnamed: [] } },
  }, async ({ stack, provider, namespace, spawn }) => {
    await using refresher = spawn();
    // Apply is authorized as patch, and as create (by name) when the Secret is missing.
    await refresher.waitForOutput(/Refresh failed[^\n]*cannot create resource[^\n]*lacks/);
    // A second failure after a backoff step: the process stays up and keeps trying.
    await refresher.waitForOutput(/(Refresh failed[^]*){2}/);
    assertEquals(refreshes(refresher), 0);
    await applyRole(stack, namespace, "api-token", await shippedVerbs());
    await waitForRefreshes(refresher, 1);
    const output = await stop(refresher);
    assertNotIncludes(output, "    at ", "a stack trace in the output");
    const secret = await readSecret(stack, namespace, "api-token");
    assertEquals(secret.decoded.token, provider.issued.at(-1));
  }),
});

Deno.test({
  name:
    "integration: a Role bound in the wrong namespace gives a 403 explanation, fixed without a restart",
  ignore,
  fn: inNamespace(
    { tokenTtlSeconds: 600, rbac: { bindRole: false } },
    async ({ stack, namespace, spawn }) => {
      const elsewhere = await createNamespace(stack, "elsewhere");
      await applyRole(stack, elsewhere, "api-token", await shippedVerbs());
      await bindRole(stack, elsewhere, namespace);
      await using refresher = spawn();
      const failure = await refresher.waitForOutput(/Refresh failed[^\n]*/);
      assertMatch(failure, /HTTP 403/);
      assertMatch(
        failure,
        /lacks the \\?"patch\\?" verb .*on secret \\?"api-token\\?" in namespace/,
      );
      await applyRole(stack, namespace, "api-token", await shippedVerbs());
      await bindRole(stack, namespace, namespace);
      await waitForRefreshes(refresher, 1);
      const output = await stop(refresher);
      assertNotIncludes(output, "    at ", "a stack trace in the output");
    },
  ),
});

Deno.test({
  name: "integration: a rotated service account token is picked up without a restart",
  ignore,
  fn: inNamespace({ tokenTtlSeconds: 3 }, async ({ stack, provider, namespace, saDir, spawn }) => {
    // Token A is bound to an object; deleting that object revokes A.
    const anchor = await stack.kubectl([
      "create",
      "secret",
      "generic",
      "anchor-a",
      "-n",
      namespace,
      "--from-literal=x=y",
    ]);
    assertEquals(anchor.code, 0, anchor.stderr);
    const tokenA = await requestServiceAccountToken(stack, namespace, "refresher", {
      boundSecretName: "anchor-a",
      expirationSeconds: 3600,
    });
    await Deno.writeTextFile(`${saDir}/token`, tokenA.token);
    await using refresher = spawn();
    await waitForRefreshes(refresher, 1);

    const tokenB = await requestServiceAccountToken(stack, namespace, "refresher", {
      expirationSeconds: 3600,
    });
    await Deno.writeTextFile(`${saDir}/token`, tokenB.token);
    assertEquals(
      (await stack.kubectl(["delete", "secret", "anchor-a", "-n", namespace])).code,
      0,
    );
    // Token A is now rejected by the server (once its token cache, about 10 s, forgets it).
    const deadline = Date.now() + 60_000;
    while (true) {
      const withA = await stack.request(
        `/api/v1/namespaces/${namespace}/secrets/api-token`,
        {},
        tokenA.token,
      );
      await withA.body?.cancel();
      if (withA.status === 401) break;
      assert(Date.now() < deadline, `token A still accepted (HTTP ${withA.status})`);
      await new Promise((r) => setTimeout(r, 500));
    }

    const before = refreshes(refresher);
    await waitForRefreshes(refresher, before + 2);
    const output = await stop(refresher);
    assertNotIncludes(output, "Refresh failed");
    assertNotIncludes(output, tokenA.token);
    assertNotIncludes(output, tokenB.token);
    const secret = await readSecret(stack, namespace, "api-token");
    assertEquals(secret.decoded.token, provider.issued[refreshes(refresher) - 1]);
  }),
});

Deno.test({
  name:
    "integration: another writer's keys survive our writes, and a change to them is no drift to repair",
  ignore,
  fn: inNamespace({ tokenTtlSeconds: 3 }, async ({ stack, provider, namespace, spawn }) => {
    await using refresher = spawn();
    await waitForRefreshes(refresher, 1);
    // Server-side apply owns only the tool's key, label and annotations: the other client's
    // keys stay, and the watch does not take their change for drift.
    for (let i = 1; i <= 3; i++) {
      const patch = JSON.stringify({ stringData: { [`other-${i}`]: `value-${i}` } });
      const patched = await stack.kubectl([
        "patch",
        "secret",
        "api-token",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        patch,
      ]);
      assertEquals(patched.code, 0, patched.stderr);
      const before = refreshes(refresher);
      await waitForRefreshes(refresher, before + 1);
    }
    const output = await stop(refresher);
    assertNotIncludes(output, "Refresh failed");
    const secret = await readSecret(stack, namespace, "api-token");
    assertEquals(secret.decoded["other-1"], "value-1");
    assertEquals(secret.decoded["other-2"], "value-2");
    assertEquals(secret.decoded["other-3"], "value-3");
    assertEquals(secret.decoded.token, provider.issued[refreshes(refresher) - 1]);
  }),
});

Deno.test({
  name: "integration: outside a cluster, kubeconfig token and client-certificate users work",
  ignore,
  fn: () =>
    withStack(async (stack) => {
      await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });
      const namespace = await createNamespace(stack, "kubeconfig");
      for (
        const [name, kubeconfig] of [
          ["token-user", stack.kubeconfigPath],
          ["cert-user", stack.clientCertKubeconfigPath],
        ]
      ) {
        const home = await Deno.makeTempDir({ prefix: "ktr-home-" });
        try {
          await using refresher = spawnRefresher({
            permissionSet: "kubeconfig",
            env: { KUBECONFIG: kubeconfig, HOME: home, ...providerEnv(provider) },
            args: [
              `--secret.namespace=${namespace}`,
              `--secret.name=${name}`,
              "--http.address=off",
            ],
          });
          await waitForRefreshes(refresher, 1);
          const output = await stop(refresher);
          assertMatch(output, /kubeconfig/);
          const secret = await readSecret(stack, namespace, name);
          assertEquals(secret.decoded.token, provider.issued.at(-1));
          assertNotIncludes(output, stack.adminToken);
          assertNotIncludes(output, provider.clientSecret);
        } finally {
          await Deno.remove(home, { recursive: true });
        }
      }
    }),
});

Deno.test({
  name:
    "integration: names and keys the API would refuse are refused by the tool before any request",
  ignore,
  fn: inNamespace({ tokenTtlSeconds: 600 }, async ({ stack, provider, namespace, spawn }) => {
    for (
      const [flag, value, secret] of [
        ["--secret.name", "Bad_Name", { name: "Bad_Name", data: { token: "eA==" } }],
        ["--secret.key", "a/b", { name: "ok-name", data: { "a/b": "eA==" } }],
      ] as const
    ) {
      // What the real server says about it (straight to the API: kubectl checks keys itself).
      const response = await stack.request(`/api/v1/namespaces/${namespace}/secrets`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: secret.name },
          data: secret.data,
        }),
      });
      const status = await response.json();
      assertEquals([response.status, status.reason], [422, "Invalid"], JSON.stringify(status));

      // What the tool says, before sending anything.
      const requestsBefore = provider.requests;
      await using refresher = spawn([`${flag}=${value}`]);
      const { code, output } = await refresher.exited;
      assertEquals(code, 2, output);
      assertMatch(output, new RegExp(`Invalid value "${value}" for ${flag.slice(2)}`));
      assertEquals(provider.requests, requestsBefore);
    }
    const list = await stack.kubectl(["get", "secrets", "-n", namespace, "-o", "name"]);
    assertEquals(list.stdout.trim(), "");
  }),
});

Deno.test({
  name:
    "integration: the real server's token and client-certificate kubeconfig users are read without client-node; an exec user through it",
  ignore,
  fn: () =>
    withStack(async (stack) => {
      const namespace = await createNamespace(stack, "kubeconfig-reader");
      const home = await Deno.makeTempDir({ prefix: "ktr-home-" });
      try {
        // An exec user running a command that prints the admin token as an ExecCredential.
        const credential = JSON.stringify({
          apiVersion: "client.authentication.k8s.io/v1",
          kind: "ExecCredential",
          status: { token: stack.adminToken },
        });
        const exec = (await Deno.readTextFile(stack.kubeconfigPath)).replace(
          /^(\s+)token: .*$/m,
          (_, indent) =>
            `${indent}exec:\n${indent}  apiVersion: client.authentication.k8s.io/v1\n${indent}  command: /bin/sh\n${indent}  args: ["-c", ${
              JSON.stringify(`printf '%s' '${credential}'`)
            }]\n${indent}  interactiveMode: Never`,
        );
        await Deno.writeTextFile(`${home}/exec.kubeconfig`, exec);
        for (
          const [kubeconfig, viaClientNode] of [
            [stack.kubeconfigPath, false],
            [stack.clientCertKubeconfigPath, false],
            [`${home}/exec.kubeconfig`, true],
          ] as const
        ) {
          const connection = await kubeconfigConnection({ paths: [kubeconfig] });
          try {
            assertEquals(connection.description.includes("client-node"), viaClientNode, kubeconfig);
            const client = new KubeClient(connection);
            // A real authenticated request: the Secret is not there, which takes a 404.
            assertEquals(await client.getSecret(namespace, "absent"), null);
            const { allowed } = await client.reviewAccess({
              namespace,
              verb: "create",
              resource: "secrets",
            });
            assert(allowed, `${kubeconfig}: the admin may create Secrets`);
          } finally {
            connection.close();
          }
        }
      } finally {
        await Deno.remove(home, { recursive: true });
      }
    }),
});
