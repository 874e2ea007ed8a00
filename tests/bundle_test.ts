/**
 * The `deno bundle` output, run the way README documents it for a pod, downloads no package at
 * all: started with an empty Deno cache, a package registry that refuses every connection and
 * `--cached-only`, it prints its version and runs in-cluster, and its peak memory on that cold
 * start stays within the Deployment's limit. With a kubeconfig of a token user it runs too (the
 * tool reads those itself); an exec user needs `@kubernetes/client-node` from npm, which
 * `--no-npm` refuses at once with a message that says so instead of a download or a stall. Built by deno.json's `bundle` task (output moved to a
 * temporary folder), the way bench/footprint.ts builds it.
 *
 * Why not a bundle with every package inside (`--code-splitting` without `--external`), measured
 * on this machine: it needs no download in either mode, but Deno analyses the 17 MiB
 * client-node chunk at every start with an empty cache, as in a fresh container, peaking at
 * 209 MiB RSS (the Deployment's limit is 96 MiB), and holds 77 MiB instead of 64 MiB at a steady
 * pace. The release binary is the tool for exec and auth-provider kubeconfig users.
 */
import { parse } from "yaml";
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { buildBundle, type Bundle } from "../bench/deps.ts";
import { createFakeKube } from "./fixtures/fake_kube.ts";
import { startFakeCluster } from "./fixtures/fake_cluster.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { makeTestTls } from "./fixtures/tls.ts";

const ROOT = new URL("../", import.meta.url);

/** The command README's Building section gives for a pod, as words. */
function documentedInClusterRun(): string[] {
  const readme = Deno.readTextFileSync(new URL("README.md", ROOT));
  const building = readme.slice(readme.indexOf("## Building"), readme.indexOf("## Development"));
  const command = building.match(/`(deno run [^`]*dist\/kube-token-refresher\.js)`/)?.[1];
  assert(command, "README's Building section shows how to run the bundle");
  return command.split(/\s+/);
}

/** Builds the bundle into a temporary folder of the repository, removed on dispose. */
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
 * `--cached-only`, so any package the bundle still wanted would fail the start instead of being
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

/** Peak resident memory (VmHWM) of a process in KiB, from /proc. */
async function peakRssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = status.match(/^VmHWM:\s+(\d+)\s+kB/m);
  assert(match, "VmHWM in /proc/PID/status");
  return Number(match[1]);
}

/** The memory limit of the refresher container in deploy/base, in KiB. */
function deploymentLimitKiB(): number {
  const deployment = parse(
    Deno.readTextFileSync(new URL("deploy/base/deployment.yaml", ROOT)),
  ) as {
    spec: { template: { spec: { containers: { resources: { limits: { memory: string } } }[] } } };
  };
  const limit = deployment.spec.template.spec.containers[0].resources.limits.memory;
  const mi = limit.match(/^(\d+)Mi$/)?.[1];
  assert(mi, `memory limit ${limit}`);
  return Number(mi) * 1024;
}

Deno.test("the bundle as documented for a pod: a cold cache, no registry, no download, within the memory limit", async () => {
  const words = documentedInClusterRun();
  assertEquals(words.slice(0, 2), ["deno", "run"]);
  assertEquals(words.at(-1), "dist/kube-token-refresher.js");
  const flags = words.slice(2, -1);
  assert(flags.includes("--no-npm"), `README's flags: ${flags.join(" ")}`);
  // spawnRefresher adds --quiet and the permission set itself; the rest is passed as given.
  assert(flags.includes("--permission-set=incluster"), `README's flags: ${flags.join(" ")}`);
  const extra = [
    ...flags.filter((f) => f !== "--quiet" && !f.startsWith("--permission-set=")),
    "--cached-only",
  ];

  await using built = await bundle();
  await using tls = await makeTestTls();
  const fake = createFakeKube();
  await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
  await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });

  {
    await using cache = await coldCache();
    await using version = spawnRefresher({
      entrypoint: built.entry,
      denoFlags: extra,
      env: cache.env,
      args: ["--version"],
    });
    const { code, output } = await version.exited;
    assertEquals(code, 0, output);
    assertMatch(output.trim(), /^\d+\.\d+\.\d+$/);
  }

  {
    await using cache = await coldCache();
    await using inCluster = spawnRefresher({
      entrypoint: built.entry,
      denoFlags: extra,
      env: { ...cache.env, ...cluster.env, ...providerEnv(provider) },
      args: ["--secret.name=api-token", "--secret.namespace=team-a", "--http.address=off"],
    });
    await inCluster.waitForOutput(/Token refreshed .*action=created/);
    const peak = await peakRssKiB(inCluster.pid);
    inCluster.kill("SIGTERM");
    const { code, output } = await inCluster.exited;
    assertEquals(code, 0, output);
    assertMatch(output, /service account in /);
    assertNotIncludes(output, "Download");
    const limit = deploymentLimitKiB();
    console.log(
      `bundle, cold start in-cluster: peak RSS ${(peak / 1024).toFixed(0)} MiB (limit ${
        limit / 1024
      } MiB)`,
    );
    assert(peak < limit, `peak RSS ${peak} KiB over the Deployment's limit ${limit} KiB`);
  }
  assertEquals([...fake.secrets.keys()], ["team-a/api-token"]);
});

Deno.test("with a kubeconfig the bundle under --no-npm reads token users itself, and stops at once for an exec user", async () => {
  await using built = await bundle();
  await using cache = await coldCache();
  const dir = await Deno.makeTempDir({ prefix: "ktr-kubeconfig-" });
  try {
    const run = async (user: Record<string, unknown>) => {
      await Deno.writeTextFile(
        `${dir}/kubeconfig`,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:9" } }],
          users: [{ name: "u", user }],
          contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
          "current-context": "x",
        }),
      );
      await using refresher = spawnRefresher({
        entrypoint: built.entry,
        permissionSet: "kubeconfig",
        denoFlags: ["--no-npm", "--cached-only"],
        env: {
          ...cache.env,
          KUBECONFIG: `${dir}/kubeconfig`,
          HOME: dir,
          // A closed loopback port: the token request fails at once, nothing leaves the machine.
          ...providerEnv({ tokenUrl: "http://127.0.0.1:9/t", clientId: "a", clientSecret: "b" }),
        },
        args: ["--secret.name=a", "--secret.namespace=b", "--once"],
      });
      const started = Date.now();
      const result = await refresher.exited;
      assert(Date.now() - started < 10_000, "no stall");
      return result;
    };
    // A token user is read without @kubernetes/client-node: the run gets as far as the refresh.
    const token = await run({ token: "t" });
    assertEquals(token.code, 1, token.output);
    assert(!/npm specifiers were requested/.test(token.output), token.output);
    assertMatch(token.output, /Refreshing once/);
    // An exec user needs client-node, which the bundle leaves out: Deno says so at once.
    const exec = await run({
      exec: { apiVersion: "client.authentication.k8s.io/v1", command: "true" },
    });
    assertEquals(exec.code, 1, exec.output);
    assertMatch(exec.output, /npm specifiers were requested; but --no-npm is specified/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
