/**
 * What the measured processes of the footprint bench (bench/cycles.ts, bench/floor.ts) report:
 * JSON lines on standard output. This module imports nothing, so the runtime floor stays bare.
 *
 * @module
 */

/** One line of output of bench/cycles.ts and bench/floor.ts. */
export type CyclesEvent =
  | {
    event: "sample";
    /** `started` (configured, nothing sent yet), `first-write`, `cycles` or `idle`. */
    label: string;
    /** Refresh cycles completed. */
    cycles: number;
    /** Milliseconds since the process started (`performance.now()`). */
    ms: number;
    /** Bytes, from `Deno.memoryUsage()`, after a full GC when the process has `--expose-gc`. */
    rss: number;
    heapUsed: number;
    heapTotal: number;
    external: number;
    /** Whether full GCs ran just before. */
    gc: boolean;
  }
  | {
    event: "done";
    cycles: number;
    failures: number;
    /** API requests the writer reported, summed over all cycles. */
    writerRequests: number;
    ms: number;
  }
  | { event: "failure"; cycles: number; error: string };

const encoder = new TextEncoder();

/**
 * Writes one event as a line to standard output.
 *
 * @param event The event.
 */
export function emit(event: CyclesEvent): void {
  const bytes = encoder.encode(`${JSON.stringify(event)}\n`);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/**
 * Emits a memory sample. When `--v8-flags=--expose-gc` made `gc()` available, it first collects
 * twice with a turn of the event loop between: one collection finds the dead ArrayBuffers, but
 * their memory is only released by a later one.
 *
 * @param label What moment this is.
 * @param cycles Cycles completed.
 * @returns A promise that resolves once the sample is written.
 */
export async function sample(label: string, cycles: number): Promise<void> {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect) {
    collect();
    await wait(0);
    collect();
  }
  const memory = Deno.memoryUsage();
  emit({
    event: "sample",
    label,
    cycles,
    ms: performance.now(),
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
    gc: collect !== undefined,
  });
}

/**
 * Waits `ms` with a real timer.
 *
 * @param ms Milliseconds.
 * @returns A promise that resolves after the wait.
 */
export function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
