/**
 * Leader election over a `coordination.k8s.io/v1` Lease, the way client-go's leaderelection
 * package does it: candidates try to acquire the Lease every retry period, the holder renews it
 * every retry period, and a Lease not renewed for its duration (as seen on the candidate's own
 * clock) may be taken over. Every Lease write is an update at the resourceVersion read, so two
 * candidates never both win.
 *
 * Only the leader refreshes and writes. Its work runs under a {@linkcode Term}: the term ends
 * (its signal aborts, in-flight requests with it) at the latest `renewdeadline` after the last
 * renewal that succeeded, measured from when that renewal was started, and the term's fetch
 * refuses to send once that point has passed. Since another replica takes over only after
 * `duration` without a change, and `duration > renewdeadline`, the old leader has stopped
 * writing before a new one starts.
 *
 * @module
 */
import { ConfigError } from "./config/mod.ts";
import { messageOf } from "./errors.ts";
import { getLogger, LOG_CATEGORY } from "./log.ts";
import { KubeClient, type KubeConnection, type LeaseObject } from "./kube/client.ts";
import { type EventRecorder, microTime } from "./kube/events.ts";
import { type Clock, systemClock } from "./token.ts";
import { isoTime } from "./time.ts";

/** Lease calls the elector makes; {@linkcode leaseApi} binds them to one Lease. */
export interface LeaseApi {
  /** Namespace of the Lease. */
  readonly namespace: string;
  /** Name of the Lease. */
  readonly name: string;
  /** Reads the Lease; `null` when it does not exist. */
  get(signal: AbortSignal): Promise<LeaseObject | null>;
  /** Creates the Lease; fails when it exists. */
  create(lease: LeaseObject, signal: AbortSignal): Promise<LeaseObject>;
  /** Updates the Lease at its resourceVersion; fails on a conflict. */
  replace(lease: LeaseObject, signal: AbortSignal): Promise<LeaseObject>;
}

/**
 * The Lease calls of one Lease over the Kubernetes client.
 *
 * @param client The Kubernetes client (not the leader's guarded one: the Lease is what keeps
 *   the term alive).
 * @param namespace Namespace of the Lease.
 * @param name Name of the Lease.
 * @returns The calls.
 *
 * @example
 * ```ts ignore
 * import { leaseApi } from "./leader.ts";
 * const api = leaseApi(client, "my-namespace", "kube-token-refresher-access-token");
 * ```
 */
export function leaseApi(client: KubeClient, namespace: string, name: string): LeaseApi {
  return {
    namespace,
    name,
    get: (signal) => client.getLease(namespace, name, signal),
    create: (lease, signal) => client.createLease(namespace, lease, signal),
    replace: (lease, signal) => client.replaceLease(namespace, lease, signal),
  };
}

/** The three durations of an election, in ms (`leader.duration`, `.renewdeadline`, `.retryperiod`). */
export interface ElectionTimings {
  /** How long a Lease not renewed stays the holder's, on a candidate's clock. */
  readonly durationMs: number;
  /** How long after its last renewal a leader stops writing when it cannot renew. */
  readonly renewDeadlineMs: number;
  /** How often candidates try to acquire and the leader renews. */
  readonly retryPeriodMs: number;
}

/**
 * The leader's time in office. Its signal aborts when leadership ends: the renew deadline
 * passed, another holder was seen, or shutdown.
 */
export interface Term {
  /** Aborts when the term ends. */
  readonly signal: AbortSignal;
  /** Until when (ms since the epoch) requests may be sent, as of the last renewal. */
  validUntil(): number;
  /**
   * Whether a request may be sent now; past the deadline it ends the term on the spot, so the
   * caller sees an aborted signal rather than a failure.
   */
  check(): boolean;
}

/** Options of {@linkcode LeaderElector}. */
export interface LeaderElectorOptions {
  /** The Lease. */
  api: LeaseApi;
  /** This replica's identity, recorded as `holderIdentity`. */
  identity: string;
  /** Duration, renew deadline, retry period. */
  timings: ElectionTimings;
  /** Time source. Default: the system clock. */
  clock?: Clock;
  /** Random numbers in [0, 1) for the jitter of candidates. Default `Math.random`. */
  random?: () => number;
  /** Told when leadership starts (`true`) and ends (`false`). */
  onLeading?(leading: boolean): void;
  /**
   * Told when a candidate cannot use the Lease (the error, say a 403), and when it can again
   * (`undefined`).
   */
  onProblem?(problem: string | undefined): void;
  /** Events on the Lease (became leader, stopped leading); optional. */
  events?: EventRecorder;
  /** Longest a release at shutdown may take, in ms. Default 2 000. */
  releaseTimeoutMs?: number;
}

