/**
 * The shipped manifests as a real pod: `deploy/base` (through tests/node/overlay) on a local node
 * (kubelet + containerd + runc, tests/node/), the image assembled by tests/node/image.sh, the
 * real kube-apiserver of tests/stack and the oidc-provider fixture, all on loopback.
 *
 * What it proves: the kubelet accepts the pod's securityContext (uid 65532, read-only root, no
 * capabilities, RuntimeDefault seccomp); the kubelet's own probes make it Ready; the Secret holds
 * the provider's token; the logs show the start and refresh lines and no secret; the
 * kubelet-projected token is rotated by the kubelet and refreshes go on past the first token's
 * expiry; memory stays under the shipped limit after 100 refreshes, with no OOM kill and no
 * restart; `kubectl delete pod` ends the container with exit code 0 within the grace period.
 *
 * While the kubelet's rotation is pending (about 8 minutes of waiting), the same node runs
 * `deploy/components/ha` (tests/node/overlay-ha, a namespace and Secret of its own): two pods
 * Ready through the kubelet's probes, the follower's /readyz saying "standby", one leader named by
 * the Lease and by the Secret's `refreshed-by`; `kubectl delete pod` of the leader ends it with
 * exit code 0 after it released the Lease, the other takes over and writes, and the Secret never
 * holds an expired token.
 *
 * There is no kube-controller-manager or scheduler: the test publishes the `kube-root-ca.crt`
 * ConfigMap (the root-ca-cert-publisher's job) and creates a Pod from the Deployment's template
 * with `nodeName` set (the ReplicaSet controller's and the scheduler's job). Running both from
 * the stack's module would add two processes and a build for no extra proof about the tool.
 */
import { assert, assertEquals, assertNotIncludes } from "./assert.ts";
import { type OidcProviderFixture, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { readSecret } from "./fixtures/real_cluster.ts";
import {
  containerMemory,
  type LocalNode,
  NODE_APISERVER_ARGS,
  nodeTestIgnore,
  startNode,
} from "./node/node.ts";
import { createNamespace, type KubeStack, startKubeStack } from "./stack/stack.ts";
import { noiseLines } from "./fixtures/noise.ts";
import { parse as parseYaml } from "yaml";
import { freePort } from "./fixtures/ports.ts";

const ignore = nodeTestIgnore();

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const MiB = 1024 * 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Relative path from `from` to `to` (kustomize refuses absolute resource paths). */
function relativePath(from: string, to: string): string {
  const a = from.split("/").filter(Boolean);
  const b = to.split("/").filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => ".."), ...b.slice(i)].join("/");
}

async function kubectlJson<T>(stack: KubeStack, args: string[]): Promise<T> {
  const r = await stack.kubectl([...args, "-o", "json"]);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

interface ContainerStatus {
  containerID?: string;
  restartCount: number;
  ready: boolean;
  state: {
    running?: { startedAt: string };
    terminated?: { exitCode: number; reason?: string; finishedAt?: string };
    waiting?: { reason?: string; message?: string };
  };
  lastState: { terminated?: { exitCode: number; reason?: string } };
}

interface Pod {
  metadata: { uid: string; name: string };
  spec: { terminationGracePeriodSeconds?: number };
  status: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: ContainerStatus[];
    podIP?: string;
  };
}

function jwtClaims(token: string): { exp: number; iat: number } {
  const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
  return JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
}

/** Start time of a process (ms since the epoch), from /proc: clock ticks after boot. */
async function processStartMs(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const btime = Number((await Deno.readTextFile("/proc/stat")).match(/^btime (\d+)/m)![1]);
  // USER_HZ is 100 on every Linux Deno runs on.
  return btime * 1000 + ticks * 10;
}

