/**
 * Leader election against the real kube-apiserver of tests/stack and a real OpenID provider:
 * three replicas run as users run them, with the Role of deploy/base plus the Lease rules of
 * deploy/components/ha. The write history comes from a watch on the Secret (each write names its
 * writer in `ktr.appuio.ch/refreshed-by`). Timing figures are printed; they are asserted only at
 * 5x their target.
 */
import { assert, assertEquals, assertNotIncludes } from "./assert.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { type RefresherProcess, spawnRefresher } from "./fixtures/refresher_process.ts";
import { inClusterEnv, refresherNamespace } from "./fixtures/real_cluster.ts";
import { type KubeObject, renderOverlay } from "./fixtures/deploy_manifests.ts";
import { type KubeStack, stackTestIgnore, startKubeStack } from "./stack/stack.ts";

const ignore = stackTestIgnore();
/** The Secret name the shipped Role and the ha component's Lease rule name. */
const NAME = "access-token";
const LEASE = `kube-token-refresher-${NAME}`;
const BOUND = 5;
/** Short election durations, so that the handovers fit a test: duration > deadline > 1.2 × retry. */
const DURATION = 6;
const RENEW_DEADLINE = 4;
const RETRY = 1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The Role an overlay of deploy/base with deploy/components/ha renders. */
async function haRole(): Promise<KubeObject & { rules: unknown[] }> {
  const objects = await renderOverlay("resources: [../base]\ncomponents: [../components/ha]\n");
  return objects.find((o) => o.kind === "Role") as KubeObject & { rules: unknown[] };
}

/** One write of the Secret as a watch saw it. */
interface Write {
  at: number;
  type: string;
  by?: string;
  expiresAt?: number;
  resourceVersion: string;
}

/** Watches the Secret from now on, collecting every write (admin credentials). */
function watchWrites(stack: KubeStack, namespace: string, signal: AbortSignal): Write[] {
  const writes: Write[] = [];
  (async () => {
    while (!signal.aborted) {
      try {
        const res = await stack.request(
          `/api/v1/namespaces/${namespace}/secrets?watch=1&fieldSelector=metadata.name%3D${NAME}&timeoutSeconds=300`,
          { signal },
        );
        let buffered = "";
        for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
          buffered += chunk;
          let nl;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (line.trim() === "") continue;
            const event = JSON.parse(line) as {
              type: string;
              object: {
                metadata: { resourceVersion: string; annotations?: Record<string, string> };
              };
            };
            const a = event.object.metadata.annotations ?? {};
            const expires = a["ktr.appuio.ch/expires-at"];
            writes.push({
              at: Date.now(),
              type: event.type,
              by: a["ktr.appuio.ch/refreshed-by"],
              expiresAt: expires === undefined ? undefined : Date.parse(expires),
              resourceVersion: event.object.metadata.resourceVersion,
            });
          }
        }
      } catch {
        if (signal.aborted) return;
        await sleep(200);
      }
    }
  })();
  return writes;
}

/** The runs of one writer after another; a writer that comes back would show twice. */
function writerRuns(writes: Write[]): string[] {
  const runs: string[] = [];
  for (const w of writes) {
    if (w.by !== undefined && runs.at(-1) !== w.by) runs.push(w.by);
  }
  return runs;
}

async function leaseHolder(stack: KubeStack, namespace: string): Promise<string | undefined> {
  const res = await stack.request(
    `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${LEASE}`,
  );
  if (res.status !== 200) {
    await res.body?.cancel();
    return undefined;
  }
  const lease = await res.json() as { spec?: { holderIdentity?: string } };
  return lease.spec?.holderIdentity || undefined;
}

async function timeUntil(what: string, check: () => Promise<boolean>, timeoutMs: number) {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > timeoutMs) throw new Error(`Timed out: ${what}`);
    await sleep(20);
  }
  return Math.round(performance.now() - started);
}

/** JSON log records of a replica's output. */
function records(process: RefresherProcess): Record<string, unknown>[] {
  return process.output().split("\n").filter((l) => l.startsWith("{")).map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return {};
    }
  });
}