/** The outcome of one try to acquire or renew. */
interface Attempt {
  /** Whether the Lease is this replica's now. */
  readonly ok: boolean;
  /** When the try started (a renewal is counted from here). */
  readonly startedAt: number;
  /** Another holder whose Lease is still valid. */
  readonly heldBy?: string;
  /** Why the try failed, when it was a request that failed. */
  readonly error?: unknown;
}

/**
 * A Lease-based leader elector with client-go's semantics: acquire, renew at resourceVersion,
 * take over only after `duration` without a change, give up after `renewdeadline` without a
 * renewal, release at shutdown (client-go's `ReleaseOnCancel`).
 *
 * @example
 * ```ts ignore
 * import { LeaderElector, leaseApi } from "./leader.ts";
 * const elector = new LeaderElector({
 *   api: leaseApi(client, "ns", "kube-token-refresher-access-token"),
 *   identity: "refresher-7d9f-x2_3f9a1c",
 *   timings: { durationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
 * });
 * await elector.run(signal, (term) => keepSecret({ ...options, signal: term.signal }));
 * ```
 */
export class LeaderElector {
  #api: LeaseApi;
  #identity: string;
  #timings: ElectionTimings;
  #clock: Clock;
  #random: () => number;
  #onLeading: ((leading: boolean) => void) | undefined;
  #onProblem: ((problem: string | undefined) => void) | undefined;
  #events: EventRecorder | undefined;
  #releaseTimeoutMs: number;
  #leading = false;
  /** The Lease as this replica last wrote it (the renewal's fast path starts from it). */
  #own: LeaseObject | undefined;
  /** The spec last seen, and when it was first seen so (client-go's observedTime). */
  #observedSpec: string | undefined;
  #observedAt = 0;
  #observedHolder = "";
  #log = getLogger([LOG_CATEGORY, "leader"]);
  /** Terms started so far. */
  terms = 0;

  /**
   * @param options Lease, identity, timings, clock and hooks.
   */
  constructor(options: LeaderElectorOptions) {
    this.#api = options.api;
    this.#identity = options.identity;
    this.#timings = options.timings;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#onLeading = options.onLeading;
    this.#onProblem = options.onProblem;
    this.#events = options.events;
    this.#releaseTimeoutMs = options.releaseTimeoutMs ?? 2_000;
  }

  /** Whether this replica leads now. */
  get leading(): boolean {
    return this.#leading;
  }

  /** This replica's identity. */
  get identity(): string {
    return this.#identity;
  }

