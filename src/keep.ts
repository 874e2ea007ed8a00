/**
 * Keeping one Secret right between refreshes: what the watch sees (deletion, an overwritten key,
 * a `refresh-now` request) becomes a wake-up of the refresh loop, rate-limited so that neither a
 * writer fighting over the key nor an operator annotating in a loop can make the tool hammer the
 * API server or the provider.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { LOG_CATEGORY } from "./log.ts";
import type { SecretObject } from "./kube/client.ts";
import type { EventRecorder } from "./kube/events.ts";
import type { SecretWriter } from "./kube/secret.ts";
import { ANNOTATIONS, detectDrift, type Drift, fromBase64, sha256Hex } from "./kube/state.ts";
import type { SecretChange } from "./kube/watch.ts";

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
 * import { Wake } from "./keep.ts";
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
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.#resolve = undefined;
        resolve(reason);
      };
      const onAbort = () => done({ kind: "timer" });
      const timer = setTimeout(() => done({ kind: "timer" }), Math.max(0, ms));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.#resolve = done;
    });
  }
}

/** A token bucket: `burst` at once, then one more every `refillMs`. */
export class TokenBucket {
  #burst: number;
  #refillMs: number;
  #tokens: number;
  #at: number;
  #now: () => number;

  /**
   * @param burst Capacity (and the starting level).
   * @param refillMs How often one token comes back.
   * @param now The clock.
   */
  constructor(burst: number, refillMs: number, now: () => number = Date.now) {
    this.#burst = burst;
    this.#refillMs = refillMs;
    this.#tokens = burst;
    this.#now = now;
    this.#at = now();
  }