async function withReplicas(
  tokenTtlSeconds: number,
  fn: (w: {
    stack: KubeStack;
    namespace: string;
    replicas: Map<string, RefresherProcess>;
    start(pod: string): RefresherProcess;
    provider: { readonly requests: number };
    byHolder(holder: string | undefined): RefresherProcess | undefined;
    dryRun(): Promise<{ code: number; output: string }>;
  }) => Promise<void>,
) {
  await using stack = await startKubeStack();
  await using provider = await startOidcProvider({ tokenTtlSeconds });
  const { namespace, saDir, saToken } = await refresherNamespace(stack, NAME);
  const role = await haRole();
  const applied = await stack.kubectl(["apply", "-n", namespace, "-f", "-"], {
    stdin: JSON.stringify({ ...role, metadata: { name: "refresher", namespace } }),
  });
  assertEquals(applied.code, 0, applied.stderr);
  const replicas = new Map<string, RefresherProcess>();
  const all: RefresherProcess[] = [];
  try {
    await fn({
      stack,
      namespace,
      replicas,
      provider,
      start(pod) {
        const process = spawnRefresher({
          env: {
            ...inClusterEnv(stack, saDir),
            ...providerEnv(provider),
            KTR_SECRET_NAME: NAME,
            KTR_LOG_LEVEL: "debug",
            KTR_LOG_FORMAT: "json",
            KTR_LEADER_ELECT: "true",
            KTR_LEADER_DURATION: String(DURATION),
            KTR_LEADER_RENEWDEADLINE: String(RENEW_DEADLINE),
            KTR_LEADER_RETRYPERIOD: String(RETRY),
            POD_NAME: pod,
          },
          args: ["--http.address=off"],
        });
        replicas.set(pod, process);
        all.push(process);
        return process;
      },
      async dryRun() {
        await using p = spawnRefresher({
          env: {
            ...inClusterEnv(stack, saDir),
            ...providerEnv(provider),
            KTR_SECRET_NAME: NAME,
            KTR_LEADER_ELECT: "true",
          },
          args: ["--dry-run"],
        });
        const { code, output } = await p.exited;
        return { code, output };
      },
      byHolder(holder) {
        return holder === undefined ? undefined : replicas.get(holder.replace(/_[0-9a-f]+$/, ""));
      },
    });
  } finally {
    for (const p of all) {
      await p[Symbol.asyncDispose]();
      const { output } = await p.exited;
      for (const token of provider.issued) assertNotIncludes(output, token);
      assertNotIncludes(output, provider.clientSecret);
      assertNotIncludes(output, saToken);
    }
    await Deno.remove(saDir, { recursive: true });
  }
}

Deno.test({
  name:
    "leader: 3 replicas, 2 s tokens, 60 s: one writer, one replica's token requests; apiserver paused past the renew deadline: no write after it, one leader after; Lease deleted: re-created, one leader",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withReplicas(2, async ({ stack, namespace, start, replicas, provider, byHolder }) => {
      const stopWatch = new AbortController();
      const writes = watchWrites(stack, namespace, stopWatch.signal);
      try {
        for (const pod of ["replica-a", "replica-b", "replica-c"]) start(pod);
        await timeUntil("a leader", async () =>
          (await leaseHolder(stack, namespace)) !== undefined, 30_000);
        await timeUntil("a first write", () =>
          Promise.resolve(writes.length > 0), 30_000);
        const requestsBefore = provider.requests;
        const from = Date.now();
        await sleep(60_000);
        const seconds = (Date.now() - from) / 1000;
        const tokenRequests = provider.requests - requestsBefore;
        const runs = writerRuns(writes);
        // Each refresh of the one leader is one token request and one write: three replicas
        // refreshing would ask three times as often as the Secret is written.
        const written = writes.filter((w) =>
          w.at >= from
        ).length;
        console.log(
          `3 replicas for ${seconds.toFixed(0)} s: ${written} writes by ${runs.length} writer(s) (${
            runs.join(", ")
          }); token requests ${tokenRequests} (one replica: one per write)`,
        );
        assertEquals(runs.length, 1, `writers: ${runs.join(" -> ")}`);
        assert(written > 0);
        assert(tokenRequests <= written + 2, `token requests ${tokenRequests}, writes ${written}`);
        for (const [pod, p] of replicas) {
          if (byHolder(runs[0]) === p) {
            continue;
          }
          assertEquals(
            records(p).filter((r) => r.message === "Token refreshed").length,
            0,
            `${pod} refreshed while standing by`,
          );
        }

        // The apiserver paused past the renew deadline.
        const holder = (await leaseHolder(stack, namespace))!;
        const leader = byHolder(holder)!;
        const pausedAt = Date.now();
        Deno.kill(stack.pids.apiserver, "SIGSTOP");
        await sleep((RENEW_DEADLINE + 3) * 1000);
        Deno.kill(stack.pids.apiserver, "SIGCONT");
        const resumedAt = Date.now();
        const log = records(leader);
        const stopped = log.find((r) =>
          String(r.message ?? "").startsWith("Stopped leading") &&
          Date.parse(String(r["@timestamp"])) >= pausedAt
        );
        assert(stopped !== undefined, "the old leader logged that it stopped leading");
        const stoppedAt = Date.parse(String(stopped["@timestamp"]));
        const sent = log.filter((r) => r.message === "Leader request sent");
        const lateWrites = sent.filter((r) =>
          Date.parse(String(r.sentAt)) > Date.parse(String(r.validUntil))
        );
        const afterStop = sent.filter((r) =>
          Date.parse(String(r.sentAt)) > stoppedAt && Date.parse(String(r.sentAt)) < resumedAt
        );
        // The deadline in force when it stopped, as it logged it: the start of its last
        // successful renewal (which the requests it sent before the pause may not show) + 4 s.
        const lastValidUntil = Date.parse(String(stopped.deadline));
        assert(Number.isFinite(lastValidUntil), "the stop names its deadline");
        assert(lastValidUntil >= pausedAt, "the deadline lies in the pause");
        console.log(
          `apiserver paused ${((resumedAt - pausedAt) / 1000).toFixed(1)} s: the leader stopped ${
            ((stoppedAt - pausedAt) / 1000).toFixed(1)
          } s into the pause (renew deadline ${RENEW_DEADLINE} s since the last renewal); writes sent after its deadline: ${lateWrites.length}, while stopped: ${afterStop.length}`,
        );
        assertEquals(lateWrites.length, 0);
        assertEquals(afterStop.length, 0);
        assert(stoppedAt <= lastValidUntil + 1000, "stopped at its deadline");
        // One leader after the resume: the Lease names one holder, and the writes one writer.
        await sleep((DURATION + 2 * RETRY + 2) * 1000);
        const mark = writes.length;
        await sleep(8_000);
        const after = writerRuns(writes.slice(mark));
        const leading = [...replicas.values()].filter((p) => {
          const r = records(p);
          const became = r.filter((x) => x.message === "Became leader").length;
          const left = r.filter((x) =>
            String(x.message ?? "").startsWith("Stopped leading")
          ).length;
          return became > left;
        });
        console.log(
          `after the resume: writers ${after.join(", ")}; replicas leading ${leading.length}`,
        );
        assertEquals(after.length, 1);
        assertEquals(leading.length, 1);
        assertEquals(byHolder(await leaseHolder(stack, namespace)), leading[0]);

        // Someone deletes the Lease.
        const deleted = await stack.kubectl(["delete", "lease", LEASE, "-n", namespace]);
        assertEquals(deleted.code, 0, deleted.stderr);
        const recreatedMs = await timeUntil(
          "the Lease re-created",
          async () => (await leaseHolder(stack, namespace)) !== undefined,
          BOUND * (DURATION + RETRY) * 1000,
        );
        const mark2 = writes.length;
        await sleep(8_000);
        const afterDelete = writerRuns(writes.slice(mark2));
        console.log(
          `Lease deleted: re-created after ${recreatedMs} ms by ${await leaseHolder(
            stack,
            namespace,
          )}; writers after: ${afterDelete.join(", ")}`,
        );
        assertEquals(afterDelete.length, 1);
      } finally {
        stopWatch.abort();
      }
    }),
});