  /**
   * Campaigns until `signal` aborts; while leading, runs `lead` under a {@linkcode Term} and
   * renews the Lease. A lost term goes back to campaigning. At shutdown a held Lease is released,
   * so a candidate takes over within one retry period.
   *
   * @param signal Shutdown.
   * @param lead The leader's work; it must stop soon after the term's signal aborts.
   * @returns When stopped (after the release).
   * @throws What `lead` throws (a fatal error), after the Lease was released.
   */
  async run(signal: AbortSignal, lead: (term: Term) => Promise<void>): Promise<void> {
    this.#log.info("Campaigning for leadership", {
      lease: this.#api.name,
      namespace: this.#api.namespace,
      identity: this.#identity,
    });
    let lastHolder: string | undefined;
    let lastProblem: string | undefined;
    while (!signal.aborted) {
      const attempt = await this.#tryAcquireOrRenew(signal);
      if (signal.aborted) break;
      // A conflict is another candidate winning the same round: no problem of this replica's.
      const problem = attempt.error === undefined || statusOf(attempt.error) === 409
        ? undefined
        : messageOf(attempt.error);
      if (problem !== lastProblem) {
        lastProblem = problem;
        if (problem !== undefined) {
          // Said once per distinct failure: a replica that cannot use the Lease never leads.
          this.#log.warn("Cannot take part in the leader election: {error}", {
            error: problem,
            lease: this.#api.name,
            namespace: this.#api.namespace,
          });
        }
        this.#onProblem?.(problem);
      }
      if (attempt.ok) {
        await this.#lead(attempt.startedAt, signal, lead);
        continue;
      }
      if (attempt.heldBy !== undefined && attempt.heldBy !== lastHolder) {
        lastHolder = attempt.heldBy;
        this.#log.info("Standing by: the Lease is held by {holder}", {
          holder: attempt.heldBy,
          lease: this.#api.name,
        });
      } else if (attempt.error !== undefined && problem === undefined) {
        this.#log.debug("Could not acquire the Lease: {error}", {
          error: messageOf(attempt.error),
          lease: this.#api.name,
        });
      }
      // Jitter spreads the candidates without stretching the period: a released Lease is taken
      // within one retry period.
      await this.#clock.sleep(this.#timings.retryPeriodMs * (0.8 + 0.2 * this.#random()), signal);
    }
  }

  async #lead(
    acquiredAt: number,
    signal: AbortSignal,
    lead: (term: Term) => Promise<void>,
  ): Promise<void> {
    const { renewDeadlineMs, retryPeriodMs } = this.#timings;
    let validUntil = acquiredAt + renewDeadlineMs;
    const ended = new AbortController();
    const termSignal = AbortSignal.any([signal, ended.signal]);
    let lost: string | undefined;
    let lastError: unknown;
    const expire = () => {
      if (ended.signal.aborted) return;
      lost ??= `the Lease was not renewed within leader.renewdeadline (${
        renewDeadlineMs / 1000
      } s)${lastError === undefined ? "" : `: ${messageOf(lastError)}`}`;
      ended.abort();
    };
    const term: Term = {
      signal: termSignal,
      validUntil: () => validUntil,
      check: () => {
        if (termSignal.aborted) return false;
        if (this.#clock.now() < validUntil) return true;
        expire();
        return false;
      },
    };
    this.terms++;
    this.#leading = true;
    this.#log.info("Became leader", { lease: this.#api.name, identity: this.#identity });
    this.#onLeading?.(true);
    this.#recordEvent("Normal", `${this.#identity} became leader`);
    // The deadline holds even when the renewal is stuck in a request: this ends the term on time.
    const watchdog = (async () => {
      while (!termSignal.aborted) {
        const left = validUntil - this.#clock.now();
        if (left <= 0) {
          expire();
          break;
        }
        await this.#clock.sleep(left, termSignal);
      }
    })();
    let failure: { error: unknown } | undefined;
    const working = lead(term).catch((error) => {
      failure = { error };
      ended.abort();
    });
    while (!termSignal.aborted) {
      await this.#clock.sleep(retryPeriodMs, termSignal);
      if (termSignal.aborted) break;
      const attempt = await this.#tryAcquireOrRenew(termSignal);
      if (termSignal.aborted) break;
      if (attempt.ok) {
        if (attempt.startedAt < validUntil) {
          validUntil = Math.max(validUntil, attempt.startedAt + renewDeadlineMs);
        }
        lastError = undefined;
        continue;
      }
      if (attempt.heldBy !== undefined) {
        lost = `the Lease is held by ${attempt.heldBy}`;
        ended.abort();
        break;
      }
      // Retried every retry period until the deadline, as client-go does.
      lastError = attempt.error;
      this.#log.warn("Lease renewal failed; retrying until the renew deadline", {
        lease: this.#api.name,
        error: messageOf(attempt.error),
        deadline: isoTime(validUntil),
      });
    }
    ended.abort();
    await working;
    await watchdog;
    this.#leading = false;
    this.#onLeading?.(false);
    const stillOurs = this.#clock.now() < validUntil && lost === undefined;
    if (signal.aborted || failure !== undefined) {
      if (stillOurs) await this.#release();
      if (failure !== undefined) throw failure.error;
      return;
    }
    this.#own = undefined;
    this.#log.warn("Stopped leading: {reason}; no more writes, back to candidate", {
      reason: lost ?? "the term ended",
      lease: this.#api.name,
      identity: this.#identity,
      // The renew deadline in force: the last successful renewal's start + leader.renewdeadline.
      deadline: isoTime(validUntil),
    });
    this.#recordEvent("Warning", `${this.#identity} stopped leading: ${lost ?? "the term ended"}`);
  }

  /**
   * One try, as client-go's `tryAcquireOrRenew`: the leader first updates from its own last
   * write (one request); otherwise read, then create or update at the resourceVersion read.
   */
  async #tryAcquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const now = this.#clock.now();
    const durationSeconds = Math.round(this.#timings.durationMs / 1000);
    const desired = {
      holderIdentity: this.#identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    if (this.#leading && this.#own !== undefined) {
      try {
        const own = this.#own;
        this.#observe(
          await this.#api.replace({
            ...own,
            spec: {
              ...own.spec,
              ...desired,
              acquireTime: own.spec?.acquireTime ?? desired.acquireTime,
              leaseTransitions: own.spec?.leaseTransitions ?? 0,
            },
          }, signal),
          now,
        );
        return { ok: true, startedAt: now };
      } catch (error) {
        if (signal.aborted) return { ok: false, startedAt: now, error };
        // A conflict or a deleted Lease: read it and decide, below.
      }
    }
    let current: LeaseObject | null;
    try {
      current = await this.#api.get(signal);
    } catch (error) {
      return { ok: false, startedAt: now, error };
    }
    if (current === null) {
      // Deleted while another replica led: give it the chance to re-create it, rather than
      // leading next to it until its deadline.
      if (
        this.#observedHolder !== "" && this.#observedHolder !== this.#identity &&
        this.#observedAt + this.#timings.durationMs > now
      ) {
        return { ok: false, startedAt: now, heldBy: this.#observedHolder };
      }
      try {
        this.#observe(
          await this.#api.create({
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name: this.#api.name, namespace: this.#api.namespace },
            spec: desired,
          }, signal),
          now,
        );
        return { ok: true, startedAt: now };
      } catch (error) {
        return { ok: false, startedAt: now, error };
      }
    }
    const spec = current.spec ?? {};
    const seen = JSON.stringify(spec);
    if (seen !== this.#observedSpec) {
      this.#observedSpec = seen;
      this.#observedAt = now;
      this.#observedHolder = spec.holderIdentity ?? "";
    }
    const holder = spec.holderIdentity ?? "";
    const heldFor = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder !== "" && holder !== this.#identity && this.#observedAt + heldFor > now) {
      return { ok: false, startedAt: now, heldBy: holder };
    }
    const transitions = spec.leaseTransitions ?? 0;
    const next = holder === this.#identity
      ? {
        ...desired,
        acquireTime: spec.acquireTime ?? desired.acquireTime,
        leaseTransitions: transitions,
      }
      : { ...desired, leaseTransitions: transitions + 1 };
    try {
      this.#observe(
        await this.#api.replace({ ...current, spec: { ...spec, ...next } }, signal),
        now,
      );
      return { ok: true, startedAt: now };
    } catch (error) {
      return { ok: false, startedAt: now, error };
    }
  }

  #observe(lease: LeaseObject, now: number): void {
    this.#own = lease;
    this.#observedSpec = JSON.stringify(lease.spec ?? {});
    this.#observedAt = now;
    this.#observedHolder = lease.spec?.holderIdentity ?? "";
  }

  /** Gives the Lease up (client-go's release): no holder, a duration of 1 s. */
  async #release(): Promise<void> {
    const own = this.#own;
    if (own === undefined) return;
    const now = this.#clock.now();
    try {
      await this.#api.replace({
        ...own,
        spec: {
          ...own.spec,
          holderIdentity: "",
          leaseDurationSeconds: 1,
          acquireTime: microTime(now),
          renewTime: microTime(now),
        },
      }, AbortSignal.timeout(this.#releaseTimeoutMs));
      this.#own = undefined;
      this.#log.info("Released the Lease", { lease: this.#api.name });
    } catch (err) {
      this.#log.warn(
        "Could not release the Lease; another replica takes over after leader.duration: {error}",
        {
          lease: this.#api.name,
          error: messageOf(err),
        },
      );
    }
  }

  #recordEvent(type: "Normal" | "Warning", note: string): void {
    void this.#events?.record({
      regarding: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        namespace: this.#api.namespace,
        name: this.#api.name,
      },
      type,
      reason: "LeaderElection",
      action: "Elect",
      note,
    });
  }
}

