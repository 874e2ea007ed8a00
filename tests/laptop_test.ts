/**
 * The downloadable binary is the kubeconfig build: deno.json's `kubeconfig` permission set, which
 * the release workflow bakes into every release binary (tests/release_test.ts checks that). The
 * binary itself cannot be built here, so main.ts runs under exactly that set, `deno run
 * --permission-set=kubeconfig`, against the real kube-apiserver with the three kinds of kubeconfig
 * user a laptop has: a bearer token, a client certificate, and an exec plugin (which is why the
 * set grants `run`). The in-cluster set, the container image's, refuses the same kubeconfig.
 */
import { parse } from "yaml";
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { readSecret } from "./fixtures/real_cluster.ts";
import {
  createNamespace,
  type KubeStack,
  processRssKiB,
  stackTestIgnore,
  startKubeStack,
} from "./stack/stack.ts";

const ignore = stackTestIgnore();

interface Kubeconfig {
  clusters: { name: string; cluster: Record<string, string> }[];
  users: { name: string; user: Record<string, unknown> }[];
  contexts: { name: string; context: Record<string, string> }[];
  "current-context": string;
}

/**
 * A kubeconfig whose user is an exec plugin: a shell script that prints the stack's admin token
 * as an ExecCredential and notes each call in `calls`.
 */
async function execPluginKubeconfig(stack: KubeStack, dir: string) {
  const admin = parse(await Deno.readTextFile(stack.kubeconfigPath)) as Kubeconfig;
  const plugin = `${dir}/credential-plugin`;
  const calls = `${dir}/calls`;
  const credential = JSON.stringify({
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status: { token: stack.adminToken },
  });
  await Deno.writeTextFile(
    plugin,
    `#!/bin/sh\necho called >>'${calls}'\ncat <<'EOF'\n${credential}\nEOF\n`,
    { mode: 0o755 },
  );
  const kubeconfig: Kubeconfig = {
    ...admin,
    users: [{
      name: "exec-user",
      user: {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: plugin,
          interactiveMode: "Never",
        },
      },
    }],
    contexts: [{ name: "exec", context: { cluster: admin.clusters[0].name, user: "exec-user" } }],
    "current-context": "exec",
  };
  const path = `${dir}/exec.kubeconfig`;
  await Deno.writeTextFile(path, JSON.stringify(kubeconfig));
  return {
    path,
    calls: async () => (await Deno.readTextFile(calls).catch(() => "")).split("\n").length - 1,
  };
}

Deno.test({
  name:
    "laptop build: under the kubeconfig permission set, token, client-certificate and exec-plugin users work",
  ignore,
  fn: async () => {
    await using stack = await startKubeStack();
    await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });
    const namespace = await createNamespace(stack, "laptop");
    const home = await Deno.makeTempDir({ prefix: "ktr-laptop-" });
    try {
      const exec = await execPluginKubeconfig(stack, home);
      const rss: Record<string, number> = {};
      for (
        const [name, kubeconfig] of [
          ["token-user", stack.kubeconfigPath],
          ["cert-user", stack.clientCertKubeconfigPath],
          ["exec-user", exec.path],
        ]
      ) {
        await using refresher = spawnRefresher({
          permissionSet: "kubeconfig",
          env: {
            KUBECONFIG: kubeconfig,
            HOME: home,
            PATH: "/usr/bin:/bin",
            ...providerEnv(provider),
          },
          args: [`--secret.namespace=${namespace}`, `--secret.name=${name}`, "--http.address=off"],
        });
        await refresher.waitForOutput(/Token refreshed/, 30_000);
        rss[name] = (await processRssKiB(refresher.pid)) ?? NaN;
        refresher.kill("SIGTERM");
        const { code, output } = await refresher.exited;
        assertEquals(code, 0, output);
        assertMatch(output, /kubernetes="kubeconfig /);
        assertNotIncludes(output, stack.adminToken);
        assertNotIncludes(output, provider.clientSecret);
        const secret = await readSecret(stack, namespace, name);
        assertEquals(secret.decoded.token, provider.issued.at(-1));
      }
      assert((await exec.calls()) >= 1, "the exec plugin was run");
      const mib = (kib: number) => (kib / 1024).toFixed(0);
      console.log(
        `kubeconfig mode RSS after the first write: token ${mib(rss["token-user"])} MiB, ` +
          `client certificate ${mib(rss["cert-user"])} MiB, exec plugin ${
            mib(rss["exec-user"])
          } MiB`,
      );
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "the in-cluster build (the container image's) refuses a kubeconfig with exit 3 and says what to use",
  fn: async () => {
    const home = await Deno.makeTempDir({ prefix: "ktr-laptop-" });
    try {
      await using refresher = spawnRefresher({
        permissionSet: "incluster",
        env: {
          KUBECONFIG: `${home}/kubeconfig`,
          HOME: home,
          ...providerEnv({
            tokenUrl: "https://auth.example.com/token",
            clientId: "a",
            clientSecret: "b",
          }),
        },
        args: ["--secret.namespace=a", "--secret.name=b", "--http.address=off"],
      });
      const { code, output } = await refresher.exited;
      assertEquals(code, 3, output);
      assertMatch(output, /in-cluster build/);
      assertMatch(output, /release binary/);
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});
