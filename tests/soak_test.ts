/**
 * The short form of the soak bench (bench/soak.ts): the real in-cluster process, started as
 * deployed, refreshing about once a second for two minutes against the real provider and the
 * API stand-in, probed like a kubelet. Figures are printed; the assertions are bounds far beyond
 * the targets, so only a crash, a leak of tens of KiB per refresh or a process many times too
 * slow fails it, not a noisy machine. A traced form reads the V8 heap after full collections,
 * which garbage does not blur: there a few hundred bytes kept per refresh show. The long form (`deno task bench --soak --minutes=50`) is
 * where the targets are judged.
 */
import { assert, assertEquals } from "./assert.ts";
import { compileV8Flags, formatSoak, runSoak, SOAK_TARGET } from "../bench/soak.ts";
import { fitLine } from "../bench/stats.ts";

const MiB = 1024 * 1024;
const MINUTES = 2;

Deno.test("soak, short form: the in-cluster process stays up, flat and cheap", async () => {
  const report = await runSoak({
    minutes: MINUTES,
    sampleSeconds: 5,
    tokenSeconds: 2,
    modes: ["incluster"],
    starts: 3,
    v8Flags: compileV8Flags(),
    trace: false,
  });
  console.log(formatSoak(report));
  const [run] = report.runs;
  assertEquals(
    [run.exitCode, run.probeFailures],
    [0, 0],
    "exit code after SIGTERM, probe failures",
  );
  // About one refresh a second; a loaded machine may fall behind, a stalled loop falls far behind.
  assert(run.refreshes >= MINUTES * 60 * 0.4, `only ${run.refreshes} refreshes`);
  // One write a refresh; the watch reconnecting and aggregated Events add a few more.
  assert(run.tokenPerRefresh <= 1.1 && run.apiPerRefresh <= 1.2, "requests per refresh");
  const end = run.samples.at(-1)!.rss / MiB;
  assert(end <= 2 * SOAK_TARGET.rssMiB, `RSS ${end.toFixed(1)} MiB at the end`);
  // The target is 0.2 MiB per 1,000; two minutes are too short to judge that, but a retained
  // 64 KiB buffer per refresh (64 MiB per 1,000) shows plainly.
  assert(
    run.slopeMiBPer1000 <= 40,
    `RSS grows by ${run.slopeMiBPer1000.toFixed(1)} MiB per 1,000 refreshes`,
  );
  assert(
    run.cpuMsPerRefresh <= 5 * SOAK_TARGET.cpuMsPerRefresh,
    `${run.cpuMsPerRefresh.toFixed(2)} ms of CPU per refresh`,
  );
  assert(
    run.startMedianMs !== undefined && run.startMedianMs <= 5 * SOAK_TARGET.firstWriteMs,
    `${run.startMedianMs?.toFixed(0)} ms from spawn to first write`,
  );
});

Deno.test("soak, traced: the heap keeps nothing per refresh once full collections have run", async () => {
  // bench/traced_main.ts runs main() and, with --expose-gc (in the compile flags), reports the
  // V8 heap after two full collections every 10 s: what is still reachable, garbage aside.
  assert(compileV8Flags().includes("--expose-gc"), "the compile flags expose V8's gc");
  const report = await runSoak({
    minutes: 1.5,
    sampleSeconds: 5,
    tokenSeconds: 2,
    modes: ["incluster"],
    starts: 0,
    v8Flags: compileV8Flags(),
    trace: true,
  });
  const [run] = report.runs;
  assertEquals(run.exitCode, 0, "exit code after SIGTERM");
  // The first 30 s warm up (feedback vectors, connection pools); after that a flat heap.
  const retained = run.trace.filter((t) => t.gc && t.ms >= 30_000);
  assert(retained.length >= 4, `only ${retained.length} traced collections`);
  const line = fitLine(retained.map((t) => [t.refreshes, t.heapUsed] as const));
  const perRefresh = line.slope;
  console.log(
    `heap after full collections: ${
      retained.map((t) => `${(t.heapUsed / 1024).toFixed(0)} KiB at ${t.refreshes}`).join(", ")
    }; ${perRefresh.toFixed(0)} bytes per refresh`,
  );
  // A watch that kept each event's text (about 1.4 KiB a refresh) failed this; nothing retained
  // measures within a few hundred bytes of zero.
  assert(perRefresh <= 512, `the heap keeps ${perRefresh.toFixed(0)} bytes per refresh`);
});
