/**
 * When to refresh next: after a success, inside the token's lifetime; after a failure, with
 * jittered exponential backoff that never waits past the point where consumers need a new token.
 *
 * @module
 */
import type { Token } from "./token.ts";

/** The knobs of the schedule. All durations in milliseconds. */
export interface ScheduleOptions {
  /** The `interval` key: the longest time between two refreshes. */
  intervalMs: number;
  /** The `renew.percent` key as a fraction: how far into a token's lifetime to renew it. */
  renewFraction: number;
  /** First retry delay. Default 500. */
  backoffBaseMs?: number;
  /** Longest retry delay. Default 30 000. */
  backoffMaxMs?: number;
  /** Longest `Retry-After` honoured. Default 120 000. */
  retryAfterMaxMs?: number;
  /** Shortest wait of any kind, so no bug can become a tight loop. Default 500. */
  minDelayMs?: number;
  /** Random number in [0, 1) for jitter; tests pass a fixed one. */
  random?: () => number;
}

/** The next refresh after a success. */
export interface SuccessPlan {
  /** Milliseconds to wait. */
  delayMs: number;
  /** True when the token's lifetime, not `interval`, decided the delay. */
  shortenedByLifetime: boolean;
}

/**
 * Plans the next refresh after a success: the earlier of `interval` and the renewal point
 * (`renewFraction` of the token's lifetime).
 *
 * @param token The token just written.
 * @param options The schedule knobs.
 * @returns The delay and whether the lifetime shortened it.
 *
 * @example
 * ```ts
 * import { planAfterSuccess } from "./schedule.ts";
 * const plan = planAfterSuccess(
 *   { value: "t", obtainedAt: 0, lifetimeSeconds: 60, expiresAt: 60_000, lifetimeSource: "expires_in" },
 *   { intervalMs: 500_000, renewFraction: 2 / 3 },
 * );
 * console.assert(plan.delayMs === 40_000 && plan.shortenedByLifetime);
 * ```
 */
export function planAfterSuccess(token: Token, options: ScheduleOptions): SuccessPlan {
  const minDelay = options.minDelayMs ?? 500;
  if (token.lifetimeSeconds === undefined) {
    return { delayMs: Math.max(minDelay, options.intervalMs), shortenedByLifetime: false };
  }
  const renewAt = token.lifetimeSeconds * 1000 * options.renewFraction;
  if (renewAt < options.intervalMs) {
    return { delayMs: Math.max(minDelay, Math.floor(renewAt)), shortenedByLifetime: true };
  }
  return { delayMs: Math.max(minDelay, options.intervalMs), shortenedByLifetime: false };
}

/**
 * The latest moment a retry must happen so consumers still get a new token before the current
 * one expires: halfway between the renewal point and expiry.
 *
 * @param token The last token written, if any.
 * @param renewFraction The renewal point as a fraction of the lifetime.
 * @returns The deadline in ms since the epoch, or undefined when the expiry is unknown.
 *
 * @example
 * ```ts
 * import { retryDeadline } from "./schedule.ts";
 * const t = { value: "t", obtainedAt: 0, lifetimeSeconds: 60, expiresAt: 60_000, lifetimeSource: "jwt" as const };
 * console.assert(retryDeadline(t, 2 / 3) === 50_000);
 * ```
 */
export function retryDeadline(token: Token | undefined, renewFraction: number): number | undefined {
  if (token?.expiresAt === undefined || token.lifetimeSeconds === undefined) return undefined;
  const margin = (token.lifetimeSeconds * 1000 * (1 - renewFraction)) / 2;
  return token.expiresAt - margin;
}

/** What a failure tells the schedule. */
export interface FailureInfo {
  /** Failures in a row, this one included (1 for the first). */
  failures: number;
  /** Delay the server asked for (`Retry-After`), if any. */
  retryAfterMs?: number;
  /** True when retrying soon cannot help (bad client credentials): retry at the slowest pace. */
  slow?: boolean;
}

/**
 * Plans the retry after a failure: 0.5 s doubling to 30 s, ±20 % jitter so replicas do not
 * retry in step, at least any `Retry-After` (capped, then up to 20 % later for the same reason),
 * and never past the retry deadline of the token currently in the Secret.
 *
 * @param failure Failure count and hints.
 * @param now Current time, ms since the epoch.
 * @param deadline From {@linkcode retryDeadline}, if known.
 * @param options The schedule knobs.
 * @returns Milliseconds to wait.
 *
 * @example
 * ```ts
 * import { planAfterFailure } from "./schedule.ts";
 * const delay = planAfterFailure({ failures: 1 }, 0, undefined, {
 *   intervalMs: 500_000, renewFraction: 2 / 3, random: () => 0.5,
 * });
 * console.assert(delay === 500);
 * ```
 */
export function planAfterFailure(
  failure: FailureInfo,
  now: number,
  deadline: number | undefined,
  options: ScheduleOptions,
): number {
  const base = options.backoffBaseMs ?? 500;
  const max = options.backoffMaxMs ?? 30_000;
  const minDelay = options.minDelayMs ?? 500;
  const random = options.random ?? Math.random;
  const exponent = Math.min(Math.max(failure.failures - 1, 0), 30);
  const backoff = failure.slow ? max : Math.min(max, base * 2 ** exponent);
  const jitter = random();
  let delay = Math.min(max, backoff * (0.8 + 0.4 * jitter));
  if (failure.retryAfterMs !== undefined) {
    // Never sooner than asked, and spread over the next 20 %: replicas told the same Retry-After
    // by an overloaded provider would otherwise all come back at the same moment.
    const retryAfter = Math.min(failure.retryAfterMs, options.retryAfterMaxMs ?? 120_000);
    delay = Math.max(delay, retryAfter * (1 + 0.2 * jitter));
  }
  if (deadline !== undefined && deadline > now) delay = Math.min(delay, deadline - now);
  return Math.max(minDelay, Math.round(delay));
}