Deno.test({
  name:
    "leader: SIGTERM hands over within one retry period, SIGKILL within duration + retry; the new leader adopts the token (0 token requests) and the Secret never holds an expired token",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withReplicas(30, async ({ stack, namespace, start, provider, byHolder, dryRun }) => {
      // --dry-run checks the Lease verbs: all there with the ha component's Role.
      const checked = await dryRun();
      assertEquals(checked.code, 0, checked.output);
      assertEquals(
        checked.output.match(/^Leader election: .*: allowed$/gm)?.length,
        3,
        checked.output,
      );
      const stopWatch = new AbortController();
      const writes = watchWrites(stack, namespace, stopWatch.signal);
      try {
        for (const pod of ["replica-a", "replica-b", "replica-c"]) start(pod);
        await timeUntil("a first write", () => Promise.resolve(writes.length > 0), 30_000);
        await sleep(2_000);

        // SIGTERM: the leader releases the Lease.
        const first = (await leaseHolder(stack, namespace))!;
        let requests = provider.requests;
        const termAt = performance.now();
        byHolder(first)!.kill("SIGTERM");
        await timeUntil("another leader after SIGTERM", async () => {
          const h = await leaseHolder(stack, namespace);
          return h !== undefined && h !== first;
        }, BOUND * (RETRY + 1) * 1000);
        const handoverMs = Math.round(performance.now() - termAt);
        const { code } = await byHolder(first)!.exited;
        assertEquals(code, 0);
        const second = (await leaseHolder(stack, namespace))!;
        await byHolder(second)!.waitForOutput(
          /Adopted the token already in the Secret|Token refreshed/,
          10_000,
        );
        const termRequests = provider.requests - requests;
        console.log(
          `SIGTERM handover: ${handoverMs} ms (target under ${
            RETRY + 1
          } s); token requests at handover: ${termRequests}`,
        );
        assert(handoverMs < BOUND * (RETRY + 1) * 1000);
        assertEquals(termRequests, 0);

        // SIGKILL: nothing is released; the others wait out the duration.
        await sleep(2_000);
        requests = provider.requests;
        const killAt = performance.now();
        const killWallAt = Date.now();
        byHolder(second)!.kill("SIGKILL");
        await timeUntil("another leader after SIGKILL", async () => {
          const h = await leaseHolder(stack, namespace);
          return h !== undefined && h !== second;
        }, BOUND * (DURATION + RETRY + 1) * 1000);
        const takeoverMs = Math.round(performance.now() - killAt);
        const third = (await leaseHolder(stack, namespace))!;
        await byHolder(third)!.waitForOutput(
          /Adopted the token already in the Secret|Token refreshed/,
          10_000,
        );
        const killRequests = provider.requests - requests;
        // Wait for the new leader's first write, then check the Secret's token was never expired.
        const firstWriteMs = await timeUntil(
          "a write by the new leader",
          () => Promise.resolve(writes.some((w) => w.by === third)),
          40_000,
        ) + takeoverMs;
        const before = writes.filter((w) => w.at <= killWallAt && w.by !== undefined).at(-1)!;
        const next = writes.find((w) => w.by === third)!;
        console.log(
          `SIGKILL: another replica leads after ${takeoverMs} ms (target under ${
            DURATION + RETRY + 1
          } s), token requests at handover: ${killRequests}; its first write ${firstWriteMs} ms after the kill; the Secret's token valid until ${
            new Date(before.expiresAt!).toISOString()
          }, replaced ${((next.at - killWallAt) / 1000).toFixed(1)} s after the kill`,
        );
        assert(takeoverMs < BOUND * (DURATION + RETRY + 1) * 1000);
        assert(killRequests <= 1, `token requests at handover: ${killRequests}`);
        assert(
          next.at < before.expiresAt!,
          "the Secret held an expired token before the new write",
        );
        assertEquals(writerRuns(writes).filter((w) => w === third).length, 1);
      } finally {
        stopWatch.abort();
      }
    }),
});

