/**
 * One refresh (token -> Secret) and the loop that repeats it until shutdown.
 *
 * @module
 */
import { messageOf } from "./errors.ts";
import { getLogger, LOG_CATEGORY } from "./log.ts";
import { TokenError } from "./oidc/error.ts";
import { type Clock, systemClock, type Token, type TokenSource } from "./token.ts";
import type { SecretTarget, SecretWriter, WriteResult } from "./kube/secret.ts";
import type { EventRecorder } from "./kube/events.ts";
import { Wake, type WakeReason } from "./wake.ts";
import {
  planAfterFailure,
  planAfterSuccess,
  retryDeadline,
  type ScheduleOptions,
} from "./schedule.ts";
import { isoTime } from "./time.ts";

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
  const write = await writer.write(token, signal);
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
    expiresAt: result.token.expiresAt === undefined ? "unknown" : isoTime(result.token.expiresAt),
  };
}

/** Events of the loop, for health and metrics. */
export interface RefreshObserver {
  /** A refresh succeeded (or, at start, the token in the Secret was adopted). */
  onSuccess?(event: { result: RefreshResult; durationMs: number; nextAt: number }): void;
  /** A refresh failed. */
  onFailure?(event: { error: unknown; durationMs: number; failures: number; nextAt: number }): void;
  /** A drifted Secret was written back with the token in hand. */
  onRepair?(event: { drift: "deleted" | "overwritten"; ok: boolean }): void;
}

