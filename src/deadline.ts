/**
 * A per-request deadline that lets go of the request as soon as it is over.
 *
 * `AbortSignal.timeout()` keeps its timer, and with it everything the request's signal reaches,
 * alive until the timeout fires even when the request ended long before; over many refreshes
 * that holds memory for nothing. This deadline clears its timer and its link to the caller's
 * signal when disposed.
 *
 * @module
 */

/** A deadline for one request. Dispose it (`using`) once the request is over. */
export interface Deadline extends Disposable {
  /** Aborts when the time is up or the caller's signal aborts. */
  readonly signal: AbortSignal;
  /** True when the time ran out (not when the caller aborted). */
  readonly expired: boolean;
}

/**
 * Starts a deadline.
 *
 * @param timeoutMs Milliseconds until it expires.
 * @param parent The caller's signal (shutdown); its abort is passed on.
 * @returns The deadline.
 *
 * @example
 * ```ts
 * import { startDeadline } from "./deadline.ts";
 * using deadline = startDeadline(10_000);
 * console.assert(!deadline.signal.aborted && !deadline.expired);
 * ```
 */
export function startDeadline(timeoutMs: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new DOMException("The deadline passed", "TimeoutError"));
  }, timeoutMs);
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onParentAbort();
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  return {
    signal: controller.signal,
    get expired() {
      return expired;
    },
    [Symbol.dispose]() {
      clearTimeout(timer);
      parent?.removeEventListener("abort", onParentAbort);
    },
  };
}
