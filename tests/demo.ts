/**
 * `deno task demo`: the whole loop on one machine. Starts a real etcd and kube-apiserver, a real
 * OpenID provider issuing 6-second tokens, and the refresher in in-cluster mode with the Role
 * from deploy/base; then watches the Secret for 20 seconds and prints each new token's hash
 * (never the token), its expiry and how much of its lifetime was left when it was replaced.
 *
 * @module
 */
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { inClusterEnv, refresherNamespace } from "./fixtures/real_cluster.ts";
import { jwtExpiry } from "../src/oidc/mod.ts";
import { stackAvailable, startKubeStack } from "./stack/stack.ts";

const WATCH_SECONDS = 20;
const TOKEN_TTL_SECONDS = 6;

async function sha256Prefix(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest).slice(0, 6), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * Said before a build starts, so nobody wonders why the demo is busy: figures measured on a
 * 2-core machine (README's Development section repeats them).
 */
const STACK_BUILD_NOTICE =
  "The Kubernetes test stack is not built yet. Building it now (bash tests/stack/build.sh): " +
  "about 1 GB of Go modules and build cache, and about 10 minutes on 2 cores. " +
  "Later runs reuse it and start at once.";

if (!stackAvailable()) {
  console.log(STACK_BUILD_NOTICE);
  const build = await new Deno.Command("bash", {
    args: [new URL("./stack/build.sh", import.meta.url).pathname],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!build.success || !stackAvailable()) {
    console.error("Building the Kubernetes test stack failed; see the lines above");
    Deno.exit(1);
  }
}

console.log("Starting etcd and kube-apiserver on loopback ...");
await using stack = await startKubeStack();
console.log(`  API server ${stack.url} ready in ${(stack.startMs / 1000).toFixed(1)} s`);
await using provider = await startOidcProvider({ tokenTtlSeconds: TOKEN_TTL_SECONDS });
console.log(`  OpenID provider ${provider.issuer}, tokens live ${TOKEN_TTL_SECONDS} s`);
const { namespace, saDir } = await refresherNamespace(stack, "demo-token");
console.log(`  namespace ${namespace}, service account "refresher" with the deploy/base Role`);

await using refresher = spawnRefresher({
  env: {
    ...inClusterEnv(stack, saDir),
    KTR_SECRET_NAME: "demo-token",
    KTR_SECRET_NAMESPACE: namespace,
    ...providerEnv(provider),
    KTR_HTTP_ADDRESS: "off",
  },
});
console.log(`\nWatching Secret ${namespace}/demo-token for ${WATCH_SECONDS} s:\n`);
console.log("  time      token sha256   expires at   lifetime left when replaced");

let last: { token: string; exp?: number } | undefined;
const started = Date.now();
while (Date.now() - started < WATCH_SECONDS * 1000) {
  const res = await stack.request(`/api/v1/namespaces/${namespace}/secrets/demo-token`);
  if (res.ok) {
    const secret = await res.json() as { data?: { token?: string } };
    const token = secret.data?.token ? atob(secret.data.token) : undefined;
    if (token && token !== last?.token) {
      const now = Date.now();
      const exp = jwtExpiry(token);
      const left = last?.exp === undefined ? "" : `${(last.exp - now / 1000).toFixed(1)} s`;
      const expires = exp === undefined
        ? "unknown"
        : new Date(exp * 1000).toISOString().slice(11, 19);
      const time = new Date(now).toISOString().slice(11, 19);
      console.log(`  ${time}  ${await sha256Prefix(token)}   ${expires}     ${left}`);
      last = { token, exp };
    }
  } else {
    await res.body?.cancel();
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
}

refresher.kill("SIGTERM");
const { code } = await refresher.exited;
console.log(`\nRefresher stopped with exit code ${code}; ${provider.issued.length} tokens issued.`);
await Deno.remove(saDir, { recursive: true });
