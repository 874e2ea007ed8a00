/**
 * What the watch costs: resident memory after 1,000 refreshes with the Secret watched, against
 * the same run without the watch (`secret.watch: false`, the loop as it was before), and the API
 * requests per steady-state refresh, against the real kube-apiserver of tests/stack and the
 * OpenID provider fixture.
 *
 * The measured process (this file run with `child`) is the real keepSecret() loop under the
 * in-cluster permission set, with a clock whose sleeps return at once, so 1,000 refreshes take
 * seconds; every one is still a token request and a server-side apply, and each apply comes
 * back through the watch as an event.
 *
 * Usage: `deno run --allow-all bench/watch.ts [--cycles=1000]`.
 *
 * @module
 */
import { KubeClient } from "../src/kube/client.ts";
import { inClusterConnection } from "../src/kube/connect.ts";
import { keepSecret } from "../src/keep.ts";
import { createClientCredentialsSource } from "../src/oidc/source.ts";
import type { Clock } from "../src/token.ts";

interface ChildResult {
  cycles: number;
  rssBytes: number;
  heapUsedBytes: number;
  events: number;
}

async function child(options: { cycles: number; watch: boolean }): Promise<void> {
  const env = (name: string) => Deno.env.get(name) ?? "";
  const connection = await inClusterConnection({
    host: env("KUBERNETES_SERVICE_HOST"),
    port: env("KUBERNETES_SERVICE_PORT"),
    dir: env("KTR_KUBE_SERVICEACCOUNTDIR"),
  });
  const client = new KubeClient(connection);
  const source = createClientCredentialsSource({
    tokenUrl: env("KTR_OIDC_TOKENURL"),
    clientId: env("KTR_OIDC_CLIENTID"),
    clientSecret: env("KTR_OIDC_CLIENTSECRET"),
  });
  let now = Date.now();
  let cycles = 0;
  const stop = new AbortController();
  const clock: Clock = {
    now: () => now,
    sleep: (ms) => {
      now += ms;
      return new Promise((resolve) => setTimeout(resolve, 0));
    },
  };
  let events = 0;
  await keepSecret({
    client,
    source,
    target: { namespace: env("KTR_SECRET_NAMESPACE"), name: env("KTR_SECRET_NAME"), key: "token" },
    schedule: { intervalMs: 500_000, renewFraction: 2 / 3 },
    signal: stop.signal,
    watch: options.watch,
    clock,
    observer: {
      onSuccess() {
        if (++cycles >= options.cycles) stop.abort();
      },
    },
    onStarted({ watch }) {
      if (watch) {
        const count = setInterval(() => {
          events = watch.stats.events;
          if (stop.signal.aborted) clearInterval(count);
        }, 50);
      }
    },
  });
  connection.close();
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 300));
  }
  const memory = Deno.memoryUsage();
  const result: ChildResult = {
    cycles,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    events,
  };
  console.log(JSON.stringify(result));
}

async function parent(cycles: number): Promise<void> {
  const { startKubeStack } = await import("../tests/stack/stack.ts");
  const { startOidcProvider, providerEnv } = await import("../tests/fixtures/oidc_provider.ts");
  const { refresherNamespace, inClusterEnv } = await import("../tests/fixtures/real_cluster.ts");
  await using stack = await startKubeStack();
  await using provider = await startOidcProvider({ tokenTtlSeconds: 3600 });
  const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  const runs: (ChildResult & { watch: boolean })[] = [];
  for (const watch of [false, true, false, true, false, true]) {
    const name = `bench-${watch ? "watch" : "nowatch"}-${crypto.randomUUID().slice(0, 8)}`;
    const { namespace, saDir } = await refresherNamespace(stack, name);
    const before = await applies(stack);
    const tokensBefore = provider.requests;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--v8-flags=--expose-gc",
        "--permission-set=incluster",
        new URL(import.meta.url).pathname,
        "child",
        String(cycles),
        String(watch),
      ],
      env: {
        ...inClusterEnv(stack, saDir),
        ...providerEnv(provider),
        KTR_SECRET_NAME: name,
        KTR_SECRET_NAMESPACE: namespace,
      },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    await Deno.remove(saDir, { recursive: true });
    if (!out.success) throw new Error(`the measured process exited ${out.code}`);
    const result = JSON.parse(new TextDecoder().decode(out.stdout).trim()) as ChildResult;
    const after = await applies(stack);
    const perRefresh = {
      api: (after - before) / result.cycles,
      token: (provider.requests - tokensBefore) / result.cycles,
    };
    runs.push({ watch, ...result });
    console.log(
      `${watch ? "with watch   " : "without watch"}: ${result.cycles} refreshes, RSS ${
        mib(result.rssBytes)
      } MiB, heap ${
        mib(result.heapUsedBytes)
      } MiB, ${result.events} watch events; per refresh: ${perRefresh.token} token request, ${
        perRefresh.api.toFixed(3)
      } Secret applies`,
    );
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  for (const watch of [false, true]) {
    const mine = runs.filter((r) => r.watch === watch);
    console.log(
      `median ${watch ? "with watch   " : "without watch"}: RSS ${
        mib(median(mine.map((r) => r.rssBytes)))
      } MiB, heap ${mib(median(mine.map((r) => r.heapUsedBytes)))} MiB over ${mine.length} runs`,
    );
  }
}

/** Secret applies the API server has counted so far. */
async function applies(stack: { request(path: string): Promise<Response> }): Promise<number> {
  const text = await (await stack.request("/metrics")).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (
      line.startsWith("apiserver_request_total{") && line.includes('resource="secrets"') &&
      line.includes('verb="APPLY"')
    ) {
      total += Number(line.split(" ").at(-1));
    }
  }
  return total;
}

if (import.meta.main) {
  if (Deno.args[0] === "child") {
    await child({ cycles: Number(Deno.args[1]), watch: Deno.args[2] === "true" });
  } else {
    const flag = Deno.args.find((a) => a.startsWith("--cycles="));
    await parent(flag ? Number(flag.slice("--cycles=".length)) : 1000);
  }
}