/** The HTTP status of a failed Kubernetes request, if it has one. */
function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === "number" ? status : undefined;
}

/**
 * This replica's identity: the pod's name (`POD_NAME`, else `HOSTNAME`) and a random suffix, so
 * `kubectl get lease` shows which pod leads and a restarted pod is a new candidate.
 *
 * @param env The environment as main read it.
 * @param random Random bytes; default `crypto.getRandomValues`.
 * @returns Like `refresher-7d9f-x2_5f0c9a1e`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { electionIdentity } from "./leader.ts";
 * assert.match(electionIdentity({ POD_NAME: "refresher-1" }), /^refresher-1_[0-9a-f]{8}$/);
 * ```
 */
export function electionIdentity(
  env: Readonly<Record<string, string | undefined>>,
  random: (bytes: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b),
): string {
  const pod = env.POD_NAME || env.HOSTNAME || "kube-token-refresher";
  const suffix = [...random(new Uint8Array(4))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `${pod}_${suffix}`;
}

/**
 * A fetch for the leader's Kubernetes client: it refuses to send once the term is past its
 * deadline, ties every request to the term (ending the term aborts what is in flight), and logs
 * each write at debug level with the deadline it was sent under.
 *
 * @param fetchFn The fetch to wrap.
 * @param term The term.
 * @param now The clock, for the log line.
 * @returns The guarded fetch.
 *
 * @example
 * ```ts ignore
 * import { termFetch } from "./leader.ts";
 * const client = new KubeClient(connection, { fetch: termFetch(fetch, term) });
 * ```
 */
export function termFetch(
  fetchFn: typeof fetch,
  term: Term,
  now: () => number = Date.now,
): typeof fetch {
  const log = getLogger([LOG_CATEGORY, "leader"]);
  return (input, init) => {
    if (!term.check()) {
      return Promise.reject(new DOMException("The leader's term has ended", "AbortError"));
    }
    const method = init?.method ?? "GET";
    if (method !== "GET") {
      const url = input instanceof Request ? input.url : String(input);
      log.debug("Leader request sent", {
        method,
        path: new URL(url).pathname,
        sentAt: isoTime(now()),
        validUntil: isoTime(term.validUntil()),
      });
    }
    const signal = init?.signal ? AbortSignal.any([init.signal, term.signal]) : term.signal;
    return fetchFn(input, { ...init, signal });
  };
}

/** Options of {@linkcode runElected}. */
export interface RunElectedOptions {
  /** The connection, for the leader's own client of each term. */
  connection: KubeConnection;
  /** The client for the Lease (and nothing the leader writes). */
  client: KubeClient;
  /** The fetch every client uses. */
  fetch: typeof fetch;
  /** The proxy variables, as {@linkcode KubeClient} takes them. */
  proxyEnv?: Readonly<Record<string, string | undefined>>;
  /** Namespace and name of the Lease. */
  lease: { namespace: string; name: string };
  /** This replica's identity. */
  identity: string;
  /** Duration, renew deadline, retry period. */
  timings: ElectionTimings;
  /** Shutdown. */
  signal: AbortSignal;
  /** Time source. Default: the system clock. */
  clock?: Clock;
  /** Told whether this replica leads, and why it cannot take part (status and metrics). */
  status?: {
    setLeading(leading: boolean): void;
    setElectionProblem(problem: string | undefined): void;
  };
  /** Events on the Lease. */
  events?: EventRecorder;
}

/**
 * Runs the leader's work only while this replica leads: each term gets a Kubernetes client whose
 * requests end with the term (see {@linkcode termFetch}), so nothing the leader writes is sent
 * after its renew deadline.
 *
 * @param options Connection, Lease, identity, timings and hooks.
 * @param lead The leader's work, given the term's client and the term.
 * @returns When shut down, after the Lease was released.
 *
 * @example
 * ```ts ignore
 * import { runElected } from "./leader.ts";
 * await runElected(options, (client, term) => keepSecret({ client, signal: term.signal, ... }));
 * ```
 */
export async function runElected(
  options: RunElectedOptions,
  lead: (client: KubeClient, term: Term) => Promise<void>,
): Promise<void> {
  const clock = options.clock ?? systemClock;
  options.status?.setLeading(false);
  const elector = new LeaderElector({
    api: leaseApi(options.client, options.lease.namespace, options.lease.name),
    identity: options.identity,
    timings: options.timings,
    clock,
    onLeading: (leading) => options.status?.setLeading(leading),
    onProblem: (problem) => options.status?.setElectionProblem(problem),
    ...(options.events === undefined ? {} : { events: options.events }),
  });
  await elector.run(options.signal, (term) =>
    lead(
      new KubeClient(options.connection, {
        fetch: termFetch(options.fetch, term, () => clock.now()),
        ...(options.proxyEnv === undefined ? {} : { proxyEnv: options.proxyEnv }),
      }),
      term,
    ));
}

/**
 * The Lease of a configuration: `leader.lease`, else `kube-token-refresher-<secret.name>`; in
 * `leader.namespace`, else the pod's namespace (the service account's `namespace` file), else
 * `secret.namespace`.
 *
 * @param config The election and Secret keys, and the service account folder.
 * @param readTextFile Reads the namespace file.
 * @returns Namespace and name.
 * @throws {ConfigError} With targets outside a pod and no `leader.namespace`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leaseOf } from "./leader.ts";
 * const lease = await leaseOf({
 *   leader: {},
 *   secret: { name: "access-token", namespace: "apps" },
 *   kube: { serviceAccountDir: "/nonexistent" },
 * }, () => Promise.reject(new Error("not in a pod")));
 * assert.deepEqual(lease, { namespace: "apps", name: "kube-token-refresher-access-token" });
 * ```
 */
export async function leaseOf(
  config: {
    leader: { lease?: string; namespace?: string };
    secret: { name: string; namespace: string };
    kube: { serviceAccountDir: string };
  },
  readTextFile: (path: string) => Promise<string>,
): Promise<{ namespace: string; name: string }> {
  // With targets, secret.name and secret.namespace are empty: the config requires leader.lease.
  const name = config.leader.lease ?? `kube-token-refresher-${config.secret.name}`.slice(0, 253);
  if (config.leader.namespace !== undefined) return { namespace: config.leader.namespace, name };
  try {
    const pod = (await readTextFile(`${config.kube.serviceAccountDir}/namespace`)).trim();
    if (pod !== "") return { namespace: pod, name };
  } catch {
    // Not in a pod: the Secret's namespace.
  }
  if (config.secret.namespace === "") {
    throw new ConfigError(
      `Missing required key leader.namespace with targets outside a pod: there is no pod namespace and no single Secret's namespace to put the Lease in; set it with --leader.namespace, KTR_LEADER_NAMESPACE or "leader.namespace" in the --config file`,
      { code: "CONFIG_MISSING", key: "leader.namespace" },
    );
  }
  return { namespace: config.secret.namespace, name };
}

/**
 * The `--dry-run` part of leader election: may the identity read, update and create the Lease?
 * Asked with access reviews; nothing is written.
 *
 * @param client The Kubernetes client.
 * @param lease Namespace and name of the Lease.
 * @param signal Aborts the reviews.
 * @returns One line per verb and one problem per missing one.
 *
 * @example
 * ```ts ignore
 * import { leaderDryRun } from "./leader.ts";
 * const { lines, problems } = await leaderDryRun(client, { namespace: "ns", name: "lease" });
 * ```
 */
export async function leaderDryRun(
  client: KubeClient,
  lease: { namespace: string; name: string },
  signal?: AbortSignal,
): Promise<{ lines: string[]; problems: string[] }> {
  const lines: string[] = [];
  const problems: string[] = [];
  for (const [verb, named] of [["get", true], ["update", true], ["create", false]] as const) {
    const object = named ? `lease "${lease.name}"` : "leases";
    try {
      const review = await client.reviewAccess({
        namespace: lease.namespace,
        verb,
        resource: "leases",
        group: "coordination.k8s.io",
        ...(named ? { name: lease.name } : {}),
      }, signal);
      lines.push(
        `Leader election: ${verb} ${object} in namespace "${lease.namespace}": ${
          review.allowed ? "allowed" : "MISSING"
        }`,
      );
      if (!review.allowed) {
        problems.push(
          `Permission missing for leader election: ${verb} ${object} in namespace "${lease.namespace}"; grant it with a Role rule {apiGroups: ["coordination.k8s.io"], resources: ["leases"], ${
            named ? `resourceNames: ["${lease.name}"], ` : ""
          }verbs: ["${verb}"]}`,
        );
      }
    } catch (err) {
      lines.push(`Leader election: ${verb} ${object}: cannot tell (${messageOf(err)})`);
    }
  }
  return { lines, problems };
}
