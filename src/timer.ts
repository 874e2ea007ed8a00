/**
 * The tool's timers, built on timeout signals instead of the global `setTimeout` and
 * `setInterval`.
 *
 * In Deno 2.9 the global `setTimeout` and `setInterval` are Node's timers (they return `Timeout`
 * objects): the first call loads Node's timer modules, which stay resident for the life of the
 * process. Measured at the first Secret write of a process sending the refresher's two requests
 * and nothing else: 41.1 MiB, and 43.3 MiB once it has called `setTimeout` a single time.
 * `AbortSignal.timeout()` is a timer of Deno's own and costs nothing measurable.
 *
 * A timeout signal cannot be cleared. A timer here is cancelled by removing its listener: the
 * callback, and whatever it reaches, is let go at once, and the timer no longer keeps the process
 * alive (a timeout signal keeps the event loop alive only while it has listeners). The bare
 * signal stays queued until its time: a few dozen bytes, so a timer that is restarted on every
 * event (the watch's silence timer) slides instead ({@linkcode startIdleTimer}).
 *
 * @module
 */

/**
 * The longest single wait of a timer: Deno's timers take at most a signed 32-bit number of
 * milliseconds and fire at once for anything longer (about 24.8 days). Longer waits are chained.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A running timer. */
export interface Timer extends Disposable {
  /** Stops the timer; its callback is not called. Calling it again does nothing. */
  cancel(): void;
}

/**
 * Calls `callback` once, `ms` milliseconds from now, unless cancelled first. While it runs, it
 * keeps the process alive, like `setTimeout`.
 *
 * @param ms Milliseconds; negative and `NaN` count as 0.
 * @param callback Called once when the time is up.
 * @param maxStepMs The longest single wait, {@linkcode MAX_TIMER_MS}; tests shorten it to see
 *   long waits chained.
 * @returns The timer, to cancel it.
 *
 * @example
 * ```ts
 * import { startTimer } from "./timer.ts";
 *
 * const fired = await new Promise<boolean>((resolve) => {
 *   startTimer(10, () => resolve(true));
 *   startTimer(5, () => resolve(false)).cancel();
 * });
 * console.assert(fired);
 * ```
 */
export function startTimer(
  ms: number,
  callback: () => void,
  maxStepMs: number = MAX_TIMER_MS,
): Timer {
  let remaining = ms > 0 ? ms : 0;
  let signal: AbortSignal | undefined;
  const fire = () => {
    if (remaining > 0) return arm();
    signal = undefined;
    callback();
  };
  const arm = () => {
    const step = Math.min(remaining, maxStepMs);
    remaining -= step;
    signal = AbortSignal.timeout(step);
    signal.addEventListener("abort", fire, { once: true });
  };
  arm();
  const cancel = () => {
    signal?.removeEventListener("abort", fire);
    signal = undefined;
  };
  return { cancel, [Symbol.dispose]: cancel };
}

/**
 * Calls `callback` every `ms` milliseconds until cancelled, each period counted from the end of
 * the previous call (a slow callback delays the next one instead of piling calls up).
 *
 * @param ms Milliseconds between calls; at least 1.
 * @param callback Called every period.
 * @returns The timer, to cancel it.
 *
 * @example
 * ```ts
 * import { startInterval } from "./timer.ts";
 *
 * let calls = 0;
 * const interval = startInterval(5, () => calls++);
 * await new Promise<void>((resolve) => setTimeout(resolve, 40));
 * interval.cancel();
 * console.assert(calls >= 2);
 * ```
 */
export function startInterval(ms: number, callback: () => void): Timer {
  const period = Math.max(1, ms);
  let current: Timer | undefined;
  let cancelled = false;
  const tick = () => {
    callback();
    if (!cancelled) current = startTimer(period, tick);
  };
  current = startTimer(period, tick);
  const cancel = () => {
    cancelled = true;
    current?.cancel();
  };
  return { cancel, [Symbol.dispose]: cancel };
}

/** A timer that fires after a stretch of `ms` without {@linkcode IdleTimer.touch}. */
export interface IdleTimer extends Timer {
  /** Something happened: the quiet stretch starts again from now. */
  touch(): void;
}

/**
 * Calls `onIdle` once `ms` milliseconds pass without a {@linkcode IdleTimer.touch}, unless
 * cancelled first. A touch only notes the time; the one timer underneath is restarted when it
 * fires early, so touching on every event costs no timer.
 *
 * @param ms The quiet stretch, milliseconds.
 * @param onIdle Called once, when the stretch has passed.
 * @param now The clock, milliseconds (default `performance.now`).
 * @returns The timer.
 *
 * @example
 * ```ts
 * import { startIdleTimer } from "./timer.ts";
 *
 * const started = performance.now();
 * const idleAfter = await new Promise<number>((resolve) => {
 *   const idle = startIdleTimer(30, () => resolve(performance.now() - started));
 *   setTimeout(() => idle.touch(), 20);
 * });
 * console.assert(idleAfter >= 45);
 * ```
 */
export function startIdleTimer(
  ms: number,
  onIdle: () => void,
  now: () => number = () => performance.now(),
): IdleTimer {
  let last = now();
  let cancelled = false;
  let timer: Timer;
  const check = () => {
    if (cancelled) return;
    const quiet = now() - last;
    if (quiet >= ms) onIdle();
    else timer = startTimer(ms - quiet, check);
  };
  timer = startTimer(ms, check);
  const cancel = () => {
    cancelled = true;
    timer.cancel();
  };
  return {
    touch() {
      last = now();
    },
    cancel,
    [Symbol.dispose]: cancel,
  };
}
