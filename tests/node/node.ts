/**
 * A real Kubernetes node for tests: containerd (Debian's) with a runc built with seccomp, and the
 * kubelet of the same release as the stack's apiserver, registered against a {@link KubeStack}.
 * Everything lives in one temporary folder (containerd's root, state and socket, the kubelet's
 * root, certificates and pod logs) and one cgroup of its own, so several nodes on one machine do
 * not see each other's pods; {@link LocalNode.stop} kills what runs, unmounts, and removes it all.
 *
 * What this machine kind needed, beyond a kubelet's defaults (see tests/node/README.md):
 * - `failCgroupV1: false`: the host mounts cgroup v1, which this kubelet refuses by default;
 * - `restrict_oom_score_adj` in containerd: without CAP_SYS_RESOURCE the sandbox's -998 fails;
 * - runc built with the `seccomp` tag (the pod asks for the RuntimeDefault profile);
 * - no CNI: the test pod uses the host network, and the node stays NotReady for networking.
 *
 * The kubelet authenticates to the apiserver as the stack's admin, and serves its own API to
 * anonymous callers on 127.0.0.1 only (`kubectl logs` goes through it): test settings.
 *
 * @module
 */

import type { KubeStack } from "../stack/stack.ts";
import { stackAvailable } from "../stack/stack.ts";
import { freePorts } from "../fixtures/ports.ts";

/** The pieces tests/node/build.sh made, as listed in its node.json. */
export interface NodeParts {
  /** The `k8s.io/kubernetes` version of the kubelet (the apiserver's). */
  kubernetesVersion: string;
  /** kubelet executable. */
  kubelet: string;
  /** runc executable, built with seccomp. */
  runc: string;
  /** containerd executable. */
  containerd: string;
  /** containerd's `ctr` client. */
  ctr: string;
  /** Name of the pause image, as containerd's sandbox image. */
  pauseImage: string;
  /** OCI layout archive of the pause image. */
  pauseArchive: string;
  /** DENO_DIR with every npm package of deno.lock (read by image.sh). */
  denoDir: string;
}

