/**
 * One refresh (token -> Secret) and the loop that repeats it until shutdown.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { messageOf } from "./errors.ts";
import { LOG_CATEGORY } from "./log.ts";
import { TokenError } from "./oidc/error.ts";
import { type Clock, systemClock, type Token, type TokenSource } from "./token.ts";
import type { SecretTarget, SecretWriter, WriteResult } from "./kube/secret.ts";
import {
  planAfterFailure,
  planAfterSuccess,
  retryDeadline,
  type ScheduleOptions,
} from "./schedule.ts";

/** What one successful refresh produced. */
export interface RefreshResult {
  /** The token written. */
  token: Token;
  /** What the write did. */
  write: WriteResult;
}

/**
 * Obtains a token and writes it into the Secret. Nothing is written unless a whole, valid token
 * was obtained, so a failure leaves the Secret with its last good token.
 *
 * @param source The token source.
 * @param writer The Secret writer.
 * @param signal Aborts both steps (shutdown).
 * @returns The token and what the write did.
 * @throws {TokenError} or {KubeApiError} on failure.
 *
 * @example
 * ```ts ignore
 * import { refreshOnce } from "./refresh.ts";
 * const { token, write } = await refreshOnce(source, writer);
 * ```
 */
export async function refreshOnce(
  source: TokenSource,
  writer: SecretWriter,
  signal?: AbortSignal,
): Promise<RefreshResult> {
  const token = await source.fetchToken(signal);
  const write = await writer.write(token.value, signal);
  return { token, write };
}

/**
 * The fields of the "Token refreshed" log line, the same for the loop and for `--once`. They
 * describe the token by its expiry only, never by its value.
 *
 * @param target Which Secret.
 * @param result What the refresh produced.
 * @returns Secret, namespace, key, what the write did, and the expiry (or `unknown`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { refreshedFields } from "./refresh.ts";
 *
 * const fields = refreshedFields({ namespace: "ns", name: "tok", key: "token" }, {
 *   token: { value: "t", obtainedAt: 0, expiresAt: 60_000, lifetimeSource: "expires_in" },
 *   write: { action: "updated", requests: 1 },
 * });
 * assert.equal(fields.expiresAt, "1970-01-01T00:01:00.000Z");
 * assert.ok(!Object.values(fields).includes("t"));
 * ```
 */
export function refreshedFields(
  target: SecretTarget,
  result: RefreshResult,
): Record<string, string> {
  return {
    secret: target.name,
    namespace: target.namespace,
    key: target.key,
    action: result.write.action,
    expiresAt: result.token.expiresAt === undefined
      ? "unknown"
      : new Date(result.token.expiresAt).toISOString(),
  };
}

/** Events of the loop, for health and metrics. */
export interface RefreshObserver {
  /** A refresh succeeded. */
  onSuccess?(event: { result: RefreshResult; durationMs: number; nextAt: number }): void;
  /** A refresh failed. */
  onFailure?(event: { error: unknown; durationMs: number; failures: number; nextAt: number }): void;
}

/** Options of {@linkcode runRefreshLoop}. */
export interface LoopOptions {
  /** The token source. */
  source: TokenSource;
  /** The Secret writer. */
  writer: SecretWriter;
  /** Which Secret (for logs). */
  target: SecretTarget;
  /** Schedule knobs. */
  schedule: ScheduleOptions;
  /** Stops the loop; in-flight requests are aborted. */
  signal: AbortSignal;
  /** Time source. Default: the system clock. */
  clock?: Clock;
  /** Health and metrics hooks. */
  observer?: RefreshObserver;
}

/**
 * True when retrying soon cannot help: the provider rejected the client credentials, or the
 * secret, key or CA file is unusable. These are retried at the slowest pace.
 */
function isCredentialFailure(err: unknown): boolean {
  return err instanceof TokenError &&
    (err.status === 401 || err.providerError === "invalid_client" ||
      err.providerError === "unauthorized_client" || err.code === "TOKEN_CREDENTIALS" ||
      err.code === "TOKEN_TRUST");
}

/**
 * Refreshes at start, then again before the token expires (and at least every `interval`),
 * retrying failures with backoff, until `signal` aborts. Never throws for a failed refresh:
 * the Secret keeps its last good token and the loop tries again.
 *
 * @param options Source, writer, schedule, shutdown signal, clock and observer.
 * @returns A promise that resolves when the loop has stopped.
 *
 * @example
 * ```ts ignore
 * import { runRefreshLoop } from "./refresh.ts";
 * const controller = new AbortController();
 * await runRefreshLoop({ source, writer, target, schedule, signal: controller.signal });
 * ```
 */
export async function runRefreshLoop(options: LoopOptions): Promise<void> {
  const log = getLogger([LOG_CATEGORY, "refresh"]);
  const clock = options.clock ?? systemClock;
  const { signal, target, schedule } = options;
  let lastGood: Token | undefined;
  let failures = 0;
  let warnedShortLifetime = false;

  while (!signal.aborted) {
    const started = clock.now();
    let delayMs: number;
    try {
      log.debug("Refreshing token", { secret: target.name, namespace: target.namespace });
      const result = await refreshOnce(options.source, options.writer, signal);
      const finished = clock.now();
      lastGood = result.token;
      failures = 0;
      const plan = planAfterSuccess(result.token, schedule);
      delayMs = plan.delayMs;
      if (plan.shortenedByLifetime && !warnedShortLifetime) {
        warnedShortLifetime = true;
        log.warn(
          "Interval is longer than the token lifetime allows: refreshing every {refreshSeconds} s instead of {intervalSeconds} s",
          {
            intervalSeconds: schedule.intervalMs / 1000,
            refreshSeconds: Math.round(delayMs / 100) / 10,
            lifetimeSeconds: result.token.lifetimeSeconds,
          },
        );
      }
      const nextAt = finished + delayMs;
      log.info("Token refreshed", {
        ...refreshedFields(target, result),
        nextRefresh: new Date(nextAt).toISOString(),
      });
      options.observer?.onSuccess?.({ result, durationMs: finished - started, nextAt });
    } catch (err) {
      // Only shutdown ends the loop; any other abort is a failed attempt like the rest.
      if (signal.aborted) break;
      const finished = clock.now();
      failures++;
      const slow = isCredentialFailure(err);
      delayMs = planAfterFailure(
        {
          failures,
          retryAfterMs: err instanceof TokenError ? err.retryAfterMs : undefined,
          slow,
        },
        finished,
        retryDeadline(lastGood, schedule.renewFraction),
        schedule,
      );
      const nextAt = finished + delayMs;
      const fields = {
        secret: target.name,
        namespace: target.namespace,
        error: messageOf(err),
        failures,
        retryInSeconds: Math.round(delayMs / 100) / 10,
      };
      if (slow) {
        log.error(
          "Refresh failed: the client credentials were rejected or cannot be read; check oidc.clientid and oidc.clientsecret (or oidc.clientsecretfile, oidc.privatekeyfile, oidc.cafile)",
          fields,
        );
      } else {
        log.warn("Refresh failed", fields);
      }
      options.observer?.onFailure?.({
        error: err,
        durationMs: finished - started,
        failures,
        nextAt,
      });
    }
    await clock.sleep(delayMs, signal);
  }
  log.info("Refresh loop stopped");
}
