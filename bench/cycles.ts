/**
 * The measured process of the footprint bench: the real refresh loop, wired as main.ts wires it
 * (environment -> config -> logging -> in-cluster connection -> token source, client, writer ->
 * `runRefreshLoop`), with one difference: a {@linkcode Clock} whose sleep returns at once, so
 * thousands of refresh cycles run in seconds. Every cycle is still real work with real I/O: a
 * token request over HTTP and a Secret write over TLS to the loopback servers of the parent
 * (bench/footprint.ts), the service account token read from its file, a log line formatted and
 * written to standard error, the status behind /healthz, /readyz and /metrics updated; and
 * before every periodic sample those three endpoints are asked once, like a kubelet and a
 * Prometheus scrape would.
 *
 * It imports main.ts too (where `import.meta.main` is false, so nothing starts): the process
 * holds the same module graph as the real one.
 *
 * Usage (the parent runs it under `--permission-set=incluster`): `cycles.ts '<options as JSON>'`,
 * configured like the deployment, by `KTR_*` variables, plus `KUBERNETES_SERVICE_HOST` and
 * `KUBERNETES_SERVICE_PORT`. It writes one JSON object per line to standard output: a `sample`
 * once configured, one after the first write, one every `every` cycles, then `done`.
 *
 * @module
 */
import "../main.ts";
import { parseCommandLine, VERSION } from "../src/cli.ts";
import { envName, KEYS } from "../src/config/mod.ts";
import { configureLogging } from "../src/log.ts";
import { connect } from "../src/kube/connect.ts";
import { KubeClient } from "../src/kube/client.ts";
import { SecretWriter } from "../src/kube/secret.ts";
import { tokenSourceFromConfig } from "../src/oidc/mod.ts";
import { runRefreshLoop } from "../src/refresh.ts";
import type { Clock } from "../src/token.ts";
import { createHealthHandler } from "../src/server.ts";
import { RefreshStatus } from "../src/status.ts";
import { emit, sample, wait } from "./sample.ts";

/** Options of one harness run, passed as the first argument. */
export interface CyclesOptions {
  /** Refresh cycles to run. */
  cycles: number;
  /** A memory sample every this many cycles. */
  every: number;
  /** Timeout in ms of each token and API request; default: theirs (10 s). */
  timeoutMs?: number;
  /**
   * Before each periodic sample, pause this long (ms) so the timeout timers of earlier requests
   * have fired and what they kept alive can be collected; default 0. The sample then shows
   * what the process retains, not how far behind its timers are.
   */
  drainMs?: number;
}

/** The environment as main.ts reads it: the variables of the configuration keys, by name. */
function readEnvironment(): Record<string, string> {
  const names = [
    ...KEYS.map((definition) => envName(definition.key)),
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
  ];
  const env: Record<string, string> = {};
  for (const name of names) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

async function run(options: CyclesOptions): Promise<void> {
  const env = readEnvironment();
  const parsed = await parseCommandLine([], env, { readTextFile: Deno.readTextFile });
  if (parsed.kind !== "run") throw new Error(`Expected a run configuration, got ${parsed.kind}`);
  const { config } = parsed;
  configureLogging({ level: config.log.level, format: config.log.format });
  const connection = await connect(env, { serviceAccountDir: config.kube.serviceAccountDir });
  const timeouts = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
  const source = tokenSourceFromConfig(config.oidc, timeouts);
  const writer = new SecretWriter(new KubeClient(connection, timeouts), config.secret);
  const status = new RefreshStatus({ version: VERSION, clock: { now: () => Date.now() } });
  const health = createHealthHandler(status);
  const probe = async () => {
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      await health(new Request(`http://127.0.0.1${path}`)).text();
    }
  };
  await sample("started", 0);

  const stop = new AbortController();
  let cycles = 0;
  let failures = 0;
  let writerRequests = 0;
  let due: "first-write" | "cycles" | undefined;
  // The loop's only waits are its sleeps: they end at once, except where a sample is due.
  const clock: Clock = {
    now: () => Date.now(),
    async sleep() {
      if (due === undefined) return;
      const label = due;
      due = undefined;
      if (label === "cycles") {
        await probe();
        if ((options.drainMs ?? 0) > 0) await wait(options.drainMs ?? 0);
      }
      await sample(label, cycles);
    },
  };
  await runRefreshLoop({
    source,
    writer,
    target: config.secret,
    schedule: { intervalMs: config.interval * 1000, renewFraction: config.renew.percent / 100 },
    signal: stop.signal,
    clock,
    observer: {
      onSuccess(event) {
        status.onSuccess(event);
        const { result } = event;
        cycles++;
        writerRequests += result.write.requests;
        if (cycles === 1) due = "first-write";
        if (cycles % options.every === 0) due = "cycles";
        if (cycles >= options.cycles) stop.abort();
      },
      onFailure(event) {
        status.onFailure(event);
        const { error } = event;
        failures++;
        emit({
          event: "failure",
          cycles,
          error: error instanceof Error ? error.message : String(error),
        });
        // The bench measures the steady state; a failing loop would only back off and mislead.
        if (failures >= 5) stop.abort();
      },
    },
  });
  connection.close();
  emit({ event: "done", cycles, failures, writerRequests, ms: performance.now() });
}

if (import.meta.main) {
  await run(JSON.parse(Deno.args[0] ?? "{}") as CyclesOptions);
  // Request timers may still be pending; they hold nothing worth waiting for.
  Deno.exit(0);
}
