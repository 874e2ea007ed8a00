/**
 * The `deno bundle` output is self-contained: started with an empty Deno cache, no reachable
 * package registry and `--cached-only`, it runs in-cluster and with a kubeconfig without
 * downloading a single package. Built here by deno.json's `bundle` task (output moved to a
 * temporary folder), the way bench/footprint.ts builds it.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { buildBundle, type Bundle } from "../bench/deps.ts";
import { createFakeKube } from "./fixtures/fake_kube.ts";
import { startFakeCluster } from "./fixtures/fake_cluster.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { makeTestTls } from "./fixtures/tls.ts";

const ROOT = new URL("../", import.meta.url);

/** Builds the bundle once per test file; the folder is removed at the end of each test. */
async function bundle(): Promise<Bundle & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "ktr-bundle-", dir: ROOT.pathname });
  const built = await buildBundle(new URL(`${dir}/`, "file://"));
  assert(built, "deno.json has a bundle task");
  return {
    ...built,
    entry: new URL(built.entry, ROOT).pathname,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * A cold start: an empty DENO_DIR, an npm registry that refuses every connection, and
 * `--cached-only`, so any package the bundle still needed would fail the start instead of being
 * fetched quietly.
 */
async function coldCache(): Promise<{ env: Record<string, string> } & AsyncDisposable> {
  const denoDir = await Deno.makeTempDir({ prefix: "ktr-deno-dir-" });
  return {
    env: { DENO_DIR: denoDir, NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/" },
    async [Symbol.asyncDispose]() {
      await Deno.remove(denoDir, { recursive: true });
    },
  };
}

const COLD = ["--cached-only"];

Deno.test("the bundle imports nothing but its own files and Node built-ins", async () => {
  await using built = await bundle();
  for (const { path } of built.files) {
    const text = await Deno.readTextFile(new URL(path, ROOT));
    // Static imports start a line in esbuild's output; dynamic ones are written with double
    // quotes (the single-quoted `import('...')` left in the text are JSDoc type comments).
    const specifiers = [
      ...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)"/gm),
      ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
    ].map((m) => m[1]);
    const foreign = specifiers.filter((s) => !s.startsWith("./") && !s.startsWith("node:"));
    assertEquals(foreign, [], `${path} imports packages`);
  }
});

Deno.test("a cold cache and no registry: the bundle starts in-cluster and with a kubeconfig", async () => {
  await using built = await bundle();
  await using tls = await makeTestTls();
  const fake = createFakeKube();
  await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });

  {
    await using cache = await coldCache();
    await using version = spawnRefresher({
      entrypoint: built.entry,
      denoFlags: COLD,
      env: cache.env,
      args: ["--version"],
    });
    const { code, output } = await version.exited;
    assertEquals(code, 0, output);
    assertMatch(output.trim(), /^\d+\.\d+\.\d+/);
  }

  {
    await using cache = await coldCache();
    await using inCluster = spawnRefresher({
      entrypoint: built.entry,
      denoFlags: COLD,
      env: { ...cache.env, ...cluster.env, ...providerEnv(provider) },
      args: ["--secret.name=in-cluster", "--secret.namespace=team-a", "--once"],
    });
    const { code, output } = await inCluster.exited;
    assertEquals(code, 0, output);
    assertMatch(output, /Token refreshed .*action=created/);
    assertMatch(output, /service account in /);
    assertNotIncludes(output, "Download");
  }

  {
    await using cache = await coldCache();
    const kubeconfig = `${tls.dir}/kubeconfig.yaml`;
    const server = `https://127.0.0.1:${cluster.env.KUBERNETES_SERVICE_PORT}`;
    await Deno.writeTextFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{
          name: "c",
          cluster: { server, "certificate-authority-data": btoa(tls.caPem) },
        }],
        users: [{ name: "u", user: { token: cluster.saToken } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    await using withKubeconfig = spawnRefresher({
      entrypoint: built.entry,
      permissionSet: "kubeconfig",
      denoFlags: COLD,
      env: { ...cache.env, KUBECONFIG: kubeconfig, HOME: tls.dir, ...providerEnv(provider) },
      args: ["--secret.name=kubeconfig", "--secret.namespace=team-a", "--once"],
    });
    const { code, output } = await withKubeconfig.exited;
    assertEquals(code, 0, output);
    assertMatch(output, /Token refreshed .*action=created/);
    assertMatch(output, /kubernetes="kubeconfig /);
    assertNotIncludes(output, "Download");
  }
  assertEquals([...fake.secrets.keys()].sort(), ["team-a/in-cluster", "team-a/kubeconfig"]);
});
