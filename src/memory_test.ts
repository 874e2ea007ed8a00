import { assert, assertEquals } from "../tests/assert.ts";
import { collectPeriodically, exposedCollector } from "./memory.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("collectPeriodically runs the collection on its period and stops at abort", async () => {
  const stop = new AbortController();
  let runs = 0;
  collectPeriodically(() => runs++, stop.signal, 20);
  await sleep(110);
  assert(runs >= 3, `at least 3 collections in 110 ms at a 20 ms period, got ${runs}`);
  assert(runs <= 6, `at most 6 collections in 110 ms at a 20 ms period, got ${runs}`);
  stop.abort();
  const atStop = runs;
  await sleep(60);
  assertEquals(runs, atStop, "no collection after the abort");
});

Deno.test("collectPeriodically does nothing without a collector or once stopped", async () => {
  // Neither starts a timer: nothing runs, now or later.
  collectPeriodically(undefined, new AbortController().signal, 5);
  let runs = 0;
  collectPeriodically(() => runs++, AbortSignal.abort(), 5);
  await sleep(30);
  assertEquals(runs, 0);
});

Deno.test("exposedCollector is V8's gc only when the process exposes it", () => {
  const global = globalThis as { gc?: unknown };
  const saved = global.gc;
  try {
    // `deno test` runs without --expose-gc.
    assertEquals(exposedCollector(), undefined);
    let calls = 0;
    global.gc = () => calls++;
    const collect = exposedCollector();
    assert(collect !== undefined);
    collect();
    assertEquals(calls, 1);
  } finally {
    if (saved === undefined) delete global.gc;
    else global.gc = saved;
  }
});