/** Polls a pod until the kubelet's readiness probe made it Ready; fails early on a dead start. */
async function waitReady(
  stack: KubeStack,
  node: LocalNode,
  namespace: string,
  podName: string,
  timeoutMs = 120_000,
): Promise<Pod> {
  const readyBy = performance.now() + timeoutMs;
  while (true) {
    const pod = await kubectlJson<Pod>(stack, ["-n", namespace, "get", "pod", podName]);
    if (pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return pod;
    const waiting = pod.status.containerStatuses?.[0]?.state.waiting;
    if (performance.now() > readyBy || pod.status.phase === "Failed") {
      throw new Error(
        `pod ${podName} not Ready: ${JSON.stringify(pod.status)}\nkubelet:\n${await node
          .logTail("kubelet", 30)}\ncontainerd:\n${await node.logTail("containerd", 15)}`,
      );
    }
    if (
      waiting?.reason === "CreateContainerConfigError" ||
      waiting?.reason === "ErrImageNeverPull"
    ) {
      throw new Error(`container cannot start: ${waiting.reason}: ${waiting.message}`);
    }
    await sleep(250);
  }
}

/**
 * Watches the objects of a list path (with its field selector) from now until `signal` aborts
 * or the server ends the watch, handing each event to `onEvent` as it arrives. Returns once the
 * watch is established, so nothing that happens afterwards is missed.
 */
async function watchObjects<T>(
  stack: KubeStack,
  path: string,
  signal: AbortSignal,
  onEvent: (type: string, object: T) => void,
): Promise<void> {
  const sep = path.includes("?") ? "&" : "?";
  const res = await stack.request(`${path}${sep}watch=true`, { signal });
  if (res.status !== 200) throw new Error(`watch ${path}: HTTP ${res.status}`);
  (async () => {
    let buffer = "";
    for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim() === "") continue;
        const event = JSON.parse(line) as { type: string; object: T };
        onEvent(event.type, event.object);
      }
    }
  })().catch(() => {}); // ends with the signal
}

/**
 * The terminated state of a pod's container, caught from a watch (started before this returns),
 * because the kubelet removes the pod object right after reporting it.
 */
async function watchTermination(
  stack: KubeStack,
  namespace: string,
  podName: string,
  signal: AbortSignal,
): Promise<{ terminated: Promise<{ exitCode: number; reason?: string; seenAt: number }> }> {
  let resolve!: (t: { exitCode: number; reason?: string; seenAt: number }) => void;
  const terminated = new Promise<{ exitCode: number; reason?: string; seenAt: number }>((r) =>
    resolve = r
  );
  await watchObjects<Pod>(
    stack,
    `/api/v1/namespaces/${namespace}/pods?fieldSelector=metadata.name%3D${podName}`,
    signal,
    (_, pod) => {
      const t = pod.status?.containerStatuses?.[0]?.state.terminated;
      if (t !== undefined) resolve({ ...t, seenAt: performance.now() });
    },
  );
  return { terminated };
}

/** Runs of one writer after another in the Secret's write history. */
function writerRuns(writes: { by?: string }[]): (string | undefined)[] {
  const runs: (string | undefined)[] = [];
  for (const w of writes) if (runs.length === 0 || runs.at(-1) !== w.by) runs.push(w.by);
  return runs;
}

/**
 * `deploy/components/ha` on the same node, while the base pod waits for its token rotation:
 * tests/node/overlay-ha in a namespace of its own, two pods from the Deployment's template, one
 * leader, and `kubectl delete pod` of the leader handing over to the other. Timing figures go
 * into `figures`; only a generous bound is asserted.
 */
