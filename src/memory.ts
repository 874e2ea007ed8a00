/**
 * Keeps the V8 heap close to what the tool really holds, so the resident memory the kubelet sees
 * stays flat for weeks instead of rising in a sawtooth.
 *
 * Why: V8 moves a few KiB of short-lived objects into its old generation at every refresh, probe
 * and scrape (whatever happens to be alive when a young-generation collection runs), and collects
 * the old generation only once several MiB have piled up. Nothing is retained, but resident memory
 * climbs by up to 8 MiB before each collection and drops back after it (see the Footprint section
 * of README.md). A full collection every minute keeps that pile under a few hundred KiB, for about
 * 2 ms of CPU a minute on a heap of this size.
 *
 * It needs V8's `gc` function, which only `--v8-flags=--expose-gc` provides: the compile tasks,
 * the image and the release binaries set it; under a plain `deno run` nothing is collected by
 * hand and V8 does as it would anyway.
 *
 * @module
 */
import { startInterval } from "./timer.ts";

/** How often a full collection runs in a long-running process. */
export const COLLECT_EVERY_MS = 60_000;

/**
 * V8's full collection when the process exposes it (`--v8-flags=--expose-gc`).
 *
 * @returns The collection function, or undefined.
 *
 * @example
 * ```ts
 * import { exposedCollector } from "./memory.ts";
 * // `deno test` runs without --expose-gc.
 * console.assert(exposedCollector() === undefined);
 * ```
 */
export function exposedCollector(): (() => void) | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === "function" ? () => gc() : undefined;
}

/**
 * Runs `collect` every `everyMs` until `signal` aborts (`main()` aborts it as it returns, so the
 * timer never outlives the run). Without `collect` (no `--expose-gc`) it does nothing.
 *
 * @param collect A full collection, from {@linkcode exposedCollector}.
 * @param signal Stops the timer.
 * @param everyMs The period. Default {@linkcode COLLECT_EVERY_MS}.
 *
 * @example
 * ```ts
 * import { collectPeriodically } from "./memory.ts";
 * const stop = new AbortController();
 * let runs = 0;
 * collectPeriodically(() => runs++, stop.signal, 10);
 * await new Promise((resolve) => setTimeout(resolve, 55));
 * stop.abort();
 * console.assert(runs >= 2);
 * ```
 */
export function collectPeriodically(
  collect: (() => void) | undefined,
  signal: AbortSignal,
  everyMs: number = COLLECT_EVERY_MS,
): void {
  if (collect === undefined || signal.aborted) return;
  const timer = startInterval(everyMs, collect);
  signal.addEventListener("abort", () => timer.cancel(), { once: true });
}