/** A token already in the Secret, taken over at start instead of fetching one. */
export interface AdoptedToken {
  /** The token, with its lifetime from the annotations. */
  readonly token: Token;
  /** When to refresh it. */
  readonly renewAt: number;
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
  /** The token found in the Secret at start, when it may be adopted. */
  adopted?: AdoptedToken;
  /** Wake-ups from the watch (repairs, refresh-now); without it the loop only keeps time. */
  wake?: Wake;
  /** Kubernetes Events about the Secret; optional. */
  events?: EventRecorder;
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
 * When a token is due for renewal: its renewal point, or `interval` after it was obtained,
 * whichever is earlier. Before then it may be written again (a retry after a failed write, a
 * repair) instead of asking the provider for a new one.
 *
 * @param token The token.
 * @param schedule The schedule knobs.
 * @returns Ms since the epoch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renewalPointOf } from "./refresh.ts";
 * const token = { value: "t", obtainedAt: 0, lifetimeSeconds: 60, expiresAt: 60_000, lifetimeSource: "expires_in" as const };
 * assert.equal(renewalPointOf(token, { intervalMs: 500_000, renewFraction: 2 / 3 }), 40_000);
 * ```
 */
export function renewalPointOf(token: Token, schedule: ScheduleOptions): number {
  return token.obtainedAt + planAfterSuccess(token, schedule).delayMs;
}

/**
 * Refreshes at start (unless a fresh token was adopted), then again before the token expires (and
 * at least every `interval`), retrying failures with backoff, until `signal` aborts. A failed
 * write keeps the token in hand: the retry writes it again without asking the provider, while it
 * is before its renewal point. Wake-ups from the watch repair a drifted Secret with the token in
 * hand, or force a refresh (`refresh-now`). Never throws for a failed refresh: the Secret keeps
 * its last good token and the loop tries again.
 *
 * @param options Source, writer, schedule, shutdown signal, clock, observer, adopted token, wake
 *   and events.
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
  const { signal, target, schedule, writer, events } = options;
  const wake = options.wake ?? new Wake();
  const regarding = {
    apiVersion: "v1",
    kind: "Secret",
    namespace: target.namespace,
    name: target.name,
  };
  let lastGood: Token | undefined;
  /** The last token obtained, written or not. */
  let inHand: Token | undefined;
  let inHandWritten = false;
  let failures = 0;
  let warnedShortLifetime = false;
  let nextAt = clock.now();
  let immediate = options.adopted === undefined;

  if (options.adopted !== undefined) {
    const { token, renewAt } = options.adopted;
    lastGood = inHand = token;
    inHandWritten = true;
    nextAt = renewAt;
    log.info("Adopted the token already in the Secret; no token request", {
      secret: target.name,
      namespace: target.namespace,
      key: target.key,
      expiresAt: token.expiresAt === undefined ? "unknown" : isoTime(token.expiresAt),
      nextRefresh: isoTime(renewAt),
    });
    options.observer?.onSuccess?.({
      result: { token, write: { action: "adopted", requests: 0 } },
      durationMs: 0,
      nextAt,
    });
  }

  while (!signal.aborted) {
    const reason: WakeReason = immediate
      ? { kind: "timer" }
      : await waitFor(wake, clock, nextAt - clock.now(), signal);
    immediate = false;
    if (signal.aborted) break;
    const started = clock.now();

    if (reason.kind === "repair") {
      if (inHand !== undefined && inHandWritten && started < renewalPointOf(inHand, schedule)) {
        const fields = {
          secret: target.name,
          namespace: target.namespace,
          drift: reason.drift.kind,
          ...(reason.drift.kind === "overwritten" && reason.drift.by !== undefined
            ? { changedBy: reason.drift.by }
            : {}),
        };
        try {
          await writer.write(inHand, signal);
          log.info("Secret repaired with the token in hand", fields);
          options.observer?.onRepair?.({ drift: reason.drift.kind, ok: true });
          void events?.record({
            regarding,
            type: "Normal",
            reason: "SecretRepaired",
            action: "Repair",
            note: reason.drift.kind === "deleted"
              ? `Secret was deleted; written again with the current token`
              : `Key "${target.key}" was changed${
                "changedBy" in fields ? ` by ${fields.changedBy}` : ""
              }; the current token was written back`,
          }, signal);
        } catch (err) {
          if (signal.aborted) break;
          // Retried like a failed refresh, with the token in hand while it is good.
          inHandWritten = false;
          failures++;
          const finished = clock.now();
          const retryIn = planAfterFailure(
            { failures },
            finished,
            retryDeadline(lastGood, schedule.renewFraction),
            schedule,
          );
          nextAt = Math.min(nextAt, finished + retryIn);
          options.observer?.onRepair?.({ drift: reason.drift.kind, ok: false });
          options.observer?.onFailure?.({
            error: err,
            durationMs: finished - started,
            failures,
            nextAt,
          });
          log.warn("Secret repair failed; retrying with the token in hand", {
            ...fields,
            error: messageOf(err),
            failures,
            retryInSeconds: Math.round((nextAt - finished) / 100) / 10,
          });
        }
        continue;
      }
      // No good token in hand: a full refresh repairs it.
    }

    let delayMs: number;
    try {
      const forced = reason.kind === "refresh-now";
      if (forced) {
        writer.refreshNowHandled = reason.value;
        log.info("Refresh requested through the refresh-now annotation", {
          secret: target.name,
          namespace: target.namespace,
          value: reason.value,
        });
      }
      let token: Token;
      if (
        !forced && inHand !== undefined && !inHandWritten &&
        started < renewalPointOf(inHand, schedule)
      ) {
        // The last write failed with a good token in hand: write it again, ask nobody.
        token = inHand;
        log.debug("Writing the token in hand again", { secret: target.name });
      } else {
        log.debug("Refreshing token", { secret: target.name, namespace: target.namespace });
        token = await options.source.fetchToken(signal);
        inHand = token;
        inHandWritten = false;
      }
      const write = await writer.write(token, signal);
      inHandWritten = true;
      const result: RefreshResult = { token, write };
      const finished = clock.now();
      lastGood = token;
      failures = 0;
      const plan = planAfterSuccess(token, schedule);
      delayMs = Math.max(0, renewalPointOf(token, schedule) - finished);
      if (plan.shortenedByLifetime && !warnedShortLifetime) {
        warnedShortLifetime = true;
        log.warn(
          "Interval is longer than the token lifetime allows: refreshing every {refreshSeconds} s instead of {intervalSeconds} s",
          {
            intervalSeconds: schedule.intervalMs / 1000,
            refreshSeconds: Math.round(plan.delayMs / 100) / 10,
            lifetimeSeconds: token.lifetimeSeconds,
          },
        );
      }
      nextAt = finished + delayMs;
      log.info("Token refreshed", {
        ...refreshedFields(target, result),
        nextRefresh: isoTime(nextAt),
      });
      options.observer?.onSuccess?.({ result, durationMs: finished - started, nextAt });
      void events?.record({
        regarding,
        type: "Normal",
        reason: "TokenRefreshed",
        action: "Refresh",
        note: token.expiresAt === undefined
          ? "Token refreshed; its lifetime is unknown"
          : `Token refreshed; it is valid for ${
            Math.round((token.lifetimeSeconds ?? 0) * 10) / 10
          } s, until ${isoTime(token.expiresAt)}`,
      }, signal);
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
      nextAt = finished + delayMs;
      const message = messageOf(err);
      const fields = {
        secret: target.name,
        namespace: target.namespace,
        error: message,
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
      void events?.record({
        regarding,
        type: "Warning",
        reason: "TokenRefreshFailed",
        action: "Refresh",
        note: `Refresh failed (${failures} in a row; next try in ${fields.retryInSeconds} s): ${
          typeof (err as { code?: unknown })?.code === "string"
            ? `${(err as { code: string }).code}: `
            : ""
        }${message}`,
      }, signal);
    }
  }
  log.info("Refresh loop stopped");
}

/** Waits for the timer (on the loop's clock) or a wake-up, whichever comes first. */
async function waitFor(
  wake: Wake,
  clock: Clock,
  ms: number,
  signal: AbortSignal,
): Promise<WakeReason> {
  if (clock === systemClock) return wake.wait(ms, signal);
  // A test clock keeps its own time: sleep on it, and let a wake-up cut the sleep short.
  const done = new AbortController();
  const either = AbortSignal.any([signal, done.signal]);
  try {
    return await Promise.race([
      wake.wait(2 ** 31 - 1, either),
      clock.sleep(Math.max(0, ms), either).then(() => ({ kind: "timer" }) as const),
    ]);
  } finally {
    done.abort();
  }
}