  #refill(): void {
    const now = this.#now();
    const back = Math.floor((now - this.#at) / this.#refillMs);
    if (back <= 0) return;
    this.#tokens = Math.min(this.#burst, this.#tokens + back);
    this.#at = this.#tokens === this.#burst ? now : this.#at + back * this.#refillMs;
  }

  /**
   * Takes one token if there is one.
   *
   * @returns Whether one was taken.
   */
  take(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  /** Whether the bucket is full (nothing taken lately). */
  get full(): boolean {
    this.#refill();
    return this.#tokens >= this.#burst;
  }

  /** Milliseconds until the next token comes back (0 when one is there). */
  get msUntilNext(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.max(0, this.#at + this.#refillMs - this.#now());
  }
}

/**
 * Repairs allowed per Secret: 10 at once, then one every 6 s (10 per minute). Deleting the
 * Secret ten times in a row is repaired every time; a writer resetting the key every 100 ms gets
 * at most 10 + t/6 s repairs, and each repair writes the token in hand: no provider request.
 */
export const REPAIR_LIMITS = { burst: 10, refillMs: 6_000 } as const;

/** `refresh-now` requests are acted on at most once per this many ms. */
export const REFRESH_NOW_MIN_GAP_MS = 10_000;

/** Options of {@linkcode SecretKeeper}. */
export interface SecretKeeperOptions {
  /** The writer of the Secret (it knows the token written and the handled refresh-now value). */
  writer: SecretWriter;
  /** Wakes the refresh loop. */
  wake: Wake;
  /** Events about the Secret; optional. */
  events?: EventRecorder;
  /** The clock. Default `Date.now`. */
  now?: () => number;
  /** Repair rate limit. Default {@linkcode REPAIR_LIMITS}. */
  repairLimits?: { burst: number; refillMs: number };
  /** Minimum gap between two forced refreshes. Default {@linkcode REFRESH_NOW_MIN_GAP_MS}. */
  refreshNowGapMs?: number;
}

/**
 * Turns what the watch sees of one Secret into wake-ups of the refresh loop: a deleted Secret or
 * an overwritten key (compared by hash, in memory) into a repair, a new `refresh-now` value into
 * a forced refresh. Changes of other keys, labels or annotations are not drift.
 *
 * @example
 * ```ts ignore
 * import { SecretKeeper, Wake } from "./keep.ts";
 * const keeper = new SecretKeeper({ writer, wake: new Wake() });
 * const watch = new SecretWatch({ client, name, namespace, onSync: (s) => keeper.sync(s), onChange: (c) => keeper.change(c) });
 * ```
 */
export class SecretKeeper {
  #writer: SecretWriter;
  #wake: Wake;
  #events: EventRecorder | undefined;
  #now: () => number;
  #repairs: TokenBucket;
  #refreshNowGapMs: number;
  #lastForcedAt = -Infinity;
  #refreshNowPending: string | undefined;
  #refreshNowTimer: ReturnType<typeof setTimeout> | undefined;
  #repairTimer: ReturnType<typeof setTimeout> | undefined;
  #latest: SecretObject | null | undefined;
  #contested = false;
  /** Repairs fired so far. */
  repairs = 0;
  /** Repairs held back by the rate limit so far. */
  repairsLimited = 0;

  /**
   * @param options Writer, wake, events, clock and limits.
   */
  constructor(options: SecretKeeperOptions) {
    this.#writer = options.writer;
    this.#wake = options.wake;
    this.#events = options.events;
    this.#now = options.now ?? Date.now;
    const limits = options.repairLimits ?? REPAIR_LIMITS;
    this.#repairs = new TokenBucket(limits.burst, limits.refillMs, this.#now);
    this.#refreshNowGapMs = options.refreshNowGapMs ?? REFRESH_NOW_MIN_GAP_MS;
  }

  /**
   * The Secrets of the name after a list (the watch's start, or after missed changes).
   *
   * @param secrets The Secrets found (at most one per namespace; one here).
   */
  async sync(secrets: SecretObject[]): Promise<void> {
    const { namespace } = this.#writer.target;
    const secret = secrets.find((s) => (s.metadata.namespace ?? namespace) === namespace);
    await this.#observe(secret ?? null);
  }

  /**
   * One change from the watch.
   *
   * @param change The change.
   */
  async change(change: SecretChange): Promise<void> {
    const { namespace } = this.#writer.target;
    if ((change.secret.metadata.namespace ?? namespace) !== namespace) return;
    await this.#observe(change.type === "DELETED" ? null : change.secret);
  }

  /** Stops the timers (shutdown). */
  close(): void {
    clearTimeout(this.#refreshNowTimer);
    clearTimeout(this.#repairTimer);
  }

  async #observe(secret: SecretObject | null): Promise<void> {
    this.#latest = secret;
    const requested = secret?.metadata.annotations?.[ANNOTATIONS.refreshNow];
    if (
      requested !== undefined && requested !== this.#writer.refreshNowHandled &&
      requested !== this.#refreshNowPending
    ) {
      this.#refreshNowPending = requested;
      this.#scheduleRefreshNow();
    }
    await this.#checkDrift();
  }

  async #checkDrift(): Promise<void> {
    const written = this.#writer.writtenSha256;
    // Nothing written or adopted yet: nothing to repair; the loop's first write comes anyway.
    if (written === undefined || this.#latest === undefined) return;
    const secret = this.#latest;
    const { key } = this.#writer.target;
    const encoded = secret?.data?.[key];
    const value = encoded === undefined ? undefined : fromBase64(encoded);
    const hash = value === undefined ? undefined : await sha256Hex(value);
    if (secret !== null && this.#writer.isOwn(hash)) {
      if (this.#contested && this.#repairs.full) this.#contested = false;
      return;
    }
    // The latest state may have moved on while hashing.
    if (this.#latest !== secret) return;
    const drift = detectDrift(secret, key, hash, written);
    if (drift.kind === "none") return;
    if (this.#repairs.take()) {
      this.repairs++;
      this.#wake.fire({ kind: "repair", drift });
      return;
    }
    this.repairsLimited++;
    if (!this.#contested) {
      this.#contested = true;
      const { namespace, name } = this.#writer.target;
      const by = drift.kind === "overwritten" && drift.by !== undefined
        ? `field manager "${drift.by}"`
        : "another writer (no field manager visible)";
      getLogger([LOG_CATEGORY, "keep"]).warn(
        "Secret is contested: {by} keeps changing it; repairs are limited to {burst} at once and one every {refillSeconds} s",
        {
          secret: name,
          namespace,
          by,
          burst: REPAIR_LIMITS.burst,
          refillSeconds: REPAIR_LIMITS.refillMs / 1000,
        },
      );
      void this.#events?.record({
        regarding: { apiVersion: "v1", kind: "Secret", namespace, name },
        type: "Warning",
        reason: "SecretContested",
        action: "Repair",
        note:
          `Key "${key}" keeps being changed by ${by}; repairs are rate-limited (${REPAIR_LIMITS.burst} at once, then one every ${
            REPAIR_LIMITS.refillMs / 1000
          } s)`,
      });
    }
    if (this.#repairTimer === undefined) {
      this.#repairTimer = setTimeout(() => {
        this.#repairTimer = undefined;
        void this.#checkDrift();
      }, Math.max(50, this.#repairs.msUntilNext));
    }
  }

  #scheduleRefreshNow(): void {
    if (this.#refreshNowTimer !== undefined) return;
    const wait = this.#lastForcedAt + this.#refreshNowGapMs - this.#now();
    const fire = () => {
      this.#refreshNowTimer = undefined;
      const value = this.#refreshNowPending;
      if (value === undefined || value === this.#writer.refreshNowHandled) return;
      this.#lastForcedAt = this.#now();
      this.#wake.fire({ kind: "refresh-now", value });
    };
    if (wait <= 0) fire();
    else this.#refreshNowTimer = setTimeout(fire, wait);
  }
}