/** A running node. Stop it with {@link LocalNode.stop} or `await using`. */
export interface LocalNode {
  /** Node name, as registered. */
  name: string;
  /** Temporary folder of everything the node writes. */
  dir: string;
  /** The kubelet's root folder (pods' volumes live under `pods/<uid>/volumes`). */
  kubeletRoot: string;
  /** Port of the kubelet's API on 127.0.0.1 (HTTPS, anonymous allowed). */
  kubeletPort: number;
  /** The node's cgroup (relative to each hierarchy's mount), parent of `kubepods`. */
  cgroupRoot: string;
  /** Milliseconds from {@link startNode} until the Node object was registered. */
  startMs: number;
  /** Loads an OCI layout archive into containerd's `k8s.io` namespace (what the kubelet sees). */
  importImage(archive: string): Promise<void>;
  /** Runs `ctr` against this node's containerd; never throws on a non-zero exit. */
  ctr(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Last `lines` lines of a process log. */
  logTail(which: "kubelet" | "containerd", lines?: number): Promise<string>;
  /** Stops the kubelet, kills containers and shims, stops containerd, unmounts, cleans up. */
  stop(): Promise<void>;
  /** What is still there of the node (processes, mounts, cgroups); empty after a clean stop. */
  leftovers(): string[];
  /** Same as {@link stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

function env(name: string): string | undefined {
  const v = Deno.env.get(name);
  return v === undefined || v === "" ? undefined : v;
}

/** Folder of tests/node/build.sh's output: `${KTR_NODE_CACHE:-$HOME/.cache/kube-token-refresher/node}`. */
export function nodeCacheDir(): string {
  const root = env("KTR_NODE_CACHE");
  if (root !== undefined) return root;
  const home = env("HOME");
  if (home === undefined) throw new Error("neither KTR_NODE_CACHE nor HOME is set");
  return `${home}/.cache/kube-token-refresher/node`;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The node's pieces, or why they cannot be used on this machine. */
export function nodeParts(): NodeParts | string {
  if (Deno.build.os !== "linux") return "a node needs Linux";
  if (Deno.uid() !== 0) return "a node needs root (mounts, cgroups, namespaces)";
  if (!exists("/sys/fs/cgroup/memory") && !exists("/sys/fs/cgroup/cgroup.controllers")) {
    return "no memory cgroup is mounted";
  }
  if (!stackAvailable()) return "the Kubernetes test stack is not built";
  let parts: NodeParts;
  const file = `${nodeCacheDir()}/node.json`;
  try {
    parts = JSON.parse(Deno.readTextFileSync(file));
  } catch {
    return `${file} is missing`;
  }
  for (const [key, path] of Object.entries(parts)) {
    if (key.endsWith("Version") || key === "pauseImage") continue;
    if (!exists(path)) return `${key} (${path}) is missing`;
  }
  return parts;
}

let warned = false;

/**
 * For `Deno.test({ ignore: nodeTestIgnore() })`: skip, with one loud line, when the node cannot
 * be had here; never under `CI=true`, where the test then fails and says why.
 */
export function nodeTestIgnore(): boolean {
  const parts = nodeParts();
  if (typeof parts !== "string") return false;
  if (env("CI") === "true") return false;
  if (!warned) {
    warned = true;
    console.error(
      `%cSKIPPING real-pod tests: ${parts}; run: bash tests/node/build.sh (as root)`,
      "color: yellow; font-weight: bold",
    );
  }
  return true;
}

const decoder = new TextDecoder();

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function tail(path: string, lines: number): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch (e) {
    return `(cannot read ${path}: ${e instanceof Error ? e.message : e})`;
  }
}

interface Proc {
  child: Deno.ChildProcess;
  status: Promise<Deno.CommandStatus>;
  exited: boolean;
}

async function spawnLogged(cmd: string, args: string[], log: string): Promise<Proc> {
  const file = await Deno.open(log, { create: true, append: true });
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const err = await Deno.open(log, { append: true });
  child.stdout.pipeTo(file.writable).catch(() => {});
  child.stderr.pipeTo(err.writable).catch(() => {});
  const proc: Proc = {
    child,
    exited: false,
    status: child.status.then((s) => {
      proc.exited = true;
      return s;
    }),
  };
  return proc;
}

async function terminate(proc: Proc | undefined, graceMs: number): Promise<void> {
  if (proc === undefined) return;
  if (!proc.exited) {
    try {
      proc.child.kill("SIGTERM");
    } catch {
      // exited in between
    }
    const done = await Promise.race([
      proc.status.then(() => true),
      sleep(graceMs).then(() => false),
    ]);
    if (!done) {
      try {
        proc.child.kill("SIGKILL");
      } catch {
        // exited in between
      }
    }
  }
  await proc.status;
}

/**
 * Mount points of the cgroup v1 hierarchies (none on a pure cgroup v2 host), and with `v2` also
 * of cgroup v2 (a hybrid host's "unified" one, where runc creates the same groups too).
 */
function cgroupHierarchies(v2 = false): string[] {
  const out: string[] = [];
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const [pre, post] = line.split(" - ");
    if (post?.startsWith("cgroup ") || (v2 && post?.startsWith("cgroup2 "))) {
      out.push(pre.split(" ")[4]);
    }
  }
  return out;
}

/** Pids in a cgroup folder and every folder below it. */
function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    try {
      for (const p of Deno.readTextFileSync(`${d}/cgroup.procs`).split("\n")) {
        if (p.trim() !== "") pids.push(Number(p));
      }
      for (const e of Deno.readDirSync(d)) if (e.isDirectory) walk(`${d}/${e.name}`);
    } catch {
      // gone meanwhile
    }
  };
  walk(dir);
  return pids;
}

/** Removes a cgroup folder tree, deepest first (cgroupfs only allows rmdir of empty groups). */
function removeCgroup(dir: string): void {
  try {
    for (const e of Deno.readDirSync(dir)) if (e.isDirectory) removeCgroup(`${dir}/${e.name}`);
    Deno.removeSync(dir);
  } catch {
    // not there, or still busy: reported by the caller's check
  }
}

