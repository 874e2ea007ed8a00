/**
 * What the refresh loop has done, as health checks and a snapshot that `metrics.ts` renders: fed
 * by the loop's observer, read by the HTTP handler. Holds no token and no secret, only times, counts and error codes, so
 * nothing it exposes can leak one.
 *
 * @module
 */
import { messageOf } from "./errors.ts";
import type { Clock } from "./token.ts";
import {
  DURATION_BUCKETS,
  type DurationHistogram,
  renderMetrics,
  type StatusSnapshot,
} from "./metrics.ts";
import type { RefreshObserver, RefreshResult } from "./refresh.ts";
import { isoTime } from "./time.ts";

/** The outcome of a health check. */
export type CheckResult =
  | {
    readonly ok: true;
    /** What the probe answers instead of `ok` (a follower says `standby`). */
    readonly note?: string;
  }
  | {
    readonly ok: false;
    /** One line saying why, for people reading a probe failure. */
    readonly reason: string;
  };

/** What the HTTP handler needs: the two checks and the metrics text. */
export interface HealthSource {
  /** Whether the process and its refresh loop are alive (`/healthz`). */
  liveness(): CheckResult;
  /** Whether the Secret holds a good token (`/readyz`). */
  readiness(): CheckResult;
  /** The metrics in the Prometheus text format (`/metrics`). */
  metrics(): string;
}

/**
 * How long one refresh attempt may run before the loop counts as stuck: twice the token request
 * timeout plus the Kubernetes request timeout (10 s each). A healthy attempt ends well inside it,
 * because every request in it has its own timeout; only a hang outside those timeouts gets
 * past it, and a restart is the cure for that.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_STUCK_AFTER_MS } from "./status.ts";
 *
 * assert.equal(DEFAULT_STUCK_AFTER_MS, 40_000);
 * ```
 */
export const DEFAULT_STUCK_AFTER_MS = 2 * (10_000 + 10_000);

/** Options of {@linkcode RefreshStatus}. */
export interface RefreshStatusOptions {
  /** The tool's version, for `ktr_build_info`. */
  version: string;
  /**
   * The refresh loop's clock (`main()` hands both the runtime's one); only `now()` is read. No
   * default: a status with a clock of its own could disagree with the loop it reports on.
   */
  clock: Pick<Clock, "now">;
  /** After this many ms in one attempt the loop counts as stuck. Default {@linkcode DEFAULT_STUCK_AFTER_MS}. */
  stuckAfterMs?: number;
  /** Resident memory in bytes, read at every scrape. Default `Deno.memoryUsage().rss`. */
  residentMemoryBytes?: () => number;
}

/** A histogram while it is being filled. */
interface MutableHistogram {
  counts: number[];
  sum: number;
  count: number;
}