async function haCase(
  stack: KubeStack,
  node: LocalNode,
  provider: OidcProviderFixture,
  work: string,
  figures: Record<string, string>,
): Promise<void> {
  const namespace = await createNamespace(stack, "node-ha");
  const caMap = await stack.kubectl(["-n", namespace, "create", "configmap", "kube-root-ca.crt"]
    .concat([`--from-file=ca.crt=${stack.caFile}`]));
  assertEquals(caMap.code, 0, caMap.stderr);
  const wrapper = `${work}/overlay-ha`;
  await Deno.mkdir(wrapper);
  await Deno.writeTextFile(
    `${wrapper}/kustomization.yaml`,
    JSON.stringify({
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      namespace,
      resources: [relativePath(wrapper, `${repo}/tests/node/overlay-ha`)],
      configMapGenerator: [{
        name: "kube-token-refresher",
        behavior: "merge",
        literals: [
          `KTR_OIDC_TOKENURL=${provider.tokenUrl}`,
          `KUBERNETES_SERVICE_PORT=${stack.port}`,
        ],
      }],
      secretGenerator: [{
        name: "kube-token-refresher-oidc",
        behavior: "replace",
        type: "Opaque",
        literals: [`clientid=${provider.clientId}`, `clientsecret=${provider.clientSecret}`],
      }],
    }),
  );
  const applied = await stack.kubectl(["apply", "-k", wrapper]);
  assertEquals(applied.code, 0, applied.stderr);
  const deployment = await kubectlJson<{
    spec: {
      replicas: number;
      template: {
        metadata: Record<string, unknown>;
        spec: {
          containers: {
            env?: { name: string; value?: string }[];
            ports: { containerPort: number }[];
          }[];
        };
      };
    };
  }>(stack, ["-n", namespace, "get", "deployment", "kube-token-refresher"]);
  assertEquals(deployment.spec.replicas, 2);
  const secretName = "ha-token";
  const leaseName = `kube-token-refresher-${secretName}`;

  const stopWatches = new AbortController();
  try {
    // Every write of the Secret: when it was seen, who wrote it, and when the token it holds
    // expires (the token's own exp claim).
    const writes: { at: number; by?: string; exp: number }[] = [];
    await watchObjects<
      { metadata: { annotations?: Record<string, string> }; data?: { token?: string } }
    >(
      stack,
      `/api/v1/namespaces/${namespace}/secrets?fieldSelector=metadata.name%3D${secretName}`,
      stopWatches.signal,
      (type, secret) => {
        const token = secret.data?.token;
        if (type === "DELETED" || token === undefined) return;
        writes.push({
          at: Date.now(),
          by: secret.metadata.annotations?.["ktr.appuio.ch/refreshed-by"],
          exp: jwtClaims(atob(token)).exp * 1000,
        });
      },
    );
    // Every change of the Lease's holder ("" once released).
    const holders: { at: number; holder: string }[] = [];
    await watchObjects<{ spec?: { holderIdentity?: string } }>(
      stack,
      `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases?fieldSelector=metadata.name%3D${leaseName}`,
      stopWatches.signal,
      (_, lease) => {
        const holder = lease.spec?.holderIdentity ?? "";
        if (holders.at(-1)?.holder !== holder) holders.push({ at: Date.now(), holder });
      },
    );

    // What the ReplicaSet controller and the scheduler would do, once per replica. Both pods
    // share the host's network, so each listens on a port of its own (the probes follow the
    // port named "http"); on a real cluster the component spreads them over nodes.
    const pods: { name: string; port: number }[] = [];
    for (let i = 0; i < deployment.spec.replicas; i++) {
      let port = freePort();
      while (pods.some((p) => p.port === port)) port = freePort();
      pods.push({ name: `kube-token-refresher-ha-${i}`, port });
    }
    const createdAt = performance.now();
    for (const { name, port } of pods) {
      const spec = structuredClone(deployment.spec.template.spec);
      const container = spec.containers[0];
      container.ports[0].containerPort = port;
      container.env = [
        ...(container.env ?? []),
        { name: "KTR_HTTP_ADDRESS", value: `127.0.0.1:${port}` },
      ];
      const created = await stack.kubectl(["create", "-f", "-"], {
        stdin: JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { ...deployment.spec.template.metadata, name, namespace },
          spec: { ...spec, nodeName: node.name },
        }),
      });
      assertEquals(created.code, 0, created.stderr);
    }
    await Promise.all(pods.map((p) => waitReady(stack, node, namespace, p.name)));
    figures["ha: two pods created to both Ready"] = `${
      Math.round(performance.now() - createdAt)
    } ms`;

    // One leader: the Lease names one of the pods, and every write so far names the same.
    const holder = holders.at(-1)?.holder ?? "";
    const leader = pods.find((p) => holder.startsWith(`${p.name}_`));
    assert(leader, `the Lease names no pod: ${JSON.stringify(holders)}`);
    const follower = pods.find((p) => p !== leader)!;
    assert(writes.length > 0, "the leader was Ready before any write");
    assertEquals(writerRuns(writes), [holder], JSON.stringify(writes));
    const probe = async (p: { port: number }, path: string) => {
      const res = await fetch(`http://127.0.0.1:${p.port}${path}`);
      return { status: res.status, body: (await res.text()).trim() };
    };
    const leading = async (p: { port: number }) =>
      (await probe(p, "/metrics")).body.match(/^ktr_leader (\d+)$/m)?.[1];
    assertEquals(await probe(follower, "/readyz"), { status: 200, body: "standby" });
    assertEquals(await probe(leader, "/readyz"), { status: 200, body: "ok" });
    assertEquals([await leading(leader), await leading(follower)], ["1", "0"]);

    // A refresh by the leader, so the handover falls inside a term rather than at its start.
    const refreshBy = Date.now() + 5 * 20_000;
    while (writes.filter((w) => w.by === holder).length < 2) {
      assert(Date.now() < refreshBy, "the leader wrote only once");
      await sleep(500);
    }

    // Delete the leader: SIGTERM from the kubelet, the Lease released, the follower takes it.
    const { terminated } = await watchTermination(
      stack,
      namespace,
      leader.name,
      stopWatches.signal,
    );
    const issuedAtDelete = provider.issued.length;
    const deleteAt = Date.now();
    const deletePerf = performance.now();
    const deleted = await stack.kubectl(
      ["-n", namespace, "delete", "pod", leader.name, "--wait=false"],
    );
    assertEquals(deleted.code, 0, deleted.stderr);
    // Target: within leader.retryperiod (2 s) + 1 s, as with SIGTERM on the stack.
    const takeoverBound = 5 * 3_000;
    let taken: { at: number; holder: string } | undefined;
    while (taken === undefined) {
      taken = holders.find((h) => h.at >= deleteAt && h.holder.startsWith(`${follower.name}_`));
      assert(
        Date.now() - deleteAt < takeoverBound,
        `no takeover: ${JSON.stringify(holders)}`,
      );
      await sleep(100);
    }
    const takeoverMs = taken.at - deleteAt;
    const issuedAtTakeover = provider.issued.length;
    const end = await Promise.race([terminated, sleep(60_000).then(() => null)]);
    assert(end, "no terminated state was reported for the deleted leader");
    assertEquals(end.exitCode, 0, JSON.stringify(end));
    assertEquals(end.reason, "Completed");
    // Released, not run out: the old leader emptied the holder before the follower took it.
    const takenAt = holders.indexOf(taken);
    assertEquals(
      holders.slice(takenAt - 2, takenAt + 1).map((h) => h.holder),
      [holder, "", taken.holder],
      JSON.stringify(holders),
    );
    // The new leader writes: at its next renewal point (it adopted the token in the Secret).
    const writeBy = Date.now() + 5 * 20_000;
    let firstWrite: { at: number } | undefined;
    while (firstWrite === undefined) {
      firstWrite = writes.find((w) => w.by === taken!.holder);
      assert(Date.now() < writeBy, "the new leader did not write");
      await sleep(250);
    }
    figures["ha: kubectl delete pod of the leader to the other's takeover"] = `${takeoverMs} ms ` +
      `(bound ${takeoverBound} ms); its first write after ${
        firstWrite.at - deleteAt
      } ms; token requests at the takeover: ${issuedAtTakeover - issuedAtDelete}; the old leader ` +
      `terminated (exit 0, Lease released) after ${Math.round(end.seenAt - deletePerf)} ms`;
    assertEquals(writerRuns(writes), [holder, taken.holder], JSON.stringify(writes));
    assertEquals(await leading(follower), "1");

    // The Secret never held an expired token: each write came before the previous token's
    // expiry, and the last one still holds.
    for (let i = 1; i < writes.length; i++) {
      assert(
        writes[i].at < writes[i - 1].exp,
        `the Secret held an expired token from ${new Date(writes[i - 1].exp).toISOString()}`,
      );
    }
    assert(Date.now() < writes.at(-1)!.exp, "the Secret's token has expired");

    // The new leader's log: the adoption, and no secret.
    const logs = await stack.kubectl(["-n", namespace, "logs", follower.name]);
    assertEquals(logs.code, 0, logs.stderr);
    assert(logs.stdout.includes("Adopted the token already in the Secret"), logs.stdout);
    for (const token of provider.issued) assertNotIncludes(logs.stdout, token);
    assertNotIncludes(logs.stdout, provider.clientSecret);
    assertEquals(noiseLines(logs.stdout), [], "noise in the new leader's log");

    // Done: the remaining pod goes too, so that it does not compete with the base pod.
    const rest = await stack.kubectl(
      ["-n", namespace, "delete", "pod", follower.name, "--wait=false"],
    );
    assertEquals(rest.code, 0, rest.stderr);
  } finally {
    stopWatches.abort();
  }
}