/** Pids whose command line names `needle` (containerd's shims carry the socket address). */
function pidsWithArgument(needle: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(needle)) pids.push(+e.name);
    } catch {
      // exited
    }
  }
  return pids;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // exited
    }
  }
}

/** Mount points at or below `dir`, deepest first. */
function mountsBelow(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m !== undefined && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

// The kernel settings the kubelet sets on start (setupKernelTunables); put back on stop, because
// the machine is shared and e.g. kernel.panic_on_oops=1 is not for a test to leave behind.
const KERNEL_TUNABLES = [
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
];

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  /** Pieces to run; default {@link nodeParts}. */
  parts?: NodeParts;
  /** How long to wait for containerd and the Node object, in milliseconds. Default 120000. */
  timeoutMs?: number;
  /** Keep the temporary folder after stop (also with `KTR_NODE_KEEP=1`); mounts are removed. */
  keepDir?: boolean;
}

/**
 * Starts containerd and a kubelet registered with `stack` (whose apiserver must prefer the
 * `InternalIP` address of nodes, see {@link NODE_APISERVER_ARGS}), with the pause image loaded.
 * On any failure during start-up, whatever was started is cleaned up and the error carries the
 * tail of the relevant log.
 */
export async function startNode(stack: KubeStack, opts: StartNodeOptions = {}): Promise<LocalNode> {
  const started = performance.now();
  const found = opts.parts ?? nodeParts();
  if (typeof found === "string") throw new Error(`cannot start a node: ${found}`);
  const parts = found;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const keepDir = opts.keepDir ?? env("KTR_NODE_KEEP") === "1";
  const id = randomHex(4);
  // Pods of the host's network get the node's address, where the kubelet's probes and the
  // apiserver (logs) connect: loopback. Each stack has its own apiserver, so the name is free.
  const name = "127.0.0.1";
  const dir = await Deno.makeTempDir({ prefix: "ktr-node-" });
  const socket = `${dir}/containerd.sock`;
  const kubeletRoot = `${dir}/kubelet`;
  const cgroupRoot = `/ktr-node-${id}`;
  const logs = { containerd: `${dir}/containerd.log`, kubelet: `${dir}/kubelet.log` };
  const [kubeletPort, healthzPort] = freePorts(2);
  const tunables = new Map<string, string>();
  for (const t of KERNEL_TUNABLES) {
    try {
      tunables.set(t, Deno.readTextFileSync(`/proc/sys/${t}`).trim());
    } catch {
      // not on this kernel
    }
  }

  let containerd: Proc | undefined;
  let kubelet: Proc | undefined;
  let stopping: Promise<void> | undefined;
  const hierarchies = cgroupHierarchies();

  const ctr = (args: string[]) =>
    run(parts.ctr, ["--address", socket, "--namespace", "k8s.io", ...args]);

  const cleanup = async () => {
    await terminate(kubelet, 15_000);
    // Containers first (they live in the node's cgroup), then their shims, then containerd.
    for (let i = 0; i < 3; i++) {
      const pids = cgroupHierarchies(true).flatMap((h) => cgroupPids(`${h}${cgroupRoot}`));
      if (pids.length === 0) break;
      killAll(pids);
      await sleep(300);
    }
    await terminate(containerd, 10_000);
    killAll(pidsWithArgument(socket));
    for (const m of mountsBelow(dir)) {
      const r = await run("umount", [m]);
      if (r.code !== 0) await run("umount", ["-l", m]);
    }
    for (const h of cgroupHierarchies(true)) removeCgroup(`${h}${cgroupRoot}`);
    for (const [t, v] of tunables) {
      try {
        if (Deno.readTextFileSync(`/proc/sys/${t}`).trim() !== v) {
          Deno.writeTextFileSync(`/proc/sys/${t}`, v);
        }
      } catch {
        // best effort
      }
    }
    if (!keepDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const unload = () => {
    // Last resort when the test process exits without stop(): kill what runs. Mounts and
    // cgroups need async work and are left to the next run's operator.
    for (const p of [kubelet, containerd]) {
      try {
        p?.child.kill("SIGKILL");
      } catch {
        // gone
      }
    }
  };
  globalThis.addEventListener("unload", unload);

  try {
    // The node's own cgroup in every hierarchy; cpuset needs its cpus and mems filled in
    // before anything can join a child group.
    for (const h of hierarchies) {
      await Deno.mkdir(`${h}${cgroupRoot}`, { recursive: true });
      if (h.endsWith("cpuset")) {
        for (const f of ["cpuset.cpus", "cpuset.mems"]) {
          await Deno.writeTextFile(`${h}${cgroupRoot}/${f}`, await Deno.readTextFile(`${h}/${f}`));
        }
      }
    }

    await Deno.writeTextFile(
      `${dir}/containerd.toml`,
      `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${dir}/containerd-ttrpc.sock"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${parts.pauseImage}"
  # The session lacks CAP_SYS_RESOURCE: the sandbox's oom_score_adj of -998 would be refused.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "${parts.runc}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${dir}/cni/bin"
    conf_dir = "${dir}/cni/conf"
`,
    );
    containerd = await spawnLogged(
      parts.containerd,
      ["--config", `${dir}/containerd.toml`],
      logs.containerd,
    );
    const deadline = started + timeoutMs;
    while ((await ctr(["version"])).code !== 0) {
      if (containerd.exited || performance.now() > deadline) {
        throw new Error(`containerd did not start:\n${await tail(logs.containerd, 30)}`);
      }
      await sleep(200);
    }
    const imported = await ctr(["images", "import", parts.pauseArchive]);
    if (imported.code !== 0) {
      throw new Error(`importing the pause image failed: ${imported.stderr}`);
    }

    await Deno.mkdir(`${dir}/pki`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/kubelet.yaml`,
      JSON.stringify({
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        // The host mounts cgroup v1, which this kubelet refuses unless told.
        failCgroupV1: false,
        cgroupDriver: "cgroupfs",
        cgroupRoot,
        failSwapOn: false,
        address: "127.0.0.1",
        port: kubeletPort,
        healthzBindAddress: "127.0.0.1",
        healthzPort,
        readOnlyPort: 0,
        // Test only: the apiserver reaches the kubelet (logs) without credentials.
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: "AlwaysAllow" },
        // A shared machine's disk and memory are not this node's to guard: no evictions, and
        // no image garbage collection (the images cannot be pulled back).
        evictionHard: {},
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        containerRuntimeEndpoint: `unix://${socket}`,
        podLogsDir: `${dir}/pod-logs`,
        volumePluginDir: `${dir}/volume-plugins`,
        staticPodPath: "",
        registerNode: true,
      }),
    );
    kubelet = await spawnLogged(parts.kubelet, [
      `--config=${dir}/kubelet.yaml`,
      `--kubeconfig=${stack.kubeconfigPath}`,
      `--root-dir=${kubeletRoot}`,
      `--cert-dir=${dir}/pki`,
      // An IP as the host name makes it the node's address unchecked; `--node-ip=127.0.0.1` is
      // refused ("nodeIP can't be loopback address") and the node never registers.
      `--hostname-override=${name}`,
      "--v=2",
    ], logs.kubelet);

    while (true) {
      const r = await stack.kubectl(["get", "node", name, "-o", "name"]);
      if (r.code === 0) break;
      if (kubelet.exited || containerd.exited || performance.now() > deadline) {
        throw new Error(
          `the kubelet did not register node ${name}:\n${await tail(logs.kubelet, 40)}\n` +
            `containerd:\n${await tail(logs.containerd, 10)}`,
        );
      }
      await sleep(500);
    }
  } catch (e) {
    await cleanup();
    globalThis.removeEventListener("unload", unload);
    throw e;
  }

  const stop = () =>
    stopping ??= cleanup().finally(() => globalThis.removeEventListener("unload", unload));
  return {
    name,
    dir,
    kubeletRoot,
    kubeletPort,
    cgroupRoot,
    startMs: Math.round(performance.now() - started),
    async importImage(archive) {
      const r = await ctr(["images", "import", archive]);
      if (r.code !== 0) throw new Error(`ctr images import ${archive} failed: ${r.stderr}`);
    },
    ctr,
    logTail: (which, lines = 40) => tail(logs[which], lines),
    leftovers: () => [
      ...[kubelet, containerd].filter((p) => p !== undefined && !p.exited).map((p) =>
        `process ${p!.child.pid}`
      ),
      ...pidsWithArgument(socket).map((pid) => `process ${pid} (a shim)`),
      ...mountsBelow(dir).map((m) => `mount ${m}`),
      ...cgroupHierarchies(true).filter((h) => exists(`${h}${cgroupRoot}`)).map((h) =>
        `cgroup ${h}${cgroupRoot}`
      ),
    ],
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * kube-apiserver flags a stack needs for a node: reach the kubelet at its InternalIP (127.0.0.1),
 * whatever its host name says.
 */
export const NODE_APISERVER_ARGS: readonly string[] = [
  "--kubelet-preferred-address-types=InternalIP",
];

/** Memory use of one container, read from its cgroup (v1) and its main process. */
export interface ContainerMemory {
  /** The cgroup's limit (`memory.limit_in_bytes`). */
  limitBytes: number;
  /** `memory.usage_in_bytes`: every page charged to the cgroup, page cache included. */
  usageBytes: number;
  /** Usage minus inactive file pages: the kubelet's (cAdvisor's) working set, used for eviction. */
  workingSetBytes: number;
  /** Resident set of the main process (`VmRSS`), whoever is charged for its pages. */
  processRssBytes: number;
  /** The anonymous part of {@link processRssBytes} (heap, stacks): always charged to the cgroup. */
  processRssAnonBytes: number;
  /**
   * The file-backed part of {@link processRssBytes} (the mapped Deno executable and libraries):
   * charged to the cgroup that first read those pages, which may be another one (containerd's,
   * when it unpacked the image), so it can be missing from the cgroup's figures.
   */
  processRssFileBytes: number;
  /** OOM kills in the cgroup (`oom_kill` of `memory.oom_control`). */
  oomKills: number;
  /** Pid of the main process, as the host sees it. */
  pid: number;
}

/**
 * Finds a container's memory cgroup below the node's cgroup root by its container id and reads
 * the figures the limit applies to, next to the process's own resident set.
 */
export async function containerMemory(
  node: LocalNode,
  containerId: string,
): Promise<ContainerMemory> {
  const base = cgroupHierarchies().find((h) => h.endsWith("/memory"));
  if (base === undefined) throw new Error("no cgroup v1 memory hierarchy");
  const find = (d: string): string | undefined => {
    for (const e of Deno.readDirSync(d)) {
      if (!e.isDirectory) continue;
      if (e.name.includes(containerId)) return `${d}/${e.name}`;
      const f = find(`${d}/${e.name}`);
      if (f !== undefined) return f;
    }
    return undefined;
  };
  const cg = find(`${base}${node.cgroupRoot}`);
  if (cg === undefined) throw new Error(`no memory cgroup for container ${containerId}`);
  const read = (f: string) => Deno.readTextFile(`${cg}/${f}`);
  const stat = Object.fromEntries(
    (await read("memory.stat")).trim().split("\n").map((l) => {
      const [k, v] = l.split(" ");
      return [k, Number(v)];
    }),
  );
  const usageBytes = Number((await read("memory.usage_in_bytes")).trim());
  const oomLine = (await read("memory.oom_control")).split("\n").find((l) =>
    l.startsWith("oom_kill ")
  );
  const pid = Number((await read("cgroup.procs")).trim().split("\n")[0]);
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const bytesOf = (field: string) =>
    Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN) * 1024;
  return {
    limitBytes: Number((await read("memory.limit_in_bytes")).trim()),
    usageBytes,
    workingSetBytes: Math.max(0, usageBytes - (stat.total_inactive_file ?? 0)),
    processRssBytes: bytesOf("VmRSS"),
    processRssAnonBytes: bytesOf("RssAnon"),
    processRssFileBytes: bytesOf("RssFile"),
    oomKills: Number(oomLine?.split(" ")[1] ?? 0),
    pid,
  };
}
