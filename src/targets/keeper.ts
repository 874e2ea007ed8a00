/**
 * Keeping many Secrets with one token: the namespaces the targets select (listed and watched),
 * one Secret per target and namespace, one token request per cycle for all of them, writes with
 * bounded concurrency, each Secret retried on its own backoff with the token in hand, drift
 * repaired from one watch per target name, pruning of Secrets a target created.
 *
 * @module
 */
import { messageOf } from "../errors.ts";
import { getLogger, LOG_CATEGORY } from "../log.ts";
import { TokenBucket } from "../keep.ts";
import { KubeApiError, type KubeClient, type SecretObject } from "../kube/client.ts";
import type { EventRecorder } from "../kube/events.ts";
import { ANNOTATIONS, decideAdoption, MANAGED_LABEL, sha256Hex, toBase64 } from "../kube/state.ts";
import { type SecretChange, SecretWatch } from "../kube/watch.ts";
import type { RefreshObserver } from "../refresh.ts";
import { renewalPointOf } from "../refresh.ts";
import { planAfterFailure, retryDeadline, type ScheduleOptions } from "../schedule.ts";
import { type Clock, systemClock, type Token, type TokenSource } from "../token.ts";
import { TokenError } from "../oidc/error.ts";
import type { TargetSpec } from "./config.ts";
import { matchesLabels } from "./select.ts";
import {
  dataDiffers,
  recoverToken,
  renderData,
  TARGET_ANNOTATION,
  targetApplyBody,
} from "./render.ts";
import { isoTime } from "../time.ts";
import { startTimer, type Timer } from "../timer.ts";

/** Writes in flight at once, by default. */
export const DEFAULT_CONCURRENCY = 8;

/** Repairs per Secret: 10 at once, then one every 6 s (as for the single Secret). */
const REPAIR_LIMITS = { burst: 10, refillMs: 6_000 } as const;

/** `refresh-now` requests are acted on at most once per this many ms, over all Secrets. */
const REFRESH_NOW_MIN_GAP_MS = 10_000;

/** A namespace as the keeper sees it. */
interface NamespaceView {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly terminating: boolean;
}

/** Why a Secret is not written. */
type Block =
  | { readonly kind: "type"; readonly found: string }
  | { readonly kind: "contested"; readonly other: number };

/** One Secret of one target: where it is, what was seen, written, and how writing goes. */
export class TargetSecret {
  /** The target. */
  readonly target: TargetSpec;
  /** Its namespace. */
  readonly namespace: string;
  /** The Secret as last listed or watched: undefined while unknown, null when absent. */
  seen: SecretObject | null | undefined;
  /** Whether this target created it (it then carries `ktr.appuio.ch/target`). */
  owned = false;
  /** Hash of the token last written (or adopted) here. */
  writtenSha256: string | undefined;
  /** Failed writes in a row. */
  failures = 0;
  /** Total failed writes (metrics). */
  failuresTotal = 0;
  /** The last failure, while failing. */
  lastError: unknown;
  /** When it last held the current token (ms). */
  lastSuccessAt: number | undefined;
  /** Why it is not written, if it is not. */
  blocked: Block | undefined;
  /** The `refresh-now` value handled here. */
  refreshNowHandled: string | undefined;
  /** Queued or being written. */
  busy = false;
  /** The retry timer after a failure. */
  retryTimer: Timer | undefined;
  /** Repair rate limit. */
  readonly repairs: TokenBucket;

  /**
   * @param target The target.
   * @param namespace The namespace.
   * @param now The clock.
   */
  constructor(target: TargetSpec, namespace: string, now: () => number) {
    this.target = target;
    this.namespace = namespace;
    this.repairs = new TokenBucket(REPAIR_LIMITS.burst, REPAIR_LIMITS.refillMs, now);
  }

  /** `namespace/name`. */
  get id(): string {
    return `${this.namespace}/${this.target.name}`;
  }
}

/** Counts for tests, the bench and the metrics. */
export interface KeeperStats {
  /** Token requests. */
  tokenRequests: number;
  /** Secret applies sent. */
  writes: number;
  /** Secret lists sent (start and watch relists). */
  lists: number;
  /** Secrets deleted by pruning. */
  pruned: number;
  /** Repairs triggered by the watch. */
  repairs: number;
}

