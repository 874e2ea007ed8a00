/**
 * Keeping one Secret right between refreshes: what the watch sees (deletion, an overwritten key,
 * a `refresh-now` request) becomes a wake-up of the refresh loop, rate-limited so that neither a
 * writer fighting over the key nor an operator annotating in a loop can make the tool hammer the
 * API server or the provider.
 *
 * @module
 */
import { getLogger, LOG_CATEGORY } from "./log.ts";
import type { KubeClient, SecretObject } from "./kube/client.ts";
import type { EventRecorder } from "./kube/events.ts";
import { type SecretTarget, SecretWriter } from "./kube/secret.ts";
import { ANNOTATIONS, decideAdoption, detectDrift, fromBase64, sha256Hex } from "./kube/state.ts";
import { type SecretChange, SecretWatch } from "./kube/watch.ts";
import { type AdoptedToken, type RefreshObserver, runRefreshLoop } from "./refresh.ts";
import { type Clock, systemClock, type TokenSource } from "./token.ts";
import type { ScheduleOptions } from "./schedule.ts";
import { startTimer, type Timer } from "./timer.ts";
import { Wake } from "./wake.ts";

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
  #refreshNowTimer: Timer | undefined;
  #repairTimer: Timer | undefined;
  #latest: SecretObject | null | undefined;
  #contested = false;
  #seenWrites = 0;
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
    this.#refreshNowTimer?.cancel();
    this.#repairTimer?.cancel();
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
      if (hash === this.#writer.writtenSha256) this.#seenWrites = this.#writer.writes;
      if (this.#contested && this.#repairs.full) this.#contested = false;
      return;
    }
    // A watch behind the writes still shows an earlier token of the tool's: not drift, as long
    // as the latest write has not come through yet.
    if (
      secret !== null && this.#seenWrites < this.#writer.writes && this.#writer.wroteEarlier(hash)
    ) {
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
      this.#repairTimer = startTimer(Math.max(50, this.#repairs.msUntilNext), () => {
        this.#repairTimer = undefined;
        void this.#checkDrift();
      });
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
    else this.#refreshNowTimer = startTimer(wait, fire);
  }
}

/** Options of {@linkcode keepSecret}. */
export interface KeepSecretOptions {
  /** The Kubernetes client. */
  client: KubeClient;
  /** The token source. */
  source: TokenSource;
  /** Which Secret and key. */
  target: SecretTarget;
  /** Schedule knobs. */
  schedule: ScheduleOptions;
  /** Stops everything (shutdown). */
  signal: AbortSignal;
  /** Whether to watch the Secret (`secret.watch`). */
  watch: boolean;
  /** Kubernetes Events; optional. */
  events?: EventRecorder;
  /** Health and metrics hooks. */
  observer?: RefreshObserver;
  /** The writer's identity for `refreshed-by`. */
  refreshedBy?: string;
  /** The loop's clock. Default: the system clock. */
  clock?: Clock;
  /** Called once the watch and keeper exist, for their counters (tests, metrics). */
  onStarted?(parts: { writer: SecretWriter; keeper?: SecretKeeper; watch?: SecretWatch }): void;
}

/**
 * Keeps one Secret: reads it once at start and adopts the token in it when it is still the
 * tool's and fresh (no token request), then runs the refresh loop and, with `watch`, the watch
 * that repairs drift and forwards refresh-now requests. Resolves at shutdown.
 *
 * @param options Client, source, target, schedule, shutdown signal and the optional parts.
 * @returns A promise that resolves when everything has stopped.
 *
 * @example
 * ```ts ignore
 * import { keepSecret } from "./keep.ts";
 * await keepSecret({ client, source, target, schedule, signal, watch: true });
 * ```
 */
export async function keepSecret(options: KeepSecretOptions): Promise<void> {
  const log = getLogger([LOG_CATEGORY, "keep"]);
  const { client, target, schedule, signal } = options;
  const writer = new SecretWriter(client, target, {
    ...(options.refreshedBy === undefined ? {} : { refreshedBy: options.refreshedBy }),
  });
  let adopted: AdoptedToken | undefined;
  try {
    const secret = await client.getSecret(target.namespace, target.name, signal);
    const encoded = secret?.data?.[target.key];
    const value = encoded === undefined ? undefined : fromBase64(encoded);
    const hash = value === undefined ? undefined : await sha256Hex(value);
    const decision = decideAdoption(secret, hash, {
      key: target.key,
      now: (options.clock ?? systemClock).now(),
      intervalMs: schedule.intervalMs,
      renewFraction: schedule.renewFraction,
    });
    writer.refreshNowHandled = decision.refreshNowHandled;
    if (decision.kind === "adopt" && hash !== undefined) {
      writer.adopt(hash);
      adopted = { token: decision.token, renewAt: decision.renewAt };
    } else if (decision.kind === "refresh") {
      log.debug("Refreshing at start: {reason}", {
        secret: target.name,
        namespace: target.namespace,
        reason: decision.reason,
      });
    }
  } catch (err) {
    if (signal.aborted) return;
    log.warn("The Secret could not be read at start; refreshing: {error}", {
      secret: target.name,
      namespace: target.namespace,
      error: err instanceof Error ? err.message : String(err),
    });
  }
  const wake = new Wake();
  let keeper: SecretKeeper | undefined;
  let watch: SecretWatch | undefined;
  let watching: Promise<void> = Promise.resolve();
  if (options.watch) {
    const k = new SecretKeeper({
      writer,
      wake,
      ...(options.events ? { events: options.events } : {}),
    });
    keeper = k;
    watch = new SecretWatch({
      client,
      name: target.name,
      namespace: target.namespace,
      onSync: (secrets) => k.sync(secrets),
      onChange: (change) => k.change(change),
    });
    watching = watch.run(signal);
  }
  options.onStarted?.({ writer, keeper, watch });
  try {
    await runRefreshLoop({
      source: options.source,
      writer,
      target,
      schedule,
      signal,
      wake,
      ...(adopted === undefined ? {} : { adopted }),
      ...(options.events === undefined ? {} : { events: options.events }),
      ...(options.observer === undefined ? {} : { observer: options.observer }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
  } finally {
    keeper?.close();
    await watching;
  }
}
