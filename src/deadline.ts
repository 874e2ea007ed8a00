/**
 * A per-request deadline that lets go of the request as soon as it is over: the one deadline
 * helper of the token source and the Kubernetes client.
 *
 * A bare `AbortSignal.timeout()` as the request's signal would keep everything listening to it,
 * and with that everything the request reaches, alive until the timeout fires even when the
 * request ended long before; over many refreshes that holds memory for nothing. This deadline
 * cancels its timer (src/timer.ts) and drops its link to the caller's signal when disposed.
 *
 * @module
 */
import { startTimer } from "./timer.ts";

/** A deadline for one request. Dispose it (`using`) once the request is over. */
export interface Deadline extends Disposable {
  /** Aborts when the time is up or the caller's signal aborts. */
  readonly signal: AbortSignal;
  /** True when the time ran out (not when the caller aborted). */
  readonly expired: boolean;
  /**
   * Settles with `work`, or rejects with the abort reason as soon as the deadline's signal
   * aborts, whichever comes first, even if `work` ignores the signal. `work` is always observed,
   * even when the signal had aborted before: it has started and will reject, and an unobserved
   * rejection ends the process (shutdown during a file read did that).
   *
   * @param work The running request.
   * @returns What `work` gives.
   */
  settle<T>(work: Promise<T>): Promise<T>;
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
  const timer = startTimer(timeoutMs, () => {
    expired = true;
    controller.abort(new DOMException("The deadline passed", "TimeoutError"));
  });
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onParentAbort();
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  return {
    signal: controller.signal,
    get expired() {
      return expired;
    },
    settle<T>(work: Promise<T>): Promise<T> {
      return unlessAborted(work, controller.signal);
    },
    [Symbol.dispose]() {
      timer.cancel();
      parent?.removeEventListener("abort", onParentAbort);
    },
  };
}

/**
 * Settles as `work` does, or rejects with the signal's reason as soon as it aborts, whichever
 * comes first: for work that does not always settle on its own when its request is aborted.
 *
 * The abort listener goes as soon as `work` settles. Racing many pieces of work against one
 * long-lived abort promise instead would leave a reaction on it per piece, each keeping its
 * result reachable until the abort (the watch did, about 600 bytes per change of the Secret).
 *
 * @param work The promise.
 * @param signal Ends the wait.
 * @returns The result of `work`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unlessAborted } from "./deadline.ts";
 *
 * const stop = new AbortController();
 * const never = new Promise<never>(() => {});
 * const waiting = unlessAborted(never, stop.signal);
 * stop.abort(new Error("stopped"));
 * await assert.rejects(waiting, /stopped/);
 * ```
 */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    // Handled even when the abort came first: its rejection is not left unhandled.
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