Deno.test({
  name: "deploy/base runs as a real pod: Ready by the kubelet's probes, token rotation, " +
    "memory under the limit, clean exit on delete; the ha component: one leader, handover on " +
    "delete",
  ignore,
  // The node's processes and the provider's sockets outlive single steps by design.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const figures: Record<string, string> = {};
    // Ends the background rotation watch when the test fails before awaiting it.
    let testOver = false;
    await using stack = await startKubeStack({
      apiserverArgs: [
        ...NODE_APISERVER_ARGS,
        // Otherwise the apiserver quietly extends the kubelet's 600 s tokens to a year, and
        // using the first token after its expiry would go unnoticed.
        "--service-account-extend-token-expiration=false",
      ],
    });
    // Lifetime 3 s: a refresh every 2 s, so 100 refreshes take a little over 3 minutes.
    await using provider = await startOidcProvider({ tokenTtlSeconds: 3 });
    // The ha pods' own provider (their token requests stay apart from the base pod's count), with
    // the default 20 s tokens: a write every 13 s, and a handover inside a token's lifetime.
    await using haProvider = await startOidcProvider();
    await using node = await startNode(stack);
    figures["node start (containerd + kubelet registered)"] = `${node.startMs} ms`;

    const work = await Deno.makeTempDir({ prefix: "ktr-node-test-" });
    try {
      // The image, from this tree's sources.
      const imageStart = performance.now();
      const image = await new Deno.Command("bash", {
        args: [`${repo}/tests/node/image.sh`, `${work}/image.tar`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(image.success, new TextDecoder().decode(image.stderr));
      await node.importImage(`${work}/image.tar`);
      figures["image assembled and imported"] = `${
        Math.round(performance.now() - imageStart)
      } ms, ${(Deno.statSync(`${work}/image.tar`).size / MiB).toFixed(0)} MiB`;

      const namespace = await createNamespace(stack, "node");
      // kube-controller-manager's root-ca-cert-publisher would publish this in every namespace.
      const caMap = await stack.kubectl(["-n", namespace, "create", "configmap", "kube-root-ca.crt"]
        .concat([`--from-file=ca.crt=${stack.caFile}`]));
      assertEquals(caMap.code, 0, caMap.stderr);

      // The run's values around the committed overlay.
      const httpPort = freePort();
      const wrapper = `${work}/overlay`;
      await Deno.mkdir(wrapper);
      await Deno.writeTextFile(
        `${wrapper}/kustomization.yaml`,
        JSON.stringify({
          apiVersion: "kustomize.config.k8s.io/v1beta1",
          kind: "Kustomization",
          namespace,
          resources: [relativePath(wrapper, `${repo}/tests/node/overlay`)],
          configMapGenerator: [{
            name: "kube-token-refresher",
            behavior: "merge",
            literals: [
              `KTR_OIDC_TOKENURL=${provider.tokenUrl}`,
              `KUBERNETES_SERVICE_PORT=${stack.port}`,
              `KTR_HTTP_ADDRESS=127.0.0.1:${httpPort}`,
            ],
          }],
          secretGenerator: [{
            name: "kube-token-refresher-oidc",
            behavior: "replace",
            type: "Opaque",
            literals: [`clientid=${provider.clientId}`, `clientsecret=${provider.clientSecret}`],
          }],
          patches: [{
            target: { kind: "Deployment", name: "kube-token-refresher" },
            patch: JSON.stringify([{
              op: "replace",
              path: "/spec/template/spec/containers/0/ports/0/containerPort",
              value: httpPort,
            }]),
          }],
        }),
      );
      const applied = await stack.kubectl(["apply", "-k", wrapper]);
      assertEquals(applied.code, 0, applied.stderr);

      // What the ReplicaSet controller and the scheduler would do: a Pod from the template,
      // bound to the node.
      const deployment = await kubectlJson<{
        spec: { template: { metadata: Record<string, unknown>; spec: Record<string, unknown> } };
      }>(stack, ["-n", namespace, "get", "deployment", "kube-token-refresher"]);
      const podName = "kube-token-refresher-node";
      const podManifest = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { ...deployment.spec.template.metadata, name: podName, namespace },
        spec: { ...deployment.spec.template.spec, nodeName: node.name },
      };
      const createdAt = performance.now();
      const created = await stack.kubectl(["create", "-f", "-"], {
        stdin: JSON.stringify(podManifest),
      });
      assertEquals(created.code, 0, created.stderr);
      const getPod = () => kubectlJson<Pod>(stack, ["-n", namespace, "get", "pod", podName]);
      // Ready through the kubelet's own readiness probe on /readyz.
      let pod = await waitReady(stack, node, namespace, podName);
      const readyMs = performance.now() - createdAt;
      figures["pod created to Ready"] = `${Math.round(readyMs)} ms`;
      assert(readyMs < 5 * 10_000, `Ready after ${readyMs} ms`);
      const containerId = pod.status.containerStatuses![0].containerID!.replace(/^.*:\/\//, "");

      const memory0 = await containerMemory(node, containerId);
      const startedMs = await processStartMs(memory0.pid);

      // The process as the kubelet started it: uid 65532, no capabilities, read-only root.
      const status = await Deno.readTextFile(`/proc/${memory0.pid}/status`);
      assert(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m.test(status), status);
      assert(/^CapEff:\s+0+$/m.test(status), status);
      assert(/^Seccomp:\s+2$/m.test(status), "no seccomp filter on the container");
      const rootMount = (await Deno.readTextFile(`/proc/${memory0.pid}/mountinfo`)).split("\n")
        .find((l) => l.split(" ")[4] === "/");
      assert(rootMount?.split(" ")[5].split(",").includes("ro"), rootMount);

      // The kubelet-projected token: rotated by the kubelet at about 80 % of 600 s. Watched in
      // the background while the other checks run; refreshes must keep succeeding after the
      // first token has expired, which only works if the tool reads the new file.
      const tokenFile =
        `${node.kubeletRoot}/pods/${pod.metadata.uid}/volumes/kubernetes.io~projected/kube-api-access/token`;
      const firstToken = await Deno.readTextFile(tokenFile);
      const first = jwtClaims(firstToken);
      assertEquals(first.exp - first.iat, 600);
      const rotation = (async () => {
        const deadline = Date.now() + 15 * 60_000;
        let rotatedAt: number | undefined;
        while (rotatedAt === undefined) {
          if (Date.now() > deadline) throw new Error("the kubelet did not rotate the token");
          await sleep(5_000);
          if (testOver) throw new Error("test over");
          if ((await Deno.readTextFile(tokenFile)) !== firstToken) rotatedAt = Date.now();
        }
        // Past the first token's expiry (and the apiserver's ~10 s token cache).
        const after = first.exp * 1000 + 15_000;
        while (Date.now() < after) {
          if (testOver) throw new Error("test over");
          await sleep(Math.min(5_000, after - Date.now()));
        }
        const issuedBefore = provider.issued.length;
        const writeBy = Date.now() + 60_000;
        while (true) {
          const secret = await readSecret(stack, namespace, "access-token");
          if (provider.issued.indexOf(secret.decoded.token) >= issuedBefore) break;
          if (Date.now() > writeBy) {
            throw new Error("no Secret write after the first token expired");
          }
          await sleep(1_000);
        }
        return (rotatedAt - first.iat * 1000) / 1000;
      })();
      rotation.catch(() => {}); // awaited below; no unhandled rejection meanwhile

      // The Secret holds the provider's token.
      const secret = await readSecret(stack, namespace, "access-token");
      assert(provider.issued.includes(secret.decoded.token), "the Secret holds no issued token");

      // 100 refreshes, then the memory the limit applies to.
      const hundredBy = Date.now() + 5 * 200_000;
      while (provider.issued.length < 101) {
        assert(Date.now() < hundredBy, `only ${provider.issued.length} tokens issued`);
        await sleep(2_000);
      }
      const mem = await containerMemory(node, containerId);
      assertEquals(mem.limitBytes, shippedMemoryLimitBytes());
      assert(mem.workingSetBytes < mem.limitBytes, `working set ${mem.workingSetBytes}`);
      assertEquals(mem.oomKills, 0);
      figures[`memory after 100 refreshes (limit ${mem.limitBytes / MiB} MiB)`] =
        `working set ${
          (mem.workingSetBytes / MiB).toFixed(1)
        } MiB (what the kubelet evicts on), cgroup usage (what the limit applies to) ${
          (mem.usageBytes / MiB).toFixed(1)
        } MiB; ` +
        `process RSS ${(mem.processRssBytes / MiB).toFixed(1)} MiB = anonymous ${
          (mem.processRssAnonBytes / MiB).toFixed(1)
        } + file-backed ${(mem.processRssFileBytes / MiB).toFixed(1)} MiB`;

      // The logs, through the apiserver and the kubelet: start and refresh lines, no secret.
      const logs = await stack.kubectl(["-n", namespace, "logs", podName, "--timestamps"]);
      assertEquals(logs.code, 0, logs.stderr);
      assert(logs.stdout.includes('"message":"Starting"'), logs.stdout.slice(0, 2000));
      const refreshLines = logs.stdout.split("\n").filter((l) => l.includes("Token refreshed"));
      assert(refreshLines.length >= 100, `${refreshLines.length} refresh lines`);
      for (const token of provider.issued) assertNotIncludes(logs.stdout, token);
      assertNotIncludes(logs.stdout, provider.clientSecret);
      assertNotIncludes(logs.stdout, firstToken);
      // The image's entrypoint passes --quiet: no runtime notice reads like an error in the pod.
      assertEquals(noiseLines(logs.stdout), [], "noise in the pod's log");
      const firstWriteMs = Date.parse(refreshLines[0].split(" ")[0]) - startedMs;
      figures["first Secret write after the container's process started"] = `${firstWriteMs} ms`;

      // The ha component on the same node, while the rotation is still pending.
      await haCase(stack, node, haProvider, work, figures);

      // The rotation, awaited.
      const rotatedAfter = await rotation;
      figures["kubelet rotated the 600 s token after"] = `${rotatedAfter.toFixed(0)} s`;
      assert(rotatedAfter < 600, `rotated only after ${rotatedAfter} s`);

      pod = await getPod();
      const cs = pod.status.containerStatuses![0];
      assertEquals(cs.restartCount, 0, JSON.stringify(cs));
      assertEquals(cs.lastState.terminated, undefined);
      assertEquals((await containerMemory(node, containerId)).oomKills, 0);

      // Delete: SIGTERM from the kubelet, exit 0 within the grace period.
      const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
      const stopWatch = new AbortController();
      const { terminated } = await watchTermination(stack, namespace, podName, stopWatch.signal);
      const deleteAt = performance.now();
      const deleted = await stack.kubectl([
        "-n",
        namespace,
        "delete",
        "pod",
        podName,
        "--wait=false",
      ]);
      assertEquals(deleted.code, 0, deleted.stderr);
      const end = await Promise.race([terminated, sleep((grace + 30) * 1000).then(() => null)]);
      stopWatch.abort();
      assert(end, "no terminated state was reported after the delete");
      const stopMs = end.seenAt - deleteAt;
      figures["delete to container terminated"] = `${Math.round(stopMs)} ms (grace ${grace} s)`;
      assertEquals(end.exitCode, 0, JSON.stringify(end));
      assertEquals(end.reason, "Completed");
      assert(stopMs < grace * 1000, `stopped after ${stopMs} ms`);

      // Nothing of the node may outlive it: processes, mounts, cgroups.
      await node.stop();
      assertEquals(node.leftovers(), []);
    } catch (e) {
      console.error(`kubelet log tail:\n${await node.logTail("kubelet", 40)}`);
      throw e;
    } finally {
      testOver = true;
      await Deno.remove(work, { recursive: true }).catch(() => {});
      console.log("\nreal-pod figures:");
      for (const [k, v] of Object.entries(figures)) console.log(`  ${k}: ${v}`);
    }
  },
});

/** The memory limit `deploy/base` ships (in Mi), which the pod must have been given. */
function shippedMemoryLimitBytes(): number {
  const manifest = parseYaml(Deno.readTextFileSync(`${repo}/deploy/base/deployment.yaml`)) as {
    spec: { template: { spec: { containers: { resources: { limits: { memory: string } } }[] } } };
  };
  const limit = manifest.spec.template.spec.containers[0].resources.limits.memory;
  const mebibytes = limit.match(/^(\d+)Mi$/)?.[1];
  assert(mebibytes !== undefined, `deploy/base's memory limit ${limit} is not in Mi`);
  return Number(mebibytes) * MiB;
}