function emptyHistogram(): MutableHistogram {
  return { counts: new Array(DURATION_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
}

/** Counts a duration in its own bucket only; the renderer makes the buckets cumulative. */
function observe(histogram: MutableHistogram, seconds: number): void {
  const index = DURATION_BUCKETS.findIndex((bound) => seconds <= bound);
  histogram.counts[index === -1 ? DURATION_BUCKETS.length : index]++;
  histogram.sum += seconds;
  histogram.count++;
}

/** Prefers the error's code (`TOKEN_TIMEOUT`, `KUBE_HTTP`, ...), which is stable to alert on. */
function describeError(error: unknown): string {
  const code = typeof error === "object" && error !== null
    ? (error as { code?: unknown }).code
    : undefined;
  const message = messageOf(error)
    .replaceAll(/\s+/g, " ").trim();
  const short = message.length > 300 ? `${message.slice(0, 299)}…` : message;
  return typeof code === "string" ? `${code}: ${short}` : short;
}

/**
 * The state of the refresher for `/healthz`, `/readyz` and `/metrics`. Pass it to the refresh
 * loop as its observer, and to {@linkcode createHealthHandler} as its source.
 *
 * Liveness: the loop is in an attempt or waiting for the next one, and no attempt has run longer
 * than `stuckAfterMs`. An attempt starts when the previous event's next refresh time comes (the
 * loop's first one at construction), so the time since then is the time spent in the attempt.
 *
 * Readiness: the last attempt succeeded and the token it wrote has not expired (when its expiry
 * is unknown, the success alone counts).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RefreshStatus } from "./status.ts";
 *
 * let now = 1_000_000;
 * const status = new RefreshStatus({ version: "1.0.0", clock: { now: () => now } });
 * assert.equal(status.readiness().ok, false);
 * status.onSuccess({
 *   result: {
 *     token: { value: "t", obtainedAt: now, expiresAt: now + 60_000, lifetimeSource: "expires_in" },
 *     write: { action: "created", requests: 2 },
 *   },
 *   durationMs: 120,
 *   nextAt: now + 40_000,
 * });
 * assert.equal(status.readiness().ok, true);
 * now += 61_000;
 * assert.equal(status.readiness().ok, false);
 * ```
 */
export class RefreshStatus implements RefreshObserver, HealthSource {
  #now: () => number;
  #stuckAfterMs: number;
  #version: string;
  #rss: () => number;
  /** When the attempt that is running now, or the next one, started or starts. */
  #attemptFrom: number;
  #lastSuccessAt: number | undefined;
  #expiresAt: number | undefined;
  #nextAt: number | undefined;
  #lastError: unknown;
  #failing = false;
  #failures = 0;
  #attempts = { success: 0, failure: 0 };
  #durations = { success: emptyHistogram(), failure: emptyHistogram() };
  #repairs = {
    deleted: { success: 0, failure: 0 },
    overwritten: { success: 0, failure: 0 },
  };
  /** With leader election: whether this replica leads; `undefined` without election. */
  #leading: boolean | undefined;
  /** With leader election: why this replica cannot use the Lease, if it cannot. */
  #electionProblem: string | undefined;

  /**
   * Starts with no refresh seen; the first attempt counts as started now.
   *
   * @param options Version, clock and limits.
   */
  constructor(options: RefreshStatusOptions) {
    const { clock } = options;
    this.#now = () => clock.now();
    this.#stuckAfterMs = options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS;
    this.#version = options.version;
    this.#rss = options.residentMemoryBytes ?? (() => Deno.memoryUsage().rss);
    this.#attemptFrom = this.#now();
  }

  /**
   * Records a successful refresh (the refresh loop calls it).
   *
   * @param event The written token's lifetime, how long the attempt took and when the next is due.
   */
  onSuccess(event: { result: RefreshResult; durationMs: number; nextAt: number }): void {
    if (event.result.write.action === "adopted") {
      // The token already in the Secret, taken over at start: its success is when it was
      // obtained, and no attempt was made.
      this.#lastSuccessAt = event.result.token.obtainedAt;
      this.#expiresAt = event.result.token.expiresAt;
      this.#attemptFrom = event.nextAt;
      this.#nextAt = event.nextAt;
      return;
    }
    this.#lastSuccessAt = this.#now();
    this.#expiresAt = event.result.token.expiresAt;
    this.#failing = false;
    this.#lastError = undefined;
    this.#attemptFrom = event.nextAt;
    this.#nextAt = event.nextAt;
    this.#failures = 0;
    this.#attempts.success++;
    observe(this.#durations.success, event.durationMs / 1000);
  }

  /**
   * Records a failed refresh (the refresh loop calls it). The Secret keeps its last good token,
   * so the expiry stays that token's.
   *
   * @param event The error, how long the attempt took, failures in a row and the next attempt.
   */
  onFailure(event: { error: unknown; durationMs: number; failures: number; nextAt: number }): void {
    this.#failing = true;
    this.#lastError = event.error;
    this.#attemptFrom = event.nextAt;
    this.#nextAt = event.nextAt;
    this.#failures = event.failures;
    this.#attempts.failure++;
    observe(this.#durations.failure, event.durationMs / 1000);
  }

  /**
   * Records a repair: the token in hand written back after the Secret drifted (the refresh loop
   * calls it; a failed repair is also reported as a failure).
   *
   * @param event What drifted, and whether the write succeeded.
   */
  onRepair(event: { drift: "deleted" | "overwritten"; ok: boolean }): void {
    this.#repairs[event.drift][event.ok ? "success" : "failure"]++;
  }

  /**
   * Records whether this replica leads (leader election). A follower is live and ready, as
   * `standby`; a new leader's first attempt counts as started now.
   *
   * @param leading Whether it leads.
   */
  setLeading(leading: boolean): void {
    if (leading && this.#leading !== true) {
      // A new term starts clean: a former term's failures are not this one's.
      this.#attemptFrom = this.#now();
      this.#failing = false;
      this.#lastError = undefined;
      this.#failures = 0;
    }
    this.#leading = leading;
  }

  /**
   * Records why this replica cannot take part in the leader election (say, no permission on the
   * Lease), or that it can again (`undefined`). Such a replica stands by but is not ready: were
   * every replica in this state, nobody would refresh.
   *
   * @param problem The error, without secrets.
   */
  setElectionProblem(problem: string | undefined): void {
    this.#electionProblem = problem;
  }

  /**
   * What the metrics show, now: a plain copy, so a renderer cannot change the status.
   *
   * @returns The snapshot.
   */
  snapshot(): StatusSnapshot {
    const copy = (h: MutableHistogram): DurationHistogram => ({ ...h, counts: [...h.counts] });
    // A replica standing by reports no token of its own: a former leader's last expiry would
    // age into an expiry alert while the new leader keeps the Secret fresh.
    const standby = this.#leading === false;
    return {
      version: this.#version,
      denoVersion: Deno.version.deno,
      tokenExpiresAt: standby ? undefined : this.#expiresAt,
      lastSuccessAt: this.#lastSuccessAt,
      nextAt: standby ? undefined : this.#nextAt,
      consecutiveFailures: standby ? 0 : this.#failures,
      attempts: { ...this.#attempts },
      durations: { success: copy(this.#durations.success), failure: copy(this.#durations.failure) },
      repairs: {
        deleted: { ...this.#repairs.deleted },
        overwritten: { ...this.#repairs.overwritten },
      },
      ...(this.#leading === undefined ? {} : { leader: this.#leading }),
      processStartSeconds: Math.round(performance.timeOrigin) / 1000,
      residentMemoryBytes: this.#rss(),
    };
  }

  /**
   * Whether the loop is alive: not stuck in one attempt for longer than the limit.
   *
   * @returns `ok`, or the reason it is not.
   */
  liveness(): CheckResult {
    // A follower runs no attempts; its election loop has its own timeouts.
    if (this.#leading === false) return { ok: true };
    const running = this.#now() - this.#attemptFrom;
    if (running > this.#stuckAfterMs) {
      return {
        ok: false,
        reason: `Refresh attempt running for ${Math.round(running / 1000)} s, longer than the ${
          Math.round(this.#stuckAfterMs / 1000)
        } s its request timeouts allow`,
      };
    }
    return { ok: true };
  }

  /**
   * Whether the Secret holds a good token: the last refresh succeeded and its token has not
   * expired.
   *
   * @returns `ok`, or the reason it is not.
   */
  readiness(): CheckResult {
    if (this.#leading === false) {
      return this.#electionProblem === undefined ? { ok: true, note: "standby" } : {
        ok: false,
        reason: `Cannot take part in the leader election: ${this.#electionProblem}`,
      };
    }
    if (this.#failing) {
      return { ok: false, reason: `Last refresh failed: ${describeError(this.#lastError)}` };
    }
    if (this.#lastSuccessAt === undefined) {
      return { ok: false, reason: "No successful refresh yet" };
    }
    if (this.#expiresAt !== undefined && this.#now() >= this.#expiresAt) {
      return {
        ok: false,
        reason: `Token in the Secret expired at ${isoTime(this.#expiresAt)}`,
      };
    }
    return { ok: true };
  }

  /**
   * The metrics in the Prometheus text exposition format.
   *
   * @returns The exposition text.
   */
  metrics(): string {
    return renderMetrics(this.snapshot());
  }
}