/** Options of {@linkcode TargetKeeper}. */
export interface TargetKeeperOptions {
  /** The Kubernetes client. */
  client: KubeClient;
  /** The token source. */
  source: TokenSource;
  /** The targets. */
  targets: readonly TargetSpec[];
  /** Schedule knobs. */
  schedule: ScheduleOptions;
  /** Watch Secrets (repair, refresh-now); `secret.watch`. */
  watch: boolean;
  /** Writes in flight at once. Default {@linkcode DEFAULT_CONCURRENCY}. */
  concurrency?: number;
  /** Events about the Secrets; optional. */
  events?: EventRecorder;
  /** Token-level health and metrics (one success per token obtained). */
  observer?: RefreshObserver;
  /** The clock. Default: the system clock. */
  clock?: Clock;
  /** The writer's identity for `refreshed-by`. */
  refreshedBy?: string;
  /** One cycle only (`--once`): one token, every Secret written once, then `run` resolves. */
  once?: boolean;
}

/**
 * Keeps every Secret of every target. {@linkcode TargetKeeper.run} resolves at shutdown.
 *
 * @example
 * ```ts ignore
 * import { TargetKeeper } from "./keeper.ts";
 * const keeper = new TargetKeeper({ client, source, targets, schedule, watch: true });
 * await keeper.run(shutdown.signal);
 * ```
 */
export class TargetKeeper {
  /** What was sent so far. */
  readonly stats: KeeperStats = { tokenRequests: 0, writes: 0, lists: 0, pruned: 0, repairs: 0 };
  #o: TargetKeeperOptions;
  #clock: Clock;
  #log = getLogger([LOG_CATEGORY, "targets"]);
  #secrets = new Map<string, TargetSecret>();
  #namespaces = new Map<string, NamespaceView>();
  /** Secrets seen by name, then namespace: what the name lists and watches report. */
  #seen = new Map<string, Map<string, SecretObject>>();
  #token: Token | undefined;
  #tokenSha256: string | undefined;
  #rendered = new Map<number, Record<string, string>>();
  #queue: TargetSecret[] = [];
  #inFlight = 0;
  #concurrency: number;
  #signal: AbortSignal = new AbortController().signal;
  #wakeLoop: (() => void) | undefined;
  #forceRefresh = false;
  #lastForcedAt = -Infinity;
  #reportedConflicts = new Set<string>();
  #idle: (() => void)[] = [];
  #refreshedBy: string | undefined;

  /**
   * @param options Client, source, targets, schedule and the optional parts.
   */
  constructor(options: TargetKeeperOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
    this.#refreshedBy = options.refreshedBy;
  }

  /** The Secrets currently kept, for health and metrics. */
  get secrets(): Iterable<TargetSecret> {
    return this.#secrets.values();
  }

  /**
   * Sets the writer's identity recorded in `refreshed-by` by the next writes (a new leader's).
   *
   * @param identity The identity, or undefined to leave the annotation out.
   */
  set refreshedBy(identity: string | undefined) {
    this.#refreshedBy = identity;
  }

  /** The token in hand, if any. */
  get token(): Token | undefined {
    return this.#token;
  }

