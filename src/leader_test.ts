import { assert, assertEquals } from "../tests/assert.ts";
import type { KubeClient, LeaseObject } from "./kube/client.ts";
import {
  electionIdentity,
  leaderDryRun,
  LeaderElector,
  type LeaseApi,
  leaseOf,
  type Term,
} from "./leader.ts";
import type { Clock } from "./token.ts";

const TIMINGS = { durationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** A clock that moves only when told, running due sleeps in order. */
class FakeClock implements Clock {
  t = 1_000_000;
  #timers: { at: number; resolve: () => void }[] = [];

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = { at: this.t + Math.max(0, ms), resolve };
      this.#timers.push(timer);
      signal.addEventListener("abort", () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
        resolve();
      }, { once: true });
    });
  }

  /** Moves time forward by `ms`, calling `each` after every step. */
  async advance(ms: number, each?: () => void): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      each?.();
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.t = due.at;
      due.resolve();
    }
    this.t = end;
    await settle();
    each?.();
  }
}

const settle = () => new Promise((r) => setTimeout(r, 0));

class Conflict extends Error {
  status = 409;
}

/** One Lease in memory, with resourceVersion checks, seen through per-replica views. */
class LeaseStore {
  lease: LeaseObject | null = null;
  #rv = 0;
  writes: { by: string; holder: string | undefined }[] = [];

  view(who: string, paused: () => boolean = () => false): LeaseApi {
    const gate = (signal: AbortSignal) =>
      paused()
        ? new Promise<never>((_, reject) =>
          signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true })
        )
        : Promise.resolve();
    return {
      namespace: "ns",
      name: "lease",
      get: async (signal) => {
        await gate(signal);
        return this.lease === null ? null : structuredClone(this.lease);
      },
      create: async (lease, signal) => {
        await gate(signal);
        if (this.lease !== null) throw new Conflict("exists");
        return this.#store(who, lease);
      },
      replace: async (lease, signal) => {
        await gate(signal);
        if (this.lease === null) throw Object.assign(new Error("not found"), { status: 404 });
        if (lease.metadata.resourceVersion !== this.lease.metadata.resourceVersion) {
          throw new Conflict("conflict");
        }
        return this.#store(who, lease);
      },
    };
  }

  #store(who: string, lease: LeaseObject): LeaseObject {
    this.lease = structuredClone({
      ...lease,
      metadata: { ...lease.metadata, resourceVersion: String(++this.#rv) },
    });
    this.writes.push({ by: who, holder: lease.spec?.holderIdentity });
    return structuredClone(this.lease);
  }
}

/** A replica: an elector and the terms it led, with their write gates. */
function replica(store: LeaseStore, clock: FakeClock, name: string, paused = () => false) {
  const terms: { term: Term; from: number; to?: number }[] = [];
  const elector = new LeaderElector({
    api: store.view(name, paused),
    identity: name,
    timings: TIMINGS,
    clock,
    random: () => 0.5,
  });
  const stop = new AbortController();
  const running = elector.run(stop.signal, async (term) => {
    const record: { term: Term; from: number; to?: number } = { term, from: clock.now() };
    terms.push(record);
    await new Promise<void>((r) =>
      term.signal.addEventListener("abort", () => r(), { once: true })
    );
    record.to = clock.now();
  });
  return {
    name,
    elector,
    terms,
    stop: async () => {
      stop.abort();
      await running;
    },
    /** Whether a write would be sent now. */
    mayWrite: () => terms.some((t) => t.to === undefined && t.term.check()),
  };
}

Deno.test("LeaderElector: of three candidates exactly one leads, and keeps leading while it renews", async () => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const replicas = ["a", "b", "c"].map((n) => replica(store, clock, n));
  let most = 0;
  await clock.advance(120_000, () => {
    const writers = replicas.filter((r) => r.mayWrite()).length;
    most = Math.max(most, writers);
  });
  assertEquals(most, 1);
  const leaders = replicas.filter((r) => r.elector.leading);
  assertEquals(leaders.length, 1);
  assertEquals(leaders[0].terms.length, 1);
  const spec = store.lease!.spec!;
  assertEquals(spec.holderIdentity, leaders[0].name);
  assertEquals(spec.leaseDurationSeconds, 15);
  assertEquals(spec.leaseTransitions, 0);
  assert(spec.renewTime! > spec.acquireTime!, "renewTime moves, acquireTime stays");
  for (const r of replicas) await r.stop();
});

Deno.test("LeaderElector: a leader that cannot renew stops at its renew deadline; another takes over only after the duration", async () => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  let cut = false;
  const a = replica(store, clock, "a", () => cut);
  await clock.advance(1);
  assert(a.elector.leading);
  const b = replica(store, clock, "b");
  await clock.advance(5_000);
  cut = true;
  const cutAt = clock.now();
  // The last renewal that succeeded started at most one retry period before the cut.
  let lastWriteByA = 0;
  let overlap = false;
  await clock.advance(40_000, () => {
    if (a.mayWrite()) lastWriteByA = clock.now();
    if (a.mayWrite() && b.mayWrite()) overlap = true;
  });
  assertEquals(overlap, false);
  assertEquals(a.terms.length, 1);
  const ended = a.terms[0].to!;
  assert(ended <= cutAt + TIMINGS.renewDeadlineMs, `term ended ${ended - cutAt} ms after the cut`);
  assert(lastWriteByA < a.terms[0].term.validUntil(), "no write allowed past the deadline");
  assert(b.elector.leading, "b leads");
  const takeover = b.terms[0].from;
  assert(
    takeover >= ended + (TIMINGS.durationMs - TIMINGS.renewDeadlineMs) - TIMINGS.retryPeriodMs,
  );
  assertEquals(store.lease!.spec!.leaseTransitions, 1);
  // a comes back: it finds b holding the Lease and stands by.
  cut = false;
  await clock.advance(10_000);
  assertEquals(a.elector.leading, false);
  assertEquals(a.terms.length, 1);
  await a.stop();
  await b.stop();
});

