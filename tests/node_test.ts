/**
 * The shipped manifests as a real pod: `deploy/base` (through tests/node/overlay) on a local node
 * (kubelet + containerd + runc, tests/node/), the image assembled by tests/node/image.sh, the
 * real kube-apiserver of tests/stack and the oidc-provider fixture, all on loopback.
 *
 * What it proves: the kubelet accepts the pod's securityContext (uid 65532, read-only root, no
 * capabilities, RuntimeDefault seccomp); the kubelet's own probes make it Ready; the Secret holds
 * the provider's token; the logs show the start and refresh lines and no secret; the
 * kubelet-projected token is rotated by the kubelet and refreshes go on past the first token's
 * expiry; memory stays under the 128Mi limit after 100 refreshes, with no OOM kill and no
 * restart; `kubectl delete pod` ends the container with exit code 0 within the grace period.
 *
 * There is no kube-controller-manager or scheduler: the test publishes the `kube-root-ca.crt`
 * ConfigMap (the root-ca-cert-publisher's job) and creates a Pod from the Deployment's template
 * with `nodeName` set (the ReplicaSet controller's and the scheduler's job). Running both from
 * the stack's module would add two processes and a build for no extra proof about the tool.
 */
import { assert, assertEquals, assertNotIncludes } from "./assert.ts";
import { startOidcProvider } from "./fixtures/oidc_provider.ts";
import { readSecret } from "./fixtures/real_cluster.ts";
import { containerMemory, NODE_APISERVER_ARGS, nodeTestIgnore, startNode } from "./node/node.ts";
import { createNamespace, type KubeStack, startKubeStack } from "./stack/stack.ts";
import { noiseLines } from "./fixtures/noise.ts";

const ignore = nodeTestIgnore();

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const MiB = 1024 * 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
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

Deno.test({
  name: "deploy/base runs as a real pod: Ready by the kubelet's probes, token rotation, " +
    "memory under the limit, clean exit on delete",
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
      let pod = await getPod();
      const readyBy = performance.now() + 120_000;
      while (
        !pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      ) {
        const waiting = pod.status.containerStatuses?.[0]?.state.waiting;
        if (performance.now() > readyBy || pod.status.phase === "Failed") {
          throw new Error(
            `pod not Ready: ${JSON.stringify(pod.status)}\nkubelet:\n${await node.logTail(
              "kubelet",
              30,
            )}\ncontainerd:\n${await node.logTail("containerd", 15)}`,
          );
        }
        if (
          waiting?.reason === "CreateContainerConfigError" ||
          waiting?.reason === "ErrImageNeverPull"
        ) {
          throw new Error(`container cannot start: ${waiting.reason}: ${waiting.message}`);
        }
        await sleep(250);
        pod = await getPod();
      }
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
      assertEquals(mem.limitBytes, 128 * MiB);
      assert(mem.workingSetBytes < mem.limitBytes, `working set ${mem.workingSetBytes}`);
      assertEquals(mem.oomKills, 0);
      figures["memory after 100 refreshes (limit 128 MiB)"] =
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

      // The rotation, awaited.
      const rotatedAfter = await rotation;
      figures["kubelet rotated the 600 s token after"] = `${rotatedAfter.toFixed(0)} s`;
      assert(rotatedAfter < 600, `rotated only after ${rotatedAfter} s`);

      pod = await getPod();
      const cs = pod.status.containerStatuses![0];
      assertEquals(cs.restartCount, 0, JSON.stringify(cs));
      assertEquals(cs.lastState.terminated, undefined);
      assertEquals((await containerMemory(node, containerId)).oomKills, 0);

      // Delete: SIGTERM from the kubelet, exit 0 within the grace period. The final status is
      // caught from a watch, because the kubelet removes the object right after reporting it.
      const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
      const watch = await stack.request(
        `/api/v1/namespaces/${namespace}/pods?watch=true&fieldSelector=metadata.name%3D${podName}`,
      );
      const terminated = (async () => {
        const lines = watch.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        while (true) {
          const { value, done } = await lines.read();
          if (done) return undefined;
          buffer += value;
          let nl;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const event = JSON.parse(buffer.slice(0, nl)) as { object: Pod };
            buffer = buffer.slice(nl + 1);
            const t = event.object.status?.containerStatuses?.[0]?.state.terminated;
            if (t !== undefined) {
              await lines.cancel();
              return { ...t, seenAt: performance.now() };
            }
          }
        }
      })();
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