  /** Resolves when no write is queued or in flight. */
  idle(): Promise<void> {
    if (this.#queue.length === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Runs until `signal` aborts: resolves the namespaces, reads the Secrets of every target name
   * once (one list per name, no per-Secret reads), adopts a token found in them when it is still
   * the tool's and fresh, then refreshes once per cycle and writes every Secret.
   *
   * @param signal Shutdown.
   */
  async run(outer: AbortSignal): Promise<void> {
    // The watches stop with the token loop too (--once), not only at shutdown.
    const stop = new AbortController();
    const signal = AbortSignal.any([outer, stop.signal]);
    const background: Promise<void>[] = [];
    try {
      await this.#run(outer, signal, background);
    } finally {
      for (const secret of this.#secrets.values()) secret.retryTimer?.cancel();
      stop.abort();
      await Promise.all(background);
    }
  }

  async #run(outer: AbortSignal, signal: AbortSignal, background: Promise<void>[]): Promise<void> {
    this.#signal = outer;
    const { client, targets } = this.#o;
    const dynamic = targets.some((t) => t.selection.kind !== "namespace");
    const names = [...new Set(targets.map((t) => t.name))];

    if (dynamic) {
      let first: () => void = () => {};
      const synced = new Promise<void>((resolve) => (first = resolve));
      const watch = new SecretWatch({
        client,
        name: "namespaces",
        collection: {
          list: async (s) => {
            const list = await client.listNamespaces(s);
            return {
              items: list.items as unknown as SecretObject[],
              resourceVersion: list.resourceVersion,
            };
          },
          watch: (request, s) => client.watchNamespaces(request, s),
        },
        onSync: (items) => {
          this.#namespaces.clear();
          for (const item of items) this.#putNamespace(item);
          first();
          this.#reconcile();
        },
        onChange: (change) => {
          const name = change.secret.metadata.name;
          if (change.type === "DELETED") this.#namespaces.delete(name);
          else this.#putNamespace(change.secret);
          this.#reconcile(name);
        },
      });
      background.push(watch.run(signal));
      await Promise.race([synced, aborted(signal)]);
      if (signal.aborted) return;
    }
    for (const target of targets) {
      if (target.selection.kind !== "namespace") continue;
      const ns = target.selection.namespace;
      if (!this.#namespaces.has(ns)) {
        this.#namespaces.set(ns, { name: ns, labels: {}, terminating: false });
      }
    }

    // One list per Secret name across namespaces: the state of every Secret without one GET each.
    await Promise.all(names.map(async (name) => {
      try {
        this.stats.lists++;
        const list = await client.listSecretsNamed(name, undefined, signal);
        this.#seen.set(name, new Map(list.items.map((s) => [s.metadata.namespace ?? "", s])));
      } catch (err) {
        if (signal.aborted) return;
        this.#log.warn(
          "The Secrets named {secret} could not be listed at start; writing them all: {error}",
          { secret: name, error: messageOf(err) },
        );
      }
    }));
    if (signal.aborted) return;
    this.#reconcile();
    for (const secret of this.#secrets.values()) {
      const seen = this.#seen.get(secret.target.name);
      if (seen !== undefined) this.#observe(secret, seen.get(secret.namespace) ?? null);
    }
    await this.#adopt();

    if (this.#o.watch) {
      for (const name of names) {
        const watch = new SecretWatch({
          client,
          name,
          onSync: (items) => this.#syncSecrets(name, items),
          onChange: (change) => this.#secretChanged(name, change),
        });
        background.push(watch.run(signal));
      }
    }
    await this.#tokenLoop(outer);
  }

  #putNamespace(object: SecretObject | { metadata: SecretObject["metadata"]; status?: unknown }) {
    const name = object.metadata.name;
    const status = (object as { status?: { phase?: string } }).status;
    this.#namespaces.set(name, {
      name,
      labels: object.metadata.labels ?? {},
      terminating: status?.phase === "Terminating" ||
        typeof object.metadata.deletionTimestamp === "string",
    });
  }

  /** Whether a target selects a namespace. */
  #selects(target: TargetSpec, ns: NamespaceView): boolean {
    if (ns.terminating) return false;
    if (target.excluded(ns.name) || !target.matchesName(ns.name)) return false;
    return target.selection.kind !== "selector" ||
      matchesLabels(target.selection.requirements, ns.labels);
  }

  /**
   * Brings the set of Secrets in line with the namespaces (all, or one that changed): new ones
   * are written at once with the token in hand, ones no longer selected are dropped (and pruned
   * when their target says so and created them).
   */
  #reconcile(only?: string): void {
    const { targets } = this.#o;
    const namespaces = only === undefined ? [...this.#namespaces.keys()] : [only];
    const fresh: TargetSecret[] = [];
    for (const name of namespaces) {
      const ns = this.#namespaces.get(name);
      const selecting = new Map<string, TargetSpec[]>();
      for (const target of targets) {
        if (ns === undefined || !this.#selects(target, ns)) continue;
        const list = selecting.get(target.name) ?? [];
        list.push(target);
        selecting.set(target.name, list);
      }
      for (const target of targets) {
        const id = `${name}/${target.name}`;
        const current = this.#secrets.get(id);
        const claimants = selecting.get(target.name) ?? [];
        if (claimants[0] === target) {
          let secret = current;
          if (secret === undefined || secret.target !== target) {
            secret = new TargetSecret(target, name, () => this.#clock.now());
            const seen = this.#seen.get(target.name);
            if (seen !== undefined) this.#observe(secret, seen.get(name) ?? null);
            this.#secrets.set(id, secret);
            fresh.push(secret);
          }
          if (claimants.length > 1) this.#contest(secret, claimants[1]);
          else if (secret.blocked?.kind === "contested") secret.blocked = undefined;
        } else if (current?.target === target && claimants.length === 0) {
          this.#secrets.delete(id);
          current.retryTimer?.cancel();
          if (ns !== undefined && !ns.terminating && target.prune) void this.#prune(current);
        }
      }
    }
    for (const secret of fresh) this.#enqueue(secret);
  }

  /** Two targets select the same Secret: neither writes it. */
  #contest(secret: TargetSecret, other: TargetSpec): void {
    secret.blocked = { kind: "contested", other: other.index };
    if (this.#reportedConflicts.has(secret.id)) return;
    this.#reportedConflicts.add(secret.id);
    this.#log.error(
      "targets[{a}] and targets[{b}] both select Secret {secret} in namespace {namespace}; it is not written until only one does (exclude the namespace from one of them)",
      {
        a: secret.target.index,
        b: other.index,
        secret: secret.target.name,
        namespace: secret.namespace,
      },
    );
  }

  /** Records what a list or the watch saw of one Secret. */
  #observe(secret: TargetSecret, seen: SecretObject | null): void {
    secret.seen = seen;
    if (seen === null) {
      if (secret.blocked?.kind === "type") secret.blocked = undefined;
      return;
    }
    if (secret.blocked?.kind !== "contested") {
      const type = seen.type ?? "Opaque";
      if (type !== secret.target.type) {
        if (secret.blocked === undefined) {
          this.#log.error(
            "Secret {secret} in namespace {namespace} exists with type {found}, not {type}; it is left unchanged (delete it, or change the target's type)",
            {
              secret: secret.target.name,
              namespace: secret.namespace,
              found: type,
              type: secret.target.type,
            },
          );
        }
        secret.blocked = { kind: "type", found: type };
      } else if (secret.blocked?.kind === "type") {
        secret.blocked = undefined;
      }
    }
    const annotations = seen.metadata.annotations ?? {};
    secret.owned = annotations[TARGET_ANNOTATION] === secret.target.id &&
      seen.metadata.labels?.[MANAGED_LABEL] === "true";
  }

  /** At start: the freshest token still the tool's in any of the Secrets, if one is. */
  async #adopt(): Promise<void> {
    const now = this.#clock.now();
    let best: { token: Token; renewAt: number; sha: string } | undefined;
    for (const secret of this.#secrets.values()) {
      const seen = secret.seen;
      if (seen === null || seen === undefined) continue;
      const value = recoverToken(secret.target, seen);
      if (value === undefined) continue;
      const sha = await sha256Hex(value);
      const view = { metadata: seen.metadata, data: { token: toBase64(value) } };
      const decision = decideAdoption(view, sha, {
        key: "token",
        now,
        intervalMs: this.#o.schedule.intervalMs,
        renewFraction: this.#o.schedule.renewFraction,
      });
      secret.refreshNowHandled = decision.refreshNowHandled;
      if (decision.kind === "refresh") {
        if (decision.reason === "a refresh-now request is waiting") this.#forceRefresh = true;
        continue;
      }
      if (best === undefined || decision.token.obtainedAt > best.token.obtainedAt) {
        best = { token: decision.token, renewAt: decision.renewAt, sha };
      }
    }
    if (best === undefined) return;
    await this.#setToken(best.token);
    this.#log.info("Adopted the token already in the Secrets; no token request", {
      secrets: this.#secrets.size,
      expiresAt: best.token.expiresAt === undefined ? "unknown" : isoTime(best.token.expiresAt),
    });
    this.#o.observer?.onSuccess?.({
      result: { token: best.token, write: { action: "adopted", requests: 0 } },
      durationMs: 0,
      nextAt: best.renewAt,
    });
    for (const secret of this.#secrets.values()) {
      const data = this.#rendered.get(secret.target.index)!;
      if (secret.seen !== undefined && !dataDiffers(secret.seen, data)) {
        secret.writtenSha256 = best.sha;
        secret.lastSuccessAt = now;
      }
    }
  }

  async #setToken(token: Token): Promise<void> {
    this.#token = token;
    this.#tokenSha256 = await sha256Hex(token.value);
    this.#rendered.clear();
    for (const target of this.#o.targets) {
      this.#rendered.set(target.index, renderData(target, token));
    }
  }

  /** One token per cycle; every Secret written after each new token. */
  async #tokenLoop(signal: AbortSignal): Promise<void> {
    const { schedule } = this.#o;
    let failures = 0;
    let nextAt = this.#token === undefined || this.#forceRefresh
      ? this.#clock.now()
      : renewalPointOf(this.#token, schedule);
    if (this.#token !== undefined) { for (const s of this.#secrets.values()) this.#enqueue(s); }
    while (!signal.aborted) {
      await this.#sleepUntil(nextAt, signal);
      if (signal.aborted) break;
      if (this.#forceRefresh) this.#lastForcedAt = this.#clock.now();
      this.#forceRefresh = false;
      const started = this.#clock.now();
      try {
        this.stats.tokenRequests++;
        const token = await this.#o.source.fetchToken(signal);
        await this.#setToken(token);
        failures = 0;
        nextAt = renewalPointOf(token, schedule);
        const finished = this.#clock.now();
        this.#log.info("Token refreshed; writing {secrets} Secrets", {
          secrets: this.#secrets.size,
          expiresAt: token.expiresAt === undefined ? "unknown" : isoTime(token.expiresAt),
          nextRefresh: isoTime(nextAt),
        });
        this.#o.observer?.onSuccess?.({
          result: { token, write: { action: "updated", requests: this.#secrets.size } },
          durationMs: finished - started,
          nextAt,
        });
        for (const secret of this.#secrets.values()) {
          // A new token restarts every Secret's backoff: the one in hand is worth writing now.
          secret.retryTimer?.cancel();
          secret.retryTimer = undefined;
          secret.failures = 0;
          this.#enqueue(secret);
        }
        if (this.#o.once) {
          await this.idle();
          return;
        }
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        const finished = this.#clock.now();
        const slow = err instanceof TokenError &&
          (err.status === 401 || err.providerError === "invalid_client");
        const delay = planAfterFailure(
          {
            failures,
            retryAfterMs: err instanceof TokenError ? err.retryAfterMs : undefined,
            slow,
          },
          finished,
          retryDeadline(this.#token, schedule.renewFraction),
          schedule,
        );
        nextAt = finished + delay;
        this.#log.warn("Token request failed; the Secrets keep their token", {
          error: messageOf(err),
          failures,
          retryInSeconds: Math.round(delay / 100) / 10,
        });
        this.#o.observer?.onFailure?.({
          error: err,
          durationMs: finished - started,
          failures,
          nextAt,
        });
        if (this.#o.once) throw err;
      }
    }
  }

  #sleepUntil(at: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        timer.cancel();
        signal.removeEventListener("abort", done);
        this.#wakeLoop = undefined;
        resolve();
      };
      const timer = startTimer(at - this.#clock.now(), done);
      signal.addEventListener("abort", done, { once: true });
      this.#wakeLoop = done;
      if (this.#forceRefresh) this.#requestRefresh();
    });
  }

  /** Wakes the token loop for a forced refresh, at most once per 10 s. */
  #requestRefresh(): void {
    this.#forceRefresh = true;
    const wait = this.#lastForcedAt + REFRESH_NOW_MIN_GAP_MS - this.#clock.now();
    if (wait <= 0) this.#wakeLoop?.();
    else startTimer(wait, () => this.#wakeLoop?.());
  }

  #enqueue(secret: TargetSecret): void {
    if (secret.busy || this.#token === undefined || this.#signal.aborted) return;
    secret.busy = true;
    this.#queue.push(secret);
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < this.#concurrency && this.#queue.length > 0) {
      const secret = this.#queue.shift()!;
      this.#inFlight++;
      void this.#write(secret).finally(() => {
        this.#inFlight--;
        secret.busy = false;
        this.#pump();
        if (this.#queue.length === 0 && this.#inFlight === 0) {
          for (const resolve of this.#idle.splice(0)) resolve();
        }
      });
    }
  }

  async #write(secret: TargetSecret): Promise<void> {
    const token = this.#token;
    const sha = this.#tokenSha256;
    if (token === undefined || sha === undefined) return;
    // Dropped meanwhile (namespace gone, no longer selected), or not to be touched.
    if (this.#secrets.get(secret.id) !== secret || secret.blocked !== undefined) return;
    const data = this.#rendered.get(secret.target.index)!;
    if (
      secret.writtenSha256 === sha && secret.seen !== null &&
      !dataDiffers(secret.seen ?? null, data)
    ) {
      return;
    }
    // A Secret that is not there yet is created by this target, and says so.
    const owned = secret.owned || secret.seen === null;
    const body = targetApplyBody(secret.target, secret.namespace, data, {
      token,
      tokenSha256: sha,
      owned,
      ...(secret.refreshNowHandled === undefined
        ? {}
        : { refreshNowHandled: secret.refreshNowHandled }),
      ...(this.#refreshedBy === undefined ? {} : { refreshedBy: this.#refreshedBy }),
    });
    const created = secret.seen === null;
    try {
      this.stats.writes++;
      const applied = await this.#o.client.applySecret(secret.namespace, body, this.#signal);
      secret.owned = owned && (applied.created || secret.owned);
      secret.seen = applied.secret;
      secret.writtenSha256 = sha;
      secret.failures = 0;
      secret.lastError = undefined;
      secret.lastSuccessAt = this.#clock.now();
      if (created || applied.created) {
        void this.#o.events?.record({
          regarding: regardingOf(secret),
          type: "Normal",
          reason: "TokenRefreshed",
          action: "Refresh",
          note: "Secret created with the current token",
        }, this.#signal);
      }
    } catch (err) {
      if (this.#signal.aborted) return;
      secret.failures++;
      secret.failuresTotal++;
      secret.lastError = err instanceof KubeApiError && err.status === 403
        ? new KubeApiError(
          `${err.message}. Grant "patch" and "create" on secret "${secret.target.name}" (resourceNames) to the identity in use (${this.#o.client.description}) in namespace "${secret.namespace}"`,
          { code: err.code, status: err.status, reason: err.reason, verb: "patch", cause: err },
        )
        : err;
      if (
        err instanceof KubeApiError && err.status === 422 && secret.seen?.type !== undefined &&
        secret.seen.type !== secret.target.type
      ) {
        secret.blocked = { kind: "type", found: secret.seen.type };
      }
      const delay = planAfterFailure(
        {
          failures: secret.failures,
          retryAfterMs: err instanceof KubeApiError ? err.retryAfterMs : undefined,
        },
        this.#clock.now(),
        undefined,
        this.#o.schedule,
      );
      if (secret.failures === 1 || secret.failures % 10 === 0) {
        this.#log.warn(
          "Writing Secret {secret} in namespace {namespace} failed; retrying with the token in hand",
          {
            secret: secret.target.name,
            namespace: secret.namespace,
            error: messageOf(secret.lastError),
            failures: secret.failures,
            retryInSeconds: Math.round(delay / 100) / 10,
          },
        );
      }
      if (secret.failures === 1) {
        void this.#o.events?.record({
          regarding: regardingOf(secret),
          type: "Warning",
          reason: "TokenRefreshFailed",
          action: "Refresh",
          note: `Writing the token failed: ${messageOf(err)}`,
        }, this.#signal);
      }
      if (this.#o.once) return;
      secret.retryTimer?.cancel();
      secret.retryTimer = startTimer(delay, () => {
        secret.retryTimer = undefined;
        this.#enqueue(secret);
      });
    }
  }

  async #prune(secret: TargetSecret): Promise<void> {
    const seen = secret.seen;
    const uid = seen?.metadata.uid;
    // Only what this target created: the managed label and its own target annotation.
    if (!secret.owned || seen === null || seen === undefined || typeof uid !== "string") return;
    try {
      const deleted = await this.#o.client.deleteSecret(
        secret.namespace,
        secret.target.name,
        uid,
        this.#signal,
      );
      if (deleted) {
        this.stats.pruned++;
        this.#log.info(
          "Pruned Secret {secret} in namespace {namespace}: the namespace no longer matches",
          {
            secret: secret.target.name,
            namespace: secret.namespace,
          },
        );
      }
    } catch (err) {
      if (this.#signal.aborted) return;
      this.#log.warn("Pruning Secret {secret} in namespace {namespace} failed: {error}", {
        secret: secret.target.name,
        namespace: secret.namespace,
        error: messageOf(err),
      });
    }
  }

  #syncSecrets(name: string, items: SecretObject[]): void {
    const byNamespace = new Map(items.map((s) => [s.metadata.namespace ?? "", s]));
    this.#seen.set(name, byNamespace);
    for (const secret of this.#secrets.values()) {
      if (secret.target.name !== name) continue;
      this.#checkDrift(secret, byNamespace.get(secret.namespace) ?? null);
    }
  }

  #secretChanged(name: string, change: SecretChange): void {
    const ns = change.secret.metadata.namespace ?? "";
    let seen = this.#seen.get(name);
    if (seen === undefined) this.#seen.set(name, seen = new Map());
    if (change.type === "DELETED") seen.delete(ns);
    else seen.set(ns, change.secret);
    const secret = this.#secrets.get(`${ns}/${name}`);
    if (secret !== undefined) {
      this.#checkDrift(secret, change.type === "DELETED" ? null : change.secret);
    }
  }

  /** Drift: the Secret's data differs from what would be rendered now. */
  #checkDrift(secret: TargetSecret, seen: SecretObject | null): void {
    this.#observe(secret, seen);
    const requested = seen?.metadata.annotations?.[ANNOTATIONS.refreshNow];
    if (requested !== undefined && requested !== secret.refreshNowHandled) {
      secret.refreshNowHandled = requested;
      this.#log.info("Refresh requested through the refresh-now annotation", {
        secret: secret.target.name,
        namespace: secret.namespace,
        value: requested,
      });
      this.#requestRefresh();
      return;
    }
    const data = this.#rendered.get(secret.target.index);
    // Nothing written yet, or a write pending anyway: it will be right when it lands.
    if (data === undefined || secret.busy || secret.writtenSha256 === undefined) return;
    if (secret.blocked !== undefined || !dataDiffers(seen, data)) return;
    if (!secret.repairs.take()) {
      if (secret.retryTimer === undefined) {
        secret.retryTimer = startTimer(Math.max(50, secret.repairs.msUntilNext), () => {
          secret.retryTimer = undefined;
          this.#enqueue(secret);
        });
      }
      return;
    }
    this.stats.repairs++;
    secret.writtenSha256 = undefined;
    this.#log.info("Secret {secret} in namespace {namespace} drifted ({drift}); writing it back", {
      secret: secret.target.name,
      namespace: secret.namespace,
      drift: seen === null ? "deleted" : "overwritten",
    });
    void this.#o.events?.record({
      regarding: regardingOf(secret),
      type: "Normal",
      reason: "SecretRepaired",
      action: "Repair",
      note: seen === null
        ? "Secret was deleted; written again with the current token"
        : "The tool's keys were changed; the current data was written back",
    }, this.#signal);
    this.#enqueue(secret);
  }
}

function regardingOf(secret: TargetSecret) {
  return {
    apiVersion: "v1",
    kind: "Secret",
    namespace: secret.namespace,
    name: secret.target.name,
  };
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
