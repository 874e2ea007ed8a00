/**
 * The core types every other module shares: the token, where tokens come from, and time.
 *
 * The OIDC modules implement {@linkcode TokenSource}; the schedule, the loop, the status and the
 * dry run consume {@linkcode Token}; the loop, the status and the server read one
 * {@linkcode Clock}, handed to them by `main()`, so they can never disagree about what time it is.
 *
 * @module
 */
import { startTimer } from "./timer.ts";

/** An access token and what is known of its lifetime. */
export interface Token {
  /** The access token itself. Never log it. */
  readonly value: string;
  /** When the token was obtained (ms since the epoch). */
  readonly obtainedAt: number;
  /** `expires_in` of the response, or the JWT `exp` claim, in seconds from `obtainedAt`; undefined if unknown. */
  readonly lifetimeSeconds?: number;
  /** Absolute expiry (ms since the epoch), if known. */
  readonly expiresAt?: number;
  /** Where the lifetime came from. */
  readonly lifetimeSource: "expires_in" | "jwt" | "unknown";
  /** `token_type` of the response (`Bearer`, `DPoP`, ...), if the provider gave one. */
  readonly tokenType?: string;
}

/** Anything that yields fresh access tokens. */
export interface TokenSource {
  /**
   * Obtains a new access token.
   *
   * @param signal Aborts the request (shutdown).
   * @returns The token.
   * @throws {TokenError} On any failure (see `src/oidc/error.ts`).
   */
  fetchToken(signal?: AbortSignal): Promise<Token>;
}

/** Time as the tool sees it; tests pass a fake one. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Waits, or returns early when `signal` aborts.
   *
   * @param ms How long to wait.
   * @param signal Ends the wait early.
   */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/**
 * The real clock.
 *
 * @example
 * ```ts
 * import { systemClock } from "./token.ts";
 * const before = systemClock.now();
 * await systemClock.sleep(1, new AbortController().signal);
 * console.assert(systemClock.now() >= before);
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        timer.cancel();
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = startTimer(ms, done);
      signal.addEventListener("abort", done, { once: true });
    }),
};
