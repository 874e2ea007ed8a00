/**
 * main.ts with a memory trace, for finding where a refresher's memory goes: the real `main()`
 * and process runtime, plus a JSON line on standard output every `KTR_BENCH_TRACE_MS` (default
 * 1,000) with `Deno.memoryUsage()` (V8 heap used and total, external memory, RSS). Under
 * `--v8-flags=--expose-gc` every tenth line comes after two full collections (`gc: true`), so
 * what is retained shows apart from garbage not yet collected.
 *
 * Run it like main.ts (`deno run --permission-set=incluster bench/traced_main.ts`); bench/soak.ts
 * does with `--trace`.
 *
 * @module
 */
import { main } from "../main.ts";
import { envName, KEYS } from "../src/config/mod.ts";
import { processRuntime } from "../src/runtime.ts";

function readEnvironment(): Record<string, string> {
  const names = [
    ...KEYS.map((definition) => envName(definition.key)),
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KUBECONFIG",
    "HOME",
  ];
  const env: Record<string, string> = {};
  for (const name of names) {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") continue;
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

const encoder = new TextEncoder();
const collect = (globalThis as { gc?: () => void }).gc;
let lines = 0;
const every = Number(Deno.env.get("KTR_BENCH_TRACE_MS") ?? "1000");
const timer = setInterval(async () => {
  const full = collect !== undefined && ++lines % 10 === 0;
  if (full) {
    collect!();
    await new Promise((resolve) => setTimeout(resolve, 0));
    collect!();
  }
  const m = Deno.memoryUsage();
  Deno.stdout.writeSync(encoder.encode(
    `${
      JSON.stringify({
        ms: Math.round(performance.now()),
        rss: m.rss,
        heapUsed: m.heapUsed,
        heapTotal: m.heapTotal,
        external: m.external,
        gc: full,
      })
    }\n`,
  ));
}, every);
const code = await main(Deno.args, processRuntime(readEnvironment()));
clearInterval(timer);
Deno.exit(code);
