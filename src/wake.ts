/**
 * Wake-ups of the refresh loop: its timer, or something the watch saw.
 *
 * @module
 */
import type { Drift } from "./kube/state.ts";
import { startTimer } from "./timer.ts";

/** Why the refresh loop woke up. */
export type WakeReason =
  /** Its timer ran out: a scheduled refresh or retry. */
  | { readonly kind: "timer" }
  /** The Secret drifted: write the token in hand back. */
  | { readonly kind: "repair"; readonly drift: Exclude<Drift, { kind: "none" }> }
  /** An operator asked for a new token (`ktr.appuio.ch/refresh-now`). */
  | { readonly kind: "refresh-now"; readonly value: string };

/**
 * Wakes the refresh loop early. A wake-up fired while the loop is busy is kept until the loop
 * waits again; a refresh-now request wins over a repair (its write repairs too).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Wake } from "./wake.ts";
 * const wake = new Wake();
 * wake.fire({ kind: "refresh-now", value: "1" });
 * const reason = await wake.wait(60_000, new AbortController().signal);
 * assert.equal(reason.kind, "refresh-now");
 * ```
 */
export class Wake {
  #pending: WakeReason | undefined;
  #resolve: ((reason: WakeReason) => void) | undefined;

  /**
   * Wakes the loop now, or as soon as it waits.
   *
   * @param reason Why.
   */
  fire(reason: WakeReason): void {
    if (this.#resolve !== undefined) {
      const resolve = this.#resolve;
      this.#resolve = undefined;
      resolve(reason);
      return;
    }
    if (this.#pending?.kind === "refresh-now" && reason.kind === "repair") return;
    this.#pending = reason;
  }

  /**
   * Waits for a wake-up, the timer, or `signal`.
   *
   * @param ms Timer length (clamped to 0).
   * @param signal Ends the wait early (shutdown); the reason is then `timer`.
   * @returns Why the wait ended.
   */
  wait(ms: number, signal: AbortSignal): Promise<WakeReason> {
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      return Promise.resolve(pending);
    }
    return new Promise((resolve) => {
      const done = (reason: WakeReason) => {
        timer.cancel();
        signal.removeEventListener("abort", onAbort);
        this.#resolve = undefined;
        resolve(reason);
      };
      const onAbort = () => done({ kind: "timer" });
      const timer = startTimer(ms, () => done({ kind: "timer" }));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.#resolve = done;
    });
  }
}
