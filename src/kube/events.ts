/**
 * Kubernetes Events (`events.k8s.io/v1`) about the Secrets the tool keeps, so
 * `kubectl events --for secret/<name>` tells what happened, aggregated so that a refresher of
 * short-lived tokens does not flood the API server.
 *
 * @module
 */
import { getLogger, LOG_CATEGORY } from "../log.ts";
import { KubeApiError, type KubeClient } from "./client.ts";
import { isoTime } from "../time.ts";

/** The controller name every Event reports. */
export const REPORTING_CONTROLLER = "kube-token-refresher";

/** Event reasons of the contract. */
export type EventReason =
  | "TokenRefreshed"
  | "TokenRefreshFailed"
  | "SecretRepaired"
  | "SecretContested"
  /** Leader election on the Lease: a replica became leader or stopped leading. */
  | "LeaderElection";

/** Event actions of the contract. */
export type EventAction = "Refresh" | "Repair" | "Elect";

/** The object an Event is about. */
export interface EventSubject {
  /** API version of the object, e.g. `v1`. */
  readonly apiVersion: string;
  /** Kind, e.g. `Secret`. */
  readonly kind: string;
  /** Namespace (the Event is created there). */
  readonly namespace: string;
  /** Name. */
  readonly name: string;
}

/** One occurrence to report. */
export interface EventOccurrence {
  /** What it is about. */
  readonly regarding: EventSubject;
  /** `Normal` or `Warning`. */
  readonly type: "Normal" | "Warning";
  /** The reason (contract name). */
  readonly reason: EventReason;
  /** The action (contract name). */
  readonly action: EventAction;
  /** Human-readable note; never a secret. At most 1 KiB is sent. */
  readonly note: string;
}

/** The aggregation limits. */
export interface EventLimits {
  /**
   * Repeats of the same reason about the same object are counted in memory and written to the
   * Event's `series` at most this often. Default 20 min (3 writes per hour per reason).
   */
  readonly seriesUpdateMs: number;
  /** Writes per object the bucket holds (burst). Default 6. */
  readonly burst: number;
  /** One write per object is added back to the bucket this often. Default 15 min (4 per hour). */
  readonly refillMs: number;
}

/** Default aggregation: at most 4 Event writes per hour per object in the long run. */
export const DEFAULT_EVENT_LIMITS: EventLimits = {
  seriesUpdateMs: 20 * 60_000,
  burst: 6,
  refillMs: 15 * 60_000,
};

/** Options of {@linkcode EventRecorder}. */
export interface EventRecorderOptions {
  /** The Kubernetes client. */
  client: KubeClient;
  /** `reportingInstance`: the pod name. */
  instance: string;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Aggregation limits. */
  limits?: Partial<EventLimits>;
}

interface Series {
  name: string;
  count: number;
  lastWriteAt: number;
  lastObservedAt: number;
  writtenCount: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A Kubernetes `MicroTime`: RFC 3339 with exactly six fractional digits.
 *
 * @param ms Milliseconds since the epoch.
 * @returns The timestamp.
 *
 * @example
 * ```ts
 * import { microTime } from "./events.ts";
 * console.assert(microTime(0) === "1970-01-01T00:00:00.000000Z");
 * ```
 */
export function microTime(ms: number): string {
  return isoTime(ms).replace(/\.(\d{3})Z$/, ".$1000Z");
}

/**
 * Records Events, keyed by the object they are about. The first occurrence of a reason creates an
 * Event; repeats are counted and written into its `series` (count, last observed time) at most
 * every `seriesUpdateMs`; a token bucket per object bounds all writes (default: 6 at once, 4 per
 * hour after that), so the steady state of any refresh rate stays within 4 Event writes per hour
 * per Secret. The note of a series is its first occurrence's (an Event's note cannot change).
 *
 * Events are best effort: a failed write is logged at debug level; a missing permission (403) is
 * logged once as a warning, after which the recorder only logs.
 *
 * @example
 * ```ts ignore
 * import { EventRecorder } from "./events.ts";
 * const events = new EventRecorder({ client, instance: "refresher-7d9f-abc" });
 * await events.record({ regarding, type: "Normal", reason: "TokenRefreshed", action: "Refresh", note: "..." });
 * ```
 */
export class EventRecorder {
  #client: KubeClient;
  #instance: string;
  #now: () => number;
  #limits: EventLimits;
  #series = new Map<string, Series>();
  #buckets = new Map<string, Bucket>();
  #disabled = false;
  #writes = 0;

