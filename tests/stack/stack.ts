/**
 * A real, local Kubernetes control plane for integration tests: etcd and
 * kube-apiserver started on loopback ports from binaries built by
 * `tests/stack/build.sh` (or brought through the envtest variables).
 *
 * There is no controller manager, scheduler or kubelet: objects are stored and
 * served, RBAC is enforced, TokenRequest works, but nothing reconciles (no
 * `default` ServiceAccount, no garbage collection, deleted namespaces stay
 * `Terminating`). Use a fresh namespace per test ({@link createNamespace}).
 *
 * ```ts
 * Deno.test({ name: "x", ignore: stackTestIgnore() }, async () => {
 *   await using stack = await startKubeStack();
 *   const ns = await createNamespace(stack, "x");
 *   const r = await stack.kubectl(["-n", ns, "get", "secrets"]);
 * });
 * ```
 *
 * Only Deno built-ins are used; certificates are made with the `openssl` CLI.
 *
 * @module
 */
import { freePorts } from "../fixtures/ports.ts";

/** Paths of the binaries the stack runs. */
export interface StackBinaries {
  /** kube-apiserver executable. */
  apiserver: string;
  /** etcd server executable. */
  etcd: string;
  /** kubectl executable (an independent client for tests). */
  kubectl: string;
}

/** Result of one kubectl run. */
export interface KubectlResult {
  /** Exit code. */
  code: number;
  /** Standard output, decoded as UTF-8. */
  stdout: string;
  /** Standard error, decoded as UTF-8. */
  stderr: string;
}

/** Options of {@link KubeStack.kubectl}. */
export interface KubectlOptions {
  /** Text written to kubectl's standard input (e.g. a manifest for `apply -f -`). */
  stdin?: string;
  /** Kubeconfig to use instead of the admin token kubeconfig. */
  kubeconfig?: string;
}