Deno.test({
  name:
    "leader: with targets, one of two replicas keeps the target's Secret and names itself in refreshed-by; SIGTERM hands over",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using stack = await startKubeStack();
    await using provider = await startOidcProvider({ tokenTtlSeconds: 2 });
    const namespace = "team-a";
    assertEquals((await stack.kubectl(["create", "namespace", namespace])).code, 0);
    const home = await Deno.makeTempDir({ prefix: "ktr-home-" });
    const file = `${home}/targets.yaml`;
    await Deno.writeTextFile(file, `targets:\n  - name: ${NAME}\n    namespace: ${namespace}\n`);
    const stopWatch = new AbortController();
    const writes = watchWrites(stack, namespace, stopWatch.signal);
    const start = (pod: string) =>
      spawnRefresher({
        permissionSet: "kubeconfig",
        env: {
          KUBECONFIG: stack.kubeconfigPath,
          HOME: home,
          ...providerEnv(provider),
          KTR_LEADER_ELECT: "true",
          KTR_LEADER_LEASE: "refresher",
          KTR_LEADER_NAMESPACE: namespace,
          KTR_LEADER_DURATION: String(DURATION),
          KTR_LEADER_RENEWDEADLINE: String(RENEW_DEADLINE),
          KTR_LEADER_RETRYPERIOD: String(RETRY),
          POD_NAME: pod,
        },
        args: ["--config", file, "--http.address=off"],
      });
    const replicas = [start("replica-a"), start("replica-b")];
    try {
      await timeUntil("a first write", () => Promise.resolve(writes.length > 0), 30_000);
      await sleep(8_000);
      const runs = writerRuns(writes);
      assertEquals(runs.length, 1, `writers: ${runs.join(" -> ")}`);
      const leader = replicas.find((p) => p.output().includes("Became leader"))!;
      const handoverFrom = performance.now();
      leader.kill("SIGTERM");
      assertEquals((await leader.exited).code, 0);
      await timeUntil(
        "a write by the other replica",
        () => Promise.resolve(writerRuns(writes).length === 2),
        BOUND * (RETRY + 4) * 1000,
      );
      const handoverMs = Math.round(performance.now() - handoverFrom);
      console.log(
        `targets with leader election: writers ${
          writerRuns(writes).join(" -> ")
        }; the second writes ${handoverMs} ms after SIGTERM to the first`,
      );
      assertEquals(writerRuns(writes).length, 2);
    } finally {
      stopWatch.abort();
      for (const p of replicas) {
        await p[Symbol.asyncDispose]();
        const { output } = await p.exited;
        for (const token of provider.issued) assertNotIncludes(output, token);
        assertNotIncludes(output, provider.clientSecret);
      }
      await Deno.remove(home, { recursive: true });
    }
  },
});