  /**
   * @param options Client, instance name, clock and limits.
   */
  constructor(options: EventRecorderOptions) {
    this.#client = options.client;
    this.#instance = options.instance.slice(0, 128);
    this.#now = options.now ?? Date.now;
    this.#limits = { ...DEFAULT_EVENT_LIMITS, ...options.limits };
  }

  /** Event writes (creates and series updates) sent so far. */
  get writes(): number {
    return this.#writes;
  }

  /** False once a write was refused for lack of permission: from then on, logs only. */
  get enabled(): boolean {
    return !this.#disabled;
  }

  /**
   * Turns Events off, e.g. when an access review at start says they may not be created.
   *
   * @param why Logged once as a warning.
   */
  disable(why: string): void {
    if (this.#disabled) return;
    this.#disabled = true;
    getLogger([LOG_CATEGORY, "events"]).warn(
      "Kubernetes Events are off: {why}; what happens is only logged",
      { why },
    );
  }

  /**
   * Reports one occurrence. Never throws.
   *
   * @param occurrence What happened, to what.
   * @param signal Aborts the write.
   */
  async record(occurrence: EventOccurrence, signal?: AbortSignal): Promise<void> {
    if (this.#disabled) return;
    const now = this.#now();
    const { regarding } = occurrence;
    const objectKey = `${regarding.kind}/${regarding.namespace}/${regarding.name}`;
    const key = `${objectKey}/${occurrence.type}/${occurrence.reason}`;
    const series = this.#series.get(key);
    if (series !== undefined) {
      series.count++;
      series.lastObservedAt = now;
      if (now - series.lastWriteAt < this.#limits.seriesUpdateMs) return;
      if (!this.#take(objectKey, now)) return;
      try {
        this.#writes++;
        await this.#client.patchEvent(regarding.namespace, series.name, {
          series: { count: series.count, lastObservedTime: microTime(now) },
        }, signal);
        series.lastWriteAt = now;
        series.writtenCount = series.count;
        return;
      } catch (err) {
        if (!this.#failed(err)) return;
        // Gone (the API server's event TTL, or deleted): start a new series below.
        this.#series.delete(key);
      }
    }
    if (!this.#take(objectKey, now)) return;
    const name = `${regarding.name.slice(0, 200)}.${now.toString(16)}${
      Math.floor(Math.random() * 0x10000).toString(16).padStart(4, "0")
    }`;
    const note = truncate(occurrence.note, 1024);
    try {
      this.#writes++;
      await this.#client.createEvent(regarding.namespace, {
        apiVersion: "events.k8s.io/v1",
        kind: "Event",
        metadata: { name, namespace: regarding.namespace },
        eventTime: microTime(now),
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: this.#instance,
        action: occurrence.action,
        reason: occurrence.reason,
        type: occurrence.type,
        note,
        regarding: {
          apiVersion: regarding.apiVersion,
          kind: regarding.kind,
          namespace: regarding.namespace,
          name: regarding.name,
        },
      }, signal);
      this.#series.set(key, {
        name,
        count: 1,
        lastWriteAt: now,
        lastObservedAt: now,
        writtenCount: 1,
      });
    } catch (err) {
      this.#failed(err);
    }
  }

  /** Handles a failed write; true when the Event no longer exists (start a new one). */
  #failed(err: unknown): boolean {
    if (err instanceof KubeApiError && err.status === 403) {
      this.disable(`the identity in use may not create or patch events (${err.message})`);
      return false;
    }
    if (err instanceof KubeApiError && err.status === 404) return true;
    getLogger([LOG_CATEGORY, "events"]).debug("Event not written: {error}", {
      error: err instanceof Error ? err.message : String(err),
    });
    return false;
  }

  #take(objectKey: string, now: number): boolean {
    const { burst, refillMs } = this.#limits;
    const bucket = this.#buckets.get(objectKey) ?? { tokens: burst, at: now };
    const refilled = Math.floor((now - bucket.at) / refillMs);
    if (refilled > 0) {
      bucket.tokens = Math.min(burst, bucket.tokens + refilled);
      bucket.at = bucket.tokens === burst ? now : bucket.at + refilled * refillMs;
    }
    this.#buckets.set(objectKey, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }
}

function truncate(text: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  return new TextDecoder().decode(bytes.slice(0, maxBytes - 3)).replace(/\uFFFD$/, "") + "…";
}