Deno.test("LeaderElector: shutdown releases the Lease; a candidate takes over within one retry period", async () => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const a = replica(store, clock, "a");
  await clock.advance(1);
  const b = replica(store, clock, "b");
  await clock.advance(10_000);
  assert(a.elector.leading && !b.elector.leading);
  const stopping = a.stop();
  await clock.advance(0);
  await stopping;
  assertEquals(store.lease!.spec!.holderIdentity, "");
  assertEquals(store.lease!.spec!.leaseDurationSeconds, 1);
  const released = clock.now();
  await clock.advance(TIMINGS.retryPeriodMs);
  assert(b.elector.leading, "b leads within one retry period");
  assert(b.terms[0].from - released <= TIMINGS.retryPeriodMs);
  assertEquals(store.lease!.spec!.leaseTransitions, 1);
  await b.stop();
});

Deno.test("LeaderElector: a deleted Lease is re-created by its leader, and there stays one leader", async () => {
  const clock = new FakeClock();
  const store = new LeaseStore();
  const a = replica(store, clock, "a");
  await clock.advance(1);
  const b = replica(store, clock, "b");
  await clock.advance(6_000);
  store.lease = null;
  let most = 0;
  await clock.advance(30_000, () => {
    most = Math.max(most, [a, b].filter((r) => r.mayWrite()).length);
  });
  assertEquals(most, 1);
  assertEquals(store.lease!.spec!.holderIdentity, "a");
  assertEquals(a.terms.length, 1);
  assertEquals(b.terms.length, 0);
  await a.stop();
  await b.stop();
});

Deno.test("electionIdentity() is the pod name, else the host name, with a random suffix", () => {
  const bytes = (b: Uint8Array) => b.fill(0xab);
  assertEquals(electionIdentity({ POD_NAME: "p-1", HOSTNAME: "h" }, bytes), "p-1_abababab");
  assertEquals(electionIdentity({ HOSTNAME: "h" }, bytes), "h_abababab");
  assert(electionIdentity({ POD_NAME: "p" }) !== electionIdentity({ POD_NAME: "p" }));
});

Deno.test("leaseOf(): leader.lease and leader.namespace, else the defaults", async () => {
  const config = {
    leader: {},
    secret: { name: "tok", namespace: "apps" },
    kube: { serviceAccountDir: "/sa" },
  };
  assertEquals(await leaseOf(config, () => Promise.resolve("pods\n")), {
    namespace: "pods",
    name: "kube-token-refresher-tok",
  });
  assertEquals(await leaseOf(config, () => Promise.reject(new Error("absent"))), {
    namespace: "apps",
    name: "kube-token-refresher-tok",
  });
  assertEquals(
    await leaseOf(
      { ...config, leader: { lease: "l", namespace: "n" } },
      () => Promise.resolve("pods"),
    ),
    { namespace: "n", name: "l" },
  );
});

Deno.test("LeaderElector: a Lease it may not use is reported once, not a conflict, and cleared when it can again", async () => {
  const clock = new FakeClock();
  let refuse = true;
  const store = new LeaseStore();
  const inner = store.view("a");
  const forbidden = Object.assign(new Error("HTTP 403 Forbidden"), { status: 403 });
  const problems: (string | undefined)[] = [];
  const elector = new LeaderElector({
    api: { ...inner, get: (signal) => refuse ? Promise.reject(forbidden) : inner.get(signal) },
    identity: "a",
    timings: TIMINGS,
    clock,
    onProblem: (p) => problems.push(p),
  });
  const stop = new AbortController();
  const running = elector.run(
    stop.signal,
    (term) => new Promise((r) => term.signal.addEventListener("abort", () => r(), { once: true })),
  );
  await clock.advance(10_000);
  assertEquals(problems, ["HTTP 403 Forbidden"]);
  assertEquals(elector.leading, false);
  refuse = false;
  await clock.advance(3_000);
  assertEquals(problems, ["HTTP 403 Forbidden", undefined]);
  assert(elector.leading);
  stop.abort();
  await clock.advance(0);
  await running;
});

Deno.test("leaderDryRun() names each missing Lease verb with the Role rule that grants it", async () => {
  const client = {
    reviewAccess: (attributes: { verb: string; name?: string }) =>
      Promise.resolve({ allowed: attributes.verb !== "create" }),
  } as unknown as KubeClient;
  const { lines, problems } = await leaderDryRun(client, { namespace: "ns", name: "l" });
  assertEquals(lines, [
    'Leader election: get lease "l" in namespace "ns": allowed',
    'Leader election: update lease "l" in namespace "ns": allowed',
    'Leader election: create leases in namespace "ns": MISSING',
  ]);
  assertEquals(problems, [
    'Permission missing for leader election: create leases in namespace "ns"; grant it with a Role rule {apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"]}',
  ]);
});

Deno.test("leaseOf(): with targets outside a pod leader.namespace is required", async () => {
  const config = {
    leader: { lease: "refresher" },
    secret: { name: "", namespace: "" },
    kube: { serviceAccountDir: "/sa" },
  };
  const error = await leaseOf(config, () => Promise.reject(new Error("absent"))).then(
    () => undefined,
    (e) => e as { code?: string; key?: string },
  );
  assertEquals([error?.code, error?.key], ["CONFIG_MISSING", "leader.namespace"]);
  assertEquals(await leaseOf(config, () => Promise.resolve("pods")), {
    namespace: "pods",
    name: "refresher",
  });
});