/** A running etcd + kube-apiserver pair. Stop it with {@link KubeStack.stop} or `await using`. */
export interface KubeStack {
  /** Base URL of the API server, e.g. `https://127.0.0.1:41234` (no trailing slash). */
  url: string;
  /** Host of {@link url} (`127.0.0.1`). */
  host: string;
  /** Port of {@link url}. */
  port: number;
  /** PEM file of the CA that signed the serving and client certificates. */
  caFile: string;
  /** Contents of {@link caFile}. */
  caPem: string;
  /** Static bearer token of a `system:masters` user (`ktr-admin`). */
  adminToken: string;
  /** Client certificate (PEM file) of a `system:masters` user (`ktr-admin-cert`). */
  clientCertFile: string;
  /** Private key (PEM file) of {@link clientCertFile}. */
  clientKeyFile: string;
  /** Contents of {@link clientCertFile}. */
  clientCertPem: string;
  /** Contents of {@link clientKeyFile}. */
  clientKeyPem: string;
  /** Admin kubeconfig: token user, CA given as a file path. Current context `ktr-admin`. */
  kubeconfigPath: string;
  /**
   * Admin kubeconfig with the client-certificate user, every credential embedded
   * as `*-data` (the kubeadm/kind style). Current context `ktr-admin-cert`.
   */
  clientCertKubeconfigPath: string;
  /** Service account token issuer (`iss` claim, default audience). */
  issuer: string;
  /** etcd client URL. */
  etcdUrl: string;
  /** Temporary folder holding certificates, data and logs; removed by {@link stop}. */
  dir: string;
  /** Log files of the two processes (stdout and stderr together). */
  logs: { apiserver: string; etcd: string };
  /** Binaries in use. */
  binaries: StackBinaries;
  /** Milliseconds from the call of {@link startKubeStack} until `/readyz` answered `ok`. */
  startMs: number;
  /** Process ids, e.g. for measuring memory. */
  pids: { apiserver: number; etcd: number };
  /** A fetch client that trusts {@link caPem}; closed by {@link stop}. */
  httpClient: Deno.HttpClient;
  /**
   * `fetch` against the API server with the CA trusted and, unless the init sets an
   * `Authorization` header or `token` is `null`, the admin bearer token.
   * The caller must consume or cancel the response body.
   */
  request(path: string, init?: RequestInit, token?: string | null): Promise<Response>;
  /** Runs kubectl with the admin kubeconfig (or `opts.kubeconfig`); never throws on a non-zero exit. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** Last `lines` lines of a process log. */
  logTail(which: "apiserver" | "etcd", lines?: number): Promise<string>;
  /** Stops the API server only (SIGTERM, then SIGKILL); etcd keeps running. */
  stopApiserver(): Promise<void>;
  /** Starts the API server again with the same flags, port and etcd, and waits for `/readyz`. */
  startApiserver(): Promise<void>;
  /**
   * Advances etcd's revision with a key outside the API server's prefix, then compacts etcd's
   * history up to it, so every older resourceVersion is expired (HTTP 410 to a watch from it).
   *
   * @returns The revision compacted to.
   */
  compactEtcd(): Promise<number>;
  /** Stops both processes (SIGTERM, then SIGKILL) and removes {@link dir}. Safe to call twice. */
  stop(): Promise<void>;
  /** Same as {@link stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@link startKubeStack}. */
export interface StartKubeStackOptions {
  /** Binaries to run; default {@link stackBinaries}. */
  binaries?: StackBinaries;
  /** How long to wait for etcd and `/readyz`, in milliseconds. Default 120000. */
  timeoutMs?: number;
  /** Extra static token users, written to the token auth file. */
  extraTokens?: { token: string; user: string; groups?: string[] }[];
  /** Extra kube-apiserver flags (appended, so they win over the defaults). */
  apiserverArgs?: string[];
  /** Keep {@link KubeStack.dir} after stop (also with `KTR_STACK_KEEP=1`). */
  keepDir?: boolean;
}

const ADMIN_USER = "ktr-admin";
const ADMIN_CERT_USER = "ktr-admin-cert";

// ---------------------------------------------------------------------------
// Locating binaries

function env(name: string): string | undefined {
  const v = Deno.env.get(name);
  return v === undefined || v === "" ? undefined : v;
}

function isExecutable(path: string | undefined): path is string {
  if (path === undefined) return false;
  try {
    const st = Deno.statSync(path);
    return st.isFile && (st.mode === null || (st.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}

function findOnPath(name: string): string | undefined {
  for (const dir of (env("PATH") ?? "").split(":")) {
    if (dir !== "" && isExecutable(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

/**
 * The k8s.io/kubernetes version pinned in `tests/stack/go.mod`, which names the
 * cache folder of the built binaries (e.g. `v1.36.3`).
 */
export function stackKubernetesVersion(): string {
  const text = Deno.readTextFileSync(new URL("./go.mod", import.meta.url));
  const m = text.match(/^\s*(?:require\s+)?k8s\.io\/kubernetes\s+(v\d+\.\d+\.\d+\S*)/m);
  if (!m) throw new Error("tests/stack/go.mod does not require k8s.io/kubernetes");
  return m[1];
}

/**
 * Folder where `build.sh` puts the binaries:
 * `${KTR_STACK_CACHE:-$HOME/.cache/kube-token-refresher/stack}/<k8s-version>/bin`.
 */
export function stackBinDir(): string {
  let root = env("KTR_STACK_CACHE");
  if (root === undefined) {
    const home = env("HOME");
    if (home === undefined) throw new Error("neither KTR_STACK_CACHE nor HOME is set");
    root = `${home}/.cache/kube-token-refresher/stack`;
  }
  return `${root}/${stackKubernetesVersion()}/bin`;
}

/**
 * Finds the stack binaries without building anything, in this order:
 * `TEST_ASSET_KUBE_APISERVER` + `TEST_ASSET_ETCD`, then `KUBEBUILDER_ASSETS`,
 * then the build.sh cache ({@link stackBinDir}). kubectl comes from
 * `TEST_ASSET_KUBECTL`, the chosen folder, the cache, or `PATH`, in that order.
 *
 * @returns the paths, or `null` when kube-apiserver, etcd or kubectl is missing.
 */
export function stackBinaries(): StackBinaries | null {
  let cache = "";
  try {
    cache = stackBinDir();
  } catch {
    // no cache folder: only the envtest variables and PATH can help
  }
  let apiserver: string | undefined;
  let etcd: string | undefined;
  let dir: string | undefined;
  const assetApi = env("TEST_ASSET_KUBE_APISERVER");
  const assetEtcd = env("TEST_ASSET_ETCD");
  const assets = env("KUBEBUILDER_ASSETS");
  if (isExecutable(assetApi) && isExecutable(assetEtcd)) {
    apiserver = assetApi;
    etcd = assetEtcd;
  } else if (
    assets !== undefined && isExecutable(`${assets}/kube-apiserver`) &&
    isExecutable(`${assets}/etcd`)
  ) {
    dir = assets;
    apiserver = `${assets}/kube-apiserver`;
    etcd = `${assets}/etcd`;
  } else if (
    cache !== "" && isExecutable(`${cache}/kube-apiserver`) && isExecutable(`${cache}/etcd`)
  ) {
    dir = cache;
    apiserver = `${cache}/kube-apiserver`;
    etcd = `${cache}/etcd`;
  }
  if (apiserver === undefined || etcd === undefined) return null;
  const kubectl = [env("TEST_ASSET_KUBECTL"), dir && `${dir}/kubectl`, cache && `${cache}/kubectl`]
    .find((p) => isExecutable(p || undefined)) || findOnPath("kubectl");
  if (kubectl === undefined) return null;
  return { apiserver, etcd, kubectl };
}

/** Whether {@link stackBinaries} finds every binary (and `openssl` is on PATH). */
export function stackAvailable(): boolean {
  return stackBinaries() !== null && findOnPath("openssl") !== undefined;
}

let warnedMissing = false;

/**
 * For `Deno.test({ ignore: stackTestIgnore() })`. Returns `true` (skip) when the
 * binaries are missing and `CI` is not `true`, printing one loud line once.
 * Under `CI=true` it returns `false`, so the test runs and {@link startKubeStack}
 * fails it with an explanation: a CI run never skips these tests silently.
 */
export function stackTestIgnore(): boolean {
  if (stackAvailable()) return false;
  if (env("CI") === "true") return false;
  if (!warnedMissing) {
    warnedMissing = true;
    console.error(
      `%cSKIPPING Kubernetes integration tests: ${missingMessage()}`,
      "color: yellow; font-weight: bold",
    );
  }
  return true;
}

function missingMessage(): string {
  if (findOnPath("openssl") === undefined) {
    return "openssl is not on PATH (apt-get install openssl)";
  }
  let where: string;
  try {
    where = stackBinDir();
  } catch (e) {
    where = `the build cache (${errorText(e)})`;
  }
  return `kube-apiserver/etcd/kubectl not found in ${where} ` +
    "(nor via TEST_ASSET_KUBE_APISERVER/TEST_ASSET_ETCD or KUBEBUILDER_ASSETS); " +
    "run: bash tests/stack/build.sh";
}

// ---------------------------------------------------------------------------
// Small process helpers

const decoder = new TextDecoder();

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${decoder.decode(out.stderr).trim()}`,
    );
  }
  return decoder.decode(out.stdout);
}

const live = new Set<Deno.ChildProcess>();
const liveDirs = new Set<string>();
let unloadHookInstalled = false;

/**
 * Last line of defence: if the test process exits (e.g. `Deno.exit`) without
 * stop(), kill what is still running and remove the temporary folders.
 */
function installUnloadHook(): void {
  if (unloadHookInstalled) return;
  unloadHookInstalled = true;
  globalThis.addEventListener("unload", () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const dir of liveDirs) {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // best effort
      }
    }
  });
}

interface Proc {
  child: Deno.ChildProcess;
  status: Promise<Deno.CommandStatus>;
  exited: boolean;
  pumps: Promise<void>;
  log: string;
}

/** Starts a process whose stdout and stderr are appended to `log`. */
async function spawnLogged(cmd: string, args: string[], log: string, cwd: string): Promise<Proc> {
  installUnloadHook();
  const out = await Deno.open(log, { create: true, append: true });
  const err = await Deno.open(log, { create: true, append: true });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, { args, cwd, stdin: "null", stdout: "piped", stderr: "piped" })
      .spawn();
  } catch (e) {
    out.close();
    err.close();
    throw e;
  }
  live.add(child);
  const proc: Proc = {
    child,
    log,
    exited: false,
    status: child.status.then((s) => {
      proc.exited = true;
      live.delete(child);
      return s;
    }),
    // pipeTo closes the files when the process closes its ends.
    pumps: Promise.all([
      child.stdout.pipeTo(out.writable),
      child.stderr.pipeTo(err.writable),
    ]).then(() => {}, () => {}),
  };
  return proc;
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL; waits for the exit and the log pumps. */
async function terminate(proc: Proc, graceMs: number): Promise<void> {
  if (!proc.exited) {
    try {
      proc.child.kill("SIGTERM");
    } catch {
      // exited in between
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      proc.status.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      try {
        proc.child.kill("SIGKILL");
      } catch {
        // exited in between
      }
    }
  }
  await proc.status;
  await proc.pumps;
}

async function tail(path: string, lines = 40): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch (e) {
    return `(cannot read ${path}: ${e instanceof Error ? e.message : e})`;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------
// Certificates and credentials

const OPENSSL_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Makes CA, serving cert, admin client cert and the service account key in `pki`. */
async function makePki(pki: string): Promise<void> {
  await Deno.mkdir(pki, { recursive: true });
  const cnf = `${pki}/openssl.cnf`;
  await Deno.writeTextFile(cnf, OPENSSL_CONFIG);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=ktr-test-ca",
    "-config",
    cnf,
    "-extensions",
    "ca_ext",
  ], pki);
  const leaf = async (name: string, subj: string, ext: string) => {
    await run("openssl", [
      "req",
      "-new",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      subj,
      "-config",
      cnf,
    ], pki);
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-set_serial",
      `0x${randomHex(16)}`,
      "-days",
      "2",
      "-extfile",
      cnf,
      "-extensions",
      ext,
      "-out",
      `${name}.crt`,
    ], pki);
  };
  await leaf("server", "/CN=kube-apiserver", "server_ext");
  await leaf("admin", `/O=system:masters/CN=${ADMIN_CERT_USER}`, "client_ext");
  await run("openssl", [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    "sa.key",
  ], pki);
  await run("openssl", ["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], pki);
}

function csvField(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

function b64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** A kubeconfig document; values are JSON strings, which YAML reads as quoted scalars. */
function kubeconfigYaml(
  name: string,
  cluster: Record<string, string>,
  user: Record<string, string>,
): string {
  const block = (fields: Record<string, string>, indent: string) =>
    Object.entries(fields).map(([k, v]) => `${indent}${k}: ${JSON.stringify(v)}`).join("\n");
  return `apiVersion: v1
kind: Config
clusters:
- name: ${JSON.stringify(name)}
  cluster:
${block(cluster, "    ")}
users:
- name: ${JSON.stringify(name)}
  user:
${block(user, "    ")}
contexts:
- name: ${JSON.stringify(name)}
  context:
    cluster: ${JSON.stringify(name)}
    user: ${JSON.stringify(name)}
    namespace: "default"
current-context: ${JSON.stringify(name)}
preferences: {}
`;
}

// ---------------------------------------------------------------------------
// Starting and stopping

/**
 * Starts etcd and kube-apiserver on free loopback ports in a new temporary folder
 * and waits until `/readyz` answers `ok`. Builds nothing: run `tests/stack/build.sh`
 * first. On any failure during start-up, whatever was started is stopped and the
 * error carries the tail of the relevant log.
 *
 * The API server runs with RBAC, a static token file, a client CA, ECDSA service
 * account keys, `--disable-admission-plugins=ServiceAccount` and
 * `--service-cluster-ip-range=10.0.0.0/24`.
 */
export async function startKubeStack(opts: StartKubeStackOptions = {}): Promise<KubeStack> {
  const started = performance.now();
  const binaries = opts.binaries ?? stackBinaries();
  if (binaries === null) {
    throw new Error(`cannot start the Kubernetes test stack: ${missingMessage()}`);
  }
  if (findOnPath("openssl") === undefined) {
    throw new Error("cannot start the Kubernetes test stack: openssl is not on PATH");
  }
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const keepDir = opts.keepDir ?? env("KTR_STACK_KEEP") === "1";
  const dir = await Deno.makeTempDir({ prefix: "ktr-stack-" });
  installUnloadHook();
  if (!keepDir) liveDirs.add(dir);
  const procs: Proc[] = [];
  let httpClient: Deno.HttpClient | undefined;
  const cleanup = async () => {
    httpClient?.close();
    httpClient = undefined;
    for (const p of [...procs].reverse()) await terminate(p, 10_000);
    procs.length = 0;
    if (!keepDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    liveDirs.delete(dir);
  };

  try {
    const pki = `${dir}/pki`;
    await makePki(pki);
    const caPem = await Deno.readTextFile(`${pki}/ca.crt`);
    const clientCertPem = await Deno.readTextFile(`${pki}/admin.crt`);
    const clientKeyPem = await Deno.readTextFile(`${pki}/admin.key`);
    const adminToken = `ktr-admin-${randomHex(16)}`;
    const tokens = [
      { token: adminToken, user: ADMIN_USER, groups: ["system:masters"] },
      ...(opts.extraTokens ?? []),
    ];
    const tokenFile = `${pki}/tokens.csv`;
    await Deno.writeTextFile(
      tokenFile,
      tokens.map((t, i) =>
        [t.token, t.user, `ktr-static-${i}`, (t.groups ?? []).join(",")].map(csvField).join(",")
      ).join("\n") + "\n",
    );

    const [etcdClientPort, etcdPeerPort, apiPort] = freePorts(3);
    const host = "127.0.0.1";
    const etcdUrl = `http://${host}:${etcdClientPort}`;
    const peerUrl = `http://${host}:${etcdPeerPort}`;
    const url = `https://${host}:${apiPort}`;
    const issuer = url;
    const logs = { etcd: `${dir}/etcd.log`, apiserver: `${dir}/kube-apiserver.log` };

    // etcd
    const etcd = await spawnLogged(
      binaries.etcd,
      [
        "--name=ktr",
        `--data-dir=${dir}/etcd-data`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=ktr=${peerUrl}`,
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",
        "--log-level=warn",
        "--quota-backend-bytes=1073741824",
      ],
      logs.etcd,
      dir,
    );
    procs.push(etcd);
    const deadline = started + timeoutMs;
    await waitFor("etcd", etcd, deadline, async () => {
      const res = await fetch(`${etcdUrl}/health`);
      const body = await res.text();
      return (res.ok && body.includes('"health":"true"')) || `HTTP ${res.status}: ${body.trim()}`;
    });

    // kube-apiserver
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      `--bind-address=${host}`,
      `--advertise-address=${host}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${pki}`,
      `--tls-cert-file=${pki}/server.crt`,
      `--tls-private-key-file=${pki}/server.key`,
      `--client-ca-file=${pki}/ca.crt`,
      `--token-auth-file=${tokenFile}`,
      "--authorization-mode=RBAC",
      `--service-account-issuer=${issuer}`,
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      "--disable-admission-plugins=ServiceAccount",
      // Nothing else runs: no endpoint reconciliation for the `kubernetes` Service.
      "--endpoint-reconciler-type=none",
      "--profiling=false",
      "--v=1",
      ...(opts.apiserverArgs ?? []),
    ];
    let apiserver = await spawnLogged(binaries.apiserver, apiserverArgs, logs.apiserver, dir);
    procs.push(apiserver);

    httpClient = Deno.createHttpClient({ caCerts: [caPem] });
    const client = httpClient;
    const apiserverReady = (proc: Proc, until: number) =>
      waitFor("kube-apiserver", proc, until, async () => {
        const res = await fetch(`${url}/readyz`, {
          client,
          headers: { Authorization: `Bearer ${adminToken}` },
        });
        const body = await res.text();
        return (res.status === 200 && body.trim() === "ok") ||
          `HTTP ${res.status}: ${
            body.trim().split("\n").filter((l) => l.includes("failed")).join("; ")
          }`;
      });
    await apiserverReady(apiserver, deadline);
    const pids = { apiserver: apiserver.child.pid, etcd: etcd.child.pid };
    const etcdJson = async (path: string, body: unknown) => {
      const res = await fetch(`${etcdUrl}${path}`, { method: "POST", body: JSON.stringify(body) });
      const text = await res.text();
      if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status}: ${text}`);
      return JSON.parse(text) as { header?: { revision?: string } };
    };

    const kubeconfigPath = `${dir}/admin.kubeconfig`;
    await Deno.writeTextFile(
      kubeconfigPath,
      kubeconfigYaml(ADMIN_USER, { server: url, "certificate-authority": `${pki}/ca.crt` }, {
        token: adminToken,
      }),
    );
    const clientCertKubeconfigPath = `${dir}/admin-cert.kubeconfig`;
    await Deno.writeTextFile(
      clientCertKubeconfigPath,
      kubeconfigYaml(ADMIN_CERT_USER, {
        server: url,
        "certificate-authority-data": b64(caPem),
      }, {
        "client-certificate-data": b64(clientCertPem),
        "client-key-data": b64(clientKeyPem),
      }),
    );

    let stopping: Promise<void> | undefined;
    const stop = () => (stopping ??= cleanup());
    const stack: KubeStack = {
      url,
      host,
      port: apiPort,
      caFile: `${pki}/ca.crt`,
      caPem,
      adminToken,
      clientCertFile: `${pki}/admin.crt`,
      clientKeyFile: `${pki}/admin.key`,
      clientCertPem,
      clientKeyPem,
      kubeconfigPath,
      clientCertKubeconfigPath,
      issuer,
      etcdUrl,
      dir,
      logs,
      binaries,
      startMs: Math.round(performance.now() - started),
      pids,
      httpClient: client,
      request(path, init = {}, token) {
        const headers = new Headers(init.headers);
        if (token !== null && !headers.has("Authorization")) {
          headers.set("Authorization", `Bearer ${token ?? adminToken}`);
        }
        return fetch(`${url}${path}`, { ...init, headers, client });
      },
      async kubectl(args, kopts = {}) {
        const child = new Deno.Command(binaries.kubectl, {
          args: [
            `--kubeconfig=${kopts.kubeconfig ?? kubeconfigPath}`,
            `--cache-dir=${dir}/kubectl-cache`,
            ...args,
          ],
          cwd: dir,
          stdin: kopts.stdin === undefined ? "null" : "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        if (kopts.stdin !== undefined) {
          const w = child.stdin.getWriter();
          // kubectl may exit before reading everything: its exit code tells why.
          await w.write(new TextEncoder().encode(kopts.stdin)).catch(() => {});
          await w.close().catch(() => {});
        }
        const out = await child.output();
        return {
          code: out.code,
          stdout: decoder.decode(out.stdout),
          stderr: decoder.decode(out.stderr),
        };
      },
      logTail: (which, lines = 40) => tail(logs[which], lines),
      async stopApiserver() {
        await terminate(apiserver, 10_000);
      },
      async startApiserver() {
        if (!apiserver.exited) throw new Error("kube-apiserver is still running");
        const next = await spawnLogged(binaries.apiserver, apiserverArgs, logs.apiserver, dir);
        procs.splice(procs.indexOf(apiserver), 1, next);
        apiserver = next;
        pids.apiserver = next.child.pid;
        await apiserverReady(next, performance.now() + timeoutMs);
      },
      async compactEtcd() {
        const put = await etcdJson("/v3/kv/put", {
          key: b64("ktr-test/compaction"),
          value: b64(String(Date.now())),
        });
        const revision = Number(put.header?.revision);
        await etcdJson("/v3/kv/compaction", { revision: String(revision), physical: true });
        return revision;
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
    return stack;
  } catch (e) {
    await cleanup();
    if (keepDir || !(e instanceof Error)) throw e;
    throw new Error(`${e.message}\n(${dir} was removed; set KTR_STACK_KEEP=1 to keep it)`, {
      cause: e,
    });
  }
}

/**
 * Polls `probe` every 100 ms until it returns `true` (else a description of what it
 * saw); fails early if the process exits.
 */
async function waitFor(
  what: string,
  proc: Proc,
  deadline: number,
  probe: () => Promise<true | string>,
): Promise<void> {
  let last = "";
  while (true) {
    if (proc.exited) {
      const s = await proc.status;
      throw new Error(
        `${what} exited during start-up (code ${s.code}${s.signal ? `, ${s.signal}` : ""}); ` +
          `log tail (${proc.log}):\n${await tail(proc.log)}`,
      );
    }
    try {
      const r = await probe();
      if (r === true) return;
      last = r;
    } catch (e) {
      last = errorText(e);
    }
    if (performance.now() > deadline) {
      throw new Error(
        `${what} not ready in time (last probe: ${last}); log tail (${proc.log}):\n${await tail(
          proc.log,
        )}`,
      );
    }
    await sleep(100);
  }
}

/** An error's message with its causes (fetch puts the useful part in `cause`). */
function errorText(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e, i = 0; c !== undefined && c !== null && i < 5; i++) {
    parts.push(c instanceof Error ? c.message : String(c));
    c = c instanceof Error ? c.cause : undefined;
  }
  return parts.join(": ");
}

// ---------------------------------------------------------------------------
// Helpers for tests

async function apiJson(
  stack: KubeStack,
  method: string,
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const res = await stack.request(path, {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text}`);
  return JSON.parse(text);
}

/**
 * Creates a namespace with a fresh name `<prefix>-<random>` and returns the name.
 * Without a controller manager a deleted namespace never goes away, so tests must
 * not reuse names.
 */
export async function createNamespace(stack: KubeStack, prefix = "test"): Promise<string> {
  const base = prefix.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "")
    .slice(0, 50) || "test";
  const name = `${base}-${randomHex(4)}`;
  await apiJson(stack, "POST", "/api/v1/namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name },
  });
  return name;
}

/** Creates a ServiceAccount (none exist by default: there is no controller manager). */
export async function createServiceAccount(
  stack: KubeStack,
  namespace: string,
  name: string,
): Promise<void> {
  await apiJson(stack, "POST", `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name },
  });
}

/** Options of {@link requestServiceAccountToken}. */
export interface TokenRequestOptions {
  /** Bind the token to this Secret in the same namespace (it must exist). */
  boundSecretName?: string;
  /** Requested lifetime; the API server requires at least 600. */
  expirationSeconds?: number;
  /** Audiences; default: the API server's (its issuer). */
  audiences?: string[];
}

/** A token issued through the TokenRequest API. */
export interface ServiceAccountToken {
  /** The JWT. */
  token: string;
  /** `status.expirationTimestamp` (RFC 3339). */
  expirationTimestamp: string;
}

/**
 * Issues a service account token through TokenRequest
 * (`POST /api/v1/namespaces/NS/serviceaccounts/SA/token`) as the admin user.
 * The ServiceAccount must exist ({@link createServiceAccount}).
 */
export async function requestServiceAccountToken(
  stack: KubeStack,
  namespace: string,
  serviceAccount: string,
  opts: TokenRequestOptions = {},
): Promise<ServiceAccountToken> {
  const spec: Record<string, unknown> = { audiences: opts.audiences ?? [] };
  if (opts.expirationSeconds !== undefined) spec.expirationSeconds = opts.expirationSeconds;
  if (opts.boundSecretName !== undefined) {
    spec.boundObjectRef = { kind: "Secret", apiVersion: "v1", name: opts.boundSecretName };
  }
  const res = await apiJson(
    stack,
    "POST",
    `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
    { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec },
  );
  const status = res.status as { token?: string; expirationTimestamp?: string } | undefined;
  if (!status?.token) throw new Error(`TokenRequest returned no token: ${JSON.stringify(res)}`);
  return { token: status.token, expirationTimestamp: status.expirationTimestamp ?? "" };
}

/**
 * Writes `token`, `ca.crt` and `namespace` into `dir` (created if needed), the
 * layout of a pod's `/var/run/secrets/kubernetes.io/serviceaccount`.
 *
 * @returns `dir`
 */
export async function writeServiceAccountDir(
  dir: string,
  files: { token: string; caPem: string; namespace: string },
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/token`, files.token);
  await Deno.writeTextFile(`${dir}/ca.crt`, files.caPem);
  await Deno.writeTextFile(`${dir}/namespace`, files.namespace);
  return dir;
}

/** Resident memory (VmRSS) of a process in KiB, from /proc; `null` if unavailable. */
export async function processRssKiB(pid: number): Promise<number | null> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
