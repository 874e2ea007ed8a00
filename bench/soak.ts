/**
 * The soak bench: what the kubelet sees of a refresher that runs for weeks. One real process per
 * mode, started as users start it (`deno run` under the deno.json permission set), refreshing
 * about once a second against the real `oidc-provider` (tokens living `tokenSeconds`) and the
 * TLS Kubernetes API stand-in of bench/servers.ts, probed like a kubelet (`/healthz` and
 * `/readyz` every 10 s) and scraped like Prometheus (`/metrics` every 30 s), for `minutes`.
 * Resident memory and CPU time are read from /proc every `sampleSeconds`; growth is the
 * least-squares slope of RSS against refreshes over the second half of the run.
 *
 * Every process runs with the compile task's V8 flags and, like the binary, without V8's code
 * cache (`--no-code-cache`): `deno compile` cannot be measured where its runtime cannot be fetched.
 *
 * Modes: `incluster` (the deployment: `incluster` permission set, `KTR_*` variables, a
 * service-account folder), and `kubeconfig-token` / `kubeconfig-cert` (the `kubeconfig` permission
 * set and a kubeconfig with a bearer-token or a client-certificate user, as on a workstation).
 * The modes run side by side, so they share the machine's noise.
 *
 * Before the soak, `starts` `--once` runs per mode time spawn to the Secret write arriving at the
 * API stand-in, and read RSS at that moment.
 *
 * `deno task bench --soak` is the short form (2.5 minutes; tests/soak_test.ts runs a shorter one
 * in CI); `deno task bench --soak --minutes=50` the long form (about 3,000 refreshes). Output: a
 * table on standard output, bench/out/soak.json and bench/out/soak.svg (RSS against refreshes).
 *
 * @module
 */
import {
  type OidcProviderFixture,
  providerEnv,
  startOidcProvider,
} from "../tests/fixtures/oidc_provider.ts";
import { startDeno } from "../tests/fixtures/refresher_process.ts";
import { denoDir, freePort, type ProcMemory, procMemory } from "./process.ts";
import { wait } from "./sample.ts";
import { type BenchServers, startBenchServers } from "./servers.ts";
import { fitLine, median, theilSenSlope } from "./stats.ts";

const MiB = 1024 * 1024;
const OUT_DIR = new URL("out/", import.meta.url);

/** The targets of the issue (in-cluster). Memory in MiB (2^20 bytes). */
export const SOAK_TARGET = {
  /** RSS as the first Secret write arrives. */
  firstWriteRssMiB: 50,
  /** RSS after 3,000 refreshes. */
  rssMiB: 60,
  /** Second-half slope, MiB per 1,000 refreshes. */
  slopeMiBPer1000: 0.2,
  /** CPU time per steady-state refresh. */
  cpuMsPerRefresh: 2.5,
  /** Spawn to first write, median. */
  firstWriteMs: 120,
  /** How much more a token or client-certificate kubeconfig may cost than in-cluster. */
  kubeconfigExtraMiB: 20,
} as const;

/** How the measured process finds its cluster. */
export type SoakMode = "incluster" | "kubeconfig-token" | "kubeconfig-cert";

/** Every mode, in table order. */
export const SOAK_MODES: readonly SoakMode[] = ["incluster", "kubeconfig-token", "kubeconfig-cert"];

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  /** Length of the soak, minutes. */
  minutes: number;
  /** A /proc sample every this many seconds. */
  sampleSeconds: number;
  /** Lifetime of the provider's tokens: refreshes every 0.67 of it (renew.percent 67). */
  tokenSeconds: number;
  /** Modes to run, side by side. */
  modes: readonly SoakMode[];
  /** `--once` starts per mode before the soak (median reported); 0 for none. */
  starts: number;
  /** V8 flags for every measured process. */
  v8Flags: readonly string[];
  /**
   * Whether the processes use V8's code cache (`deno run` without `--no-code-cache`). Default:
   * as the compile task does ({@linkcode compileUsesCodeCache}).
   */
  codeCache?: boolean;
  /**
   * Run bench/traced_main.ts instead of main.ts: the same process plus a line of
   * `Deno.memoryUsage()` every second (V8 heap, external memory), kept in {@linkcode SoakRun.trace}.
   */
  trace: boolean;
  /** The script run, relative to the repository root. Default main.ts. */
  entry?: string;
  /** Environment variables for every measured process besides the configuration (`MALLOC_*`). */
  env?: Record<string, string>;
  /** Base name of the files written under bench/out/ (`.json`, `.svg`). Default `soak`. */
  out?: string;
  /** Where progress goes. */
  log?: (message: string) => void;
}

/** One /proc reading of the measured process. */
export interface SoakSample {
  /** Seconds since the process was spawned. */
  seconds: number;
  /** Secret writes the API stand-in has received (one per refresh). */
  refreshes: number;
  /** Resident set, its anonymous and file-backed parts, and its peak, bytes. */
  rss: number;
  anon: number;
  file: number;
  peak: number;
  /** User plus system CPU time so far, ms. */
  cpuMs: number;
}

/** One `--once` start. */
export interface SoakStart {
  /** Spawn to the Secret write arriving, ms. */
  firstWriteMs: number;
  /** RSS read as the write arrived, bytes. */
  rssAtWrite: number | undefined;
  /** Its anonymous and file-backed parts, bytes. */
  anonAtWrite: number | undefined;
  fileAtWrite: number | undefined;
}

/** The figures of one mode. */
export interface SoakRun {
  mode: SoakMode;
  /** `--once` starts before the soak. */
  starts: SoakStart[];
  /** Median spawn to first write of those, ms. */
  startMedianMs: number | undefined;
  /** Median RSS at the first write of those, bytes. */
  startRssMedian: number | undefined;
  /** The soaked process: spawn to first write, ms, and RSS as that write arrived. */
  firstWriteMs: number;
  firstWriteRss: number | undefined;
  samples: SoakSample[];
  /** Refreshes over the whole soak. */
  refreshes: number;
  /** Token requests and API requests per refresh after the first write. */
  tokenPerRefresh: number;
  apiPerRefresh: number;
  /** Probe answers that were not 200, counted from the first write on. */
  probeFailures: number;
  /** What those answers were: path, status, when, and the start of the body. */
  probeFailed: string[];
  /** Second-half growth: least squares (with its standard error) and Theil–Sen, MiB / 1,000. */
  slopeMiBPer1000: number;
  slopeSeMiBPer1000: number;
  theilSenMiBPer1000: number;
  /** CPU per refresh over the second half (probes and idle time included), ms. */
  cpuMsPerRefresh: number;
  /** Exit code after SIGTERM at the end. */
  exitCode: number;
  /** With `trace`: the process's own memory lines, with the refreshes done at each. */
  trace: TraceLine[];
}

/** One line of bench/traced_main.ts, with the refreshes the API stand-in had seen by then. */
export interface TraceLine {
  ms: number;
  refreshes: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** Whether two full collections ran just before (`--v8-flags=--expose-gc`). */
  gc: boolean;
}

/** Everything {@linkcode runSoak} measured. */
export interface SoakReport {
  date: string;
  deno: string;
  cpus: number;
  /** Load average of the machine at the start and at the end (1 min). */
  load: [number | undefined, number | undefined];
  options: Omit<SoakOptions, "log">;
  runs: SoakRun[];
}

/** CPU time (user + system) of a process, ms, from /proc/<pid>/stat (Linux, 100 ticks a second). */
export function procCpuMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses; the fields after its last ")" do not.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks * 10 : undefined;
}

function loadAverage(): number | undefined {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return undefined;
  }
}

/** Writes a kubeconfig for the API stand-in with a token or a client-certificate user. */
async function writeKubeconfig(servers: BenchServers, mode: SoakMode): Promise<string> {
  const { server, certPem, keyPem } = servers.kubeconfigParts;
  const b64 = (text: string) => btoa(text);
  const user = mode === "kubeconfig-token"
    ? `    token: bench-service-account-token`
    : `    client-certificate-data: ${b64(certPem)}\n    client-key-data: ${b64(keyPem)}`;
  const path = `${servers.serviceAccountDir}/../${mode}.kubeconfig`;
  await Deno.writeTextFile(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: ${server}
    certificate-authority: ${servers.serviceAccountDir}/ca.crt
users:
- name: bench
  user:
${user}
contexts:
- name: bench
  context:
    cluster: bench
    user: bench
current-context: bench
`,
  );
  return path;
}

/** What a mode's process is started with. */
interface ModeSetup {
  permissionSet: "incluster" | "kubeconfig";
  env: Record<string, string>;
}

async function modeSetup(
  mode: SoakMode,
  servers: BenchServers,
  provider: OidcProviderFixture,
): Promise<ModeSetup> {
  const common = {
    ...providerEnv(provider),
    KTR_SECRET_NAME: "bench-token",
    KTR_SECRET_NAMESPACE: "bench",
  };
  if (mode === "incluster") {
    return {
      permissionSet: "incluster",
      env: { ...common, ...servers.kubeEnv, KTR_KUBE_SERVICEACCOUNTDIR: servers.serviceAccountDir },
    };
  }
  const kubeconfig = await writeKubeconfig(servers, mode);
  return {
    permissionSet: "kubeconfig",
    env: { ...common, KUBECONFIG: kubeconfig, HOME: `${servers.serviceAccountDir}/..` },
  };
}

function spawnMode(setup: ModeSetup, options: SoakOptions, extra: Record<string, string>) {
  const flags = [
    ...(options.codeCache ?? compileUsesCodeCache() ? [] : ["--no-code-cache"]),
    ...(options.v8Flags.length > 0 ? [`--v8-flags=${options.v8Flags.join(",")}`] : []),
  ];
  return startDeno({
    script: options.trace ? "bench/traced_main.ts" : options.entry ?? "main.ts",
    permissionSet: setup.permissionSet,
    denoFlags: flags,
    env: { ...options.env, ...setup.env, ...extra },
  });
}

/** Keeps the last few kilobytes of a stream (for error messages) and never lets the pipe fill. */
function tail(stream: ReadableStream<Uint8Array>): { text(): string; done: Promise<void> } {
  let text = "";
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text = (text + chunk).slice(-4096);
    }
  })();
  return { text: () => text, done };
}

async function onceStart(
  setup: ModeSetup,
  servers: BenchServers,
  options: SoakOptions,
): Promise<SoakStart> {
  servers.reset();
  let atWrite: ReturnType<typeof procMemory>;
  const spawnedAt = performance.now();
  const child = spawnMode(setup, options, { KTR_ONCE: "true", DENO_DIR: await denoDir() });
  servers.onFirstWrite = () => atWrite = procMemory(child.pid);
  const out = tail(child.stdout);
  const err = tail(child.stderr);
  const status = await child.status;
  await Promise.all([out.done, err.done]);
  if (status.code !== 0 || servers.firstWriteAt === undefined) {
    throw new Error(`--once exited ${status.code}:\n${err.text()}`);
  }
  return {
    firstWriteMs: servers.firstWriteAt - spawnedAt,
    rssAtWrite: atWrite?.rss,
    anonAtWrite: atWrite?.anon,
    fileAtWrite: atWrite?.file,
  };
}

/** Asks the health server like a kubelet and Prometheus would; counts answers other than 200. */
async function probe(port: number, paths: string[], failed: string[]): Promise<number> {
  let failures = 0;
  for (const path of paths) {
    const seconds = (performance.now() / 1000).toFixed(0);
    try {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, {
        signal: AbortSignal.timeout(2_000),
      });
      const body = (await response.text()).slice(0, 200);
      if (response.status !== 200) {
        failures++;
        failed.push(`${path} ${response.status} at ${seconds} s: ${body}`);
      }
    } catch (err) {
      failures++;
      failed.push(`${path} at ${seconds} s: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return failures;
}

/** A mode's servers and how its process is started. */
interface Prepared {
  mode: SoakMode;
  servers: BenchServers;
  provider: OidcProviderFixture;
  setup: ModeSetup;
}

async function soakMode(
  { mode, servers, provider, setup }: Prepared,
  starts: SoakStart[],
  options: SoakOptions,
): Promise<SoakRun> {
  const log = options.log ?? (() => {});
  const dir = await denoDir();

  servers.reset();
  const requestsBefore = provider.requests;
  const port = freePort();
  let firstWriteRss: number | undefined;
  const spawnedAt = performance.now();
  const child = spawnMode(setup, options, {
    KTR_HTTP_ADDRESS: `127.0.0.1:${port}`,
    DENO_DIR: dir,
  });
  servers.onFirstWrite = () => firstWriteRss = procMemory(child.pid)?.rss;
  const trace: TraceLine[] = [];
  const out = options.trace
    ? traceLines(child.stdout, trace, () => servers.counts.writes)
    : tail(child.stdout);
  const err = tail(child.stderr);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const samples: SoakSample[] = [];
  let probeFailures = 0;
  const probeFailed: string[] = [];
  let tokenAtFirstWrite = 0;
  try {
    await Promise.race([
      servers.until((c) => c.writes >= 1, 30_000),
      status.then((s) => {
        throw new Error(`${mode}: exited ${s.code} before its first write:\n${err.text()}`);
      }),
    ]);
    const firstWriteMs = servers.firstWriteAt! - spawnedAt;
    tokenAtFirstWrite = provider.requests - requestsBefore;
    const endAt = spawnedAt + options.minutes * 60_000;
    let nextSample = performance.now();
    // The write arrives here a moment before its answer reaches the process, and /readyz turns
    // ready only then: the probes start a second later, as a kubelet's would.
    let nextHealth = performance.now() + 1_000;
    let nextScrape = performance.now() + 1_000;
    while (true) {
      if (exited) {
        const s = await status;
        throw new Error(`${mode}: exited ${s.code} during the soak:\n${err.text()}`);
      }
      const now = performance.now();
      if (now >= nextHealth) {
        probeFailures += await probe(port, ["/healthz", "/readyz"], probeFailed);
        nextHealth += 10_000;
      }
      if (now >= nextScrape) {
        probeFailures += await probe(port, ["/metrics"], probeFailed);
        nextScrape += 30_000;
      }
      if (now >= nextSample) {
        const memory: ProcMemory | undefined = procMemory(child.pid);
        const cpuMs = procCpuMs(child.pid);
        if (memory && cpuMs !== undefined) {
          samples.push({
            seconds: (performance.now() - spawnedAt) / 1000,
            refreshes: servers.counts.writes,
            ...memory,
            cpuMs,
          });
        }
        nextSample += options.sampleSeconds * 1000;
        if (samples.length % 10 === 0) {
          log(`${mode}: ${servers.counts.writes} refreshes, RSS ${mib(memory?.rss)} MiB`);
        }
      }
      if (now >= endAt) break;
      await wait(Math.max(10, Math.min(nextSample, nextHealth, nextScrape, endAt) - now));
    }
    child.kill("SIGTERM");
    const { code } = await status;
    await Promise.all([out.done, err.done]);
    const refreshes = servers.counts.writes;
    const steady = refreshes - 1;
    const half = secondHalf(samples);
    const points = half.map((s) => [s.refreshes, s.rss / MiB] as const);
    const line = points.length >= 2 ? fitLine(points) : undefined;
    const first = half[0];
    const last = half.at(-1)!;
    return {
      mode,
      starts,
      startMedianMs: starts.length > 0 ? median(starts.map((s) => s.firstWriteMs)) : undefined,
      startRssMedian: medianDefined(starts.map((s) => s.rssAtWrite)),
      firstWriteMs,
      firstWriteRss,
      samples,
      refreshes,
      tokenPerRefresh: (provider.requests - requestsBefore - tokenAtFirstWrite) / steady,
      apiPerRefresh: (servers.counts.api - servers.countsAtFirstWrite!.api) / steady,
      probeFailures,
      probeFailed,
      slopeMiBPer1000: line ? line.slope * 1000 : NaN,
      slopeSeMiBPer1000: line ? line.slopeSe * 1000 : NaN,
      theilSenMiBPer1000: points.length >= 2 ? theilSenSlope(points) * 1000 : NaN,
      cpuMsPerRefresh: (last.cpuMs - first.cpuMs) / Math.max(1, last.refreshes - first.refreshes),
      exitCode: code,
      trace,
    };
  } finally {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone in the meantime.
      }
    }
    await status;
    await Promise.all([out.done, err.done]).catch(() => {});
  }
}

/** Reads the JSON lines of bench/traced_main.ts into `trace`. */
function traceLines(
  stream: ReadableStream<Uint8Array>,
  trace: TraceLine[],
  refreshes: () => number,
): { text(): string; done: Promise<void> } {
  let buffer = "";
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        try {
          trace.push({ ...JSON.parse(line), refreshes: refreshes() });
        } catch {
          // Not a trace line.
        }
      }
    }
  })();
  return { text: () => buffer, done };
}

function medianDefined(values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length > 0 ? median(defined) : undefined;
}

/**
 * Runs the soak: every mode side by side, each with its own provider and API stand-in.
 *
 * @param options Length, pace, modes, starts and V8 flags.
 * @returns The figures of each mode.
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const loadBefore = loadAverage();
  const prepared: Prepared[] = [];
  try {
    for (const mode of options.modes) {
      const servers = await startBenchServers();
      const provider = await startOidcProvider({ tokenTtlSeconds: options.tokenSeconds }).catch(
        async (err) => {
          await servers[Symbol.asyncDispose]();
          throw err;
        },
      );
      prepared.push({ mode, servers, provider, setup: await modeSetup(mode, servers, provider) });
    }
    // Starts one at a time, so they do not compete with each other for the CPUs.
    const starts = new Map<SoakMode, SoakStart[]>();
    for (const p of prepared) {
      const runs: SoakStart[] = [];
      // The first start fills Deno's caches; it is not counted.
      if (options.starts > 0) await onceStart(p.setup, p.servers, options);
      for (let i = 0; i < options.starts; i++) {
        runs.push(await onceStart(p.setup, p.servers, options));
      }
      starts.set(p.mode, runs);
    }
    const runs = await Promise.all(
      prepared.map((p) => soakMode(p, starts.get(p.mode) ?? [], options)),
    );
    const { log: _, out: __, ...rest } = options;
    return {
      date: new Date().toISOString(),
      deno: Deno.version.deno,
      cpus: navigator.hardwareConcurrency,
      load: [loadBefore, loadAverage()],
      options: rest,
      runs,
    };
  } finally {
    for (const p of prepared) {
      await p.provider.stop();
      await p.servers[Symbol.asyncDispose]();
    }
  }
}

// --- output ----------------------------------------------------------------------------------

const mib = (bytes: number | undefined) => bytes === undefined ? "n/a" : (bytes / MiB).toFixed(1);
const fixed = (value: number | undefined, digits: number) =>
  value === undefined || Number.isNaN(value) ? "n/a" : value.toFixed(digits);

/** The samples of the second half of the run, which the slope is fitted over. */
function secondHalf(samples: readonly SoakSample[]): SoakSample[] {
  const end = samples.at(-1)?.seconds ?? 0;
  return samples.filter((s) => s.seconds >= end / 2);
}

/** RSS after a given number of refreshes: the first sample at or past it. */
function rssAfter(run: SoakRun, refreshes: number): number | undefined {
  return run.samples.find((s) => s.refreshes >= refreshes)?.rss;
}

/**
 * Renders the report as a Markdown table, one column per mode, with the in-cluster targets.
 *
 * @param report What {@linkcode runSoak} measured.
 * @returns The table and notes.
 */
export function formatSoak(report: SoakReport): string {
  const { runs } = report;
  const base = runs.find((r) => r.mode === "incluster");
  const rows: [string, (run: SoakRun) => string, string][] = [
    [
      "spawn to first write, --once (median)",
      (r) => `${fixed(r.startMedianMs, 0)} ms`,
      `≤ ${SOAK_TARGET.firstWriteMs} ms`,
    ],
    [
      "RSS at first write, --once (median; anon / file)",
      (r) =>
        `${mib(r.startRssMedian)} (${mib(medianDefined(r.starts.map((s) => s.anonAtWrite)))} / ${
          mib(medianDefined(r.starts.map((s) => s.fileAtWrite)))
        }) MiB`,
      `≤ ${SOAK_TARGET.firstWriteRssMiB} MiB`,
    ],
    [
      "RSS at first write, long-running",
      (r) => `${mib(r.firstWriteRss)} MiB`,
      `≤ ${SOAK_TARGET.firstWriteRssMiB} MiB`,
    ],
    ...[300, 1_000, 3_000].map((n): [string, (run: SoakRun) => string, string] => [
      `RSS after ${n.toLocaleString("en")} refreshes`,
      (r) => `${mib(rssAfter(r, n))} MiB`,
      n === 3_000 ? `≤ ${SOAK_TARGET.rssMiB} MiB` : "",
    ]),
    [
      "RSS at the end (anon / file)",
      (r) => {
        const s = r.samples.at(-1);
        return `${mib(s?.rss)} (${mib(s?.anon)} / ${mib(s?.file)}) MiB`;
      },
      "",
    ],
    [
      "RSS over the second half, lowest–highest",
      (r) => {
        const half = secondHalf(r.samples).map((s) => s.rss);
        return half.length === 0
          ? "n/a"
          : `${mib(Math.min(...half))}–${mib(Math.max(...half))} MiB`;
      },
      "",
    ],
    ["peak RSS (VmHWM)", (r) => `${mib(r.samples.at(-1)?.peak)} MiB`, ""],
    [
      "second-half slope, least squares ± SE",
      (r) => `${fixed(r.slopeMiBPer1000, 2)} ± ${fixed(r.slopeSeMiBPer1000, 2)} MiB/1k`,
      `≤ ${SOAK_TARGET.slopeMiBPer1000} MiB/1k`,
    ],
    ["second-half slope, Theil–Sen", (r) => `${fixed(r.theilSenMiBPer1000, 2)} MiB/1k`, ""],
    [
      "CPU per steady-state refresh",
      (r) => `${fixed(r.cpuMsPerRefresh, 2)} ms`,
      `≤ ${SOAK_TARGET.cpuMsPerRefresh} ms`,
    ],
    ["refreshes (samples)", (r) => `${r.refreshes} (${r.samples.length})`, ""],
    [
      "token / API requests per refresh",
      (r) => `${fixed(r.tokenPerRefresh, 3)} / ${fixed(r.apiPerRefresh, 3)}`,
      "1 / 1",
    ],
    ["probe failures, exit code", (r) => `${r.probeFailures}, ${r.exitCode}`, "0, 0"],
  ];
  if (base) {
    rows.push([
      "RSS at the end above in-cluster",
      (r) =>
        `${
          fixed(((r.samples.at(-1)?.rss ?? NaN) - (base.samples.at(-1)?.rss ?? NaN)) / MiB, 1)
        } MiB`,
      `≤ ${SOAK_TARGET.kubeconfigExtraMiB} MiB`,
    ]);
  }
  const header = ["figure", ...runs.map((r) => r.mode), "target (in-cluster)"];
  const cells = rows.map(([name, value, target]) => [name, ...runs.map(value), target]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (values: string[]) => `| ${values.map((v, i) => v.padEnd(widths[i])).join(" | ")} |`;
  const o = report.options;
  return [
    `Soak, ${o.minutes} min, Deno ${report.deno}, ${report.cpus} CPUs, load ${
      fixed(report.load[0], 2)
    } -> ${
      fixed(report.load[1], 2)
    }; tokens of ${o.tokenSeconds} s, a sample every ${o.sampleSeconds} s; V8 flags: ${
      o.v8Flags.length > 0 ? o.v8Flags.join(",") : "none"
    }; V8 code cache ${o.codeCache ?? compileUsesCodeCache() ? "on" : "off"}`,
    "",
    line(header),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...cells.map(line),
    "",
    "MiB = 2^20 bytes; slope in MiB per 1,000 refreshes, fitted over the second half of the run.",
    "CPU per refresh includes what the process does between refreshes (timers, GC, probes).",
  ].join("\n");
}

const COLOURS: Record<SoakMode, string> = {
  "incluster": "#1f77b4",
  "kubeconfig-token": "#ff7f0e",
  "kubeconfig-cert": "#2ca02c",
};

/**
 * Draws RSS against refreshes, one line per mode, with each second-half fit dashed and the
 * in-cluster RSS target as a grey line.
 *
 * @param report What {@linkcode runSoak} measured.
 * @returns An SVG document.
 */
export function soakChart(report: SoakReport): string {
  const width = 800;
  const height = 420;
  const left = 60;
  const right = 210;
  const top = 40;
  const bottom = 50;
  const all = report.runs.flatMap((r) => r.samples);
  const maxX = Math.max(1, ...all.map((s) => s.refreshes));
  const rssValues = all.map((s) => s.rss / MiB);
  const minY = Math.floor(Math.min(SOAK_TARGET.firstWriteRssMiB - 10, ...rssValues) / 10) * 10;
  const maxY = Math.ceil(Math.max(SOAK_TARGET.rssMiB + 5, ...rssValues) / 10) * 10;
  const x = (v: number) => left + (v / maxX) * (width - left - right);
  const y = (v: number) => top + (1 - (v - minY) / (maxY - minY)) * (height - top - bottom);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14">RSS against refreshes, ${report.options.minutes} min soak (Deno ${report.deno})</text>`,
  );
  for (let v = minY; v <= maxY; v += 10) {
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`,
      `<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`,
    );
  }
  const step = 10 ** Math.floor(Math.log10(maxX));
  const xStep = maxX / step > 5 ? step : step / 2;
  for (let v = 0; v <= maxX; v += Math.max(1, xStep)) {
    parts.push(
      `<line x1="${x(v)}" x2="${x(v)}" y1="${top}" y2="${height - bottom}" stroke="#eee"/>`,
      `<text x="${x(v)}" y="${height - bottom + 16}" text-anchor="middle">${v}</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${height - bottom}" stroke="black"/>`,
    `<line x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${
      height - bottom
    }" stroke="black"/>`,
    `<text x="${(left + width - right) / 2}" y="${
      height - 12
    }" text-anchor="middle">refreshes</text>`,
    `<text transform="translate(16 ${
      (top + height - bottom) / 2
    }) rotate(-90)" text-anchor="middle">RSS (MiB)</text>`,
    `<line x1="${left}" x2="${width - right}" y1="${y(SOAK_TARGET.rssMiB)}" y2="${
      y(SOAK_TARGET.rssMiB)
    }" stroke="#999" stroke-dasharray="2 3"/>`,
    `<text x="${width - right + 6}" y="${
      y(SOAK_TARGET.rssMiB) + 4
    }" fill="#666">target ${SOAK_TARGET.rssMiB} MiB</text>`,
  );
  report.runs.forEach((run, i) => {
    const colour = COLOURS[run.mode];
    const points = run.samples.map((s) =>
      `${x(s.refreshes).toFixed(1)},${y(s.rss / MiB).toFixed(1)}`
    );
    parts.push(
      `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${points.join(" ")}"/>`,
    );
    const half = secondHalf(run.samples);
    if (half.length >= 2) {
      const line = fitLine(half.map((s) => [s.refreshes, s.rss / MiB] as const));
      const x0 = half[0].refreshes;
      const x1 = half.at(-1)!.refreshes;
      parts.push(
        `<line x1="${x(x0)}" y1="${y(line.intercept + line.slope * x0)}" x2="${x(x1)}" y2="${
          y(line.intercept + line.slope * x1)
        }" stroke="black" stroke-dasharray="5 3"/>`,
      );
    }
    const last = run.samples.at(-1);
    parts.push(
      `<rect x="${width - right + 6}" y="${
        top + 20 * i
      }" width="12" height="3" fill="${colour}" transform="translate(0 4)"/>`,
      `<text x="${width - right + 22}" y="${top + 20 * i + 10}">${run.mode} ${
        mib(last?.rss)
      } MiB</text>`,
    );
  });
  parts.push(
    `<text x="${width - right + 6}" y="${
      top + 20 * report.runs.length + 10
    }" fill="#333">- - fit, 2nd half</text>`,
    "</svg>",
  );
  return `${parts.join("\n")}\n`;
}

/**
 * The V8 flags of deno.json's `compile:incluster` task (else `compile`): what the container's
 * binary runs with, so the soak
 * measures `deno run` with the same ones (`deno compile` cannot be measured where its runtime
 * cannot be fetched).
 *
 * @returns The flags, empty when the task sets none.
 */
export function compileV8Flags(): string[] {
  const match = compileTask().match(/--v8-flags=(\S+)/);
  return match ? match[1].split(",") : [];
}

/**
 * Whether deno.json's `compile:incluster` task (else `compile`) leaves V8's code cache on: off
 * with `--no-code-cache`, which `deno run` takes too, so the soak runs as the binary does.
 *
 * @returns False when the task passes `--no-code-cache`.
 */
export function compileUsesCodeCache(): boolean {
  return !compileTask().split(/\s+/).includes("--no-code-cache");
}

function compileTask(): string {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  return String(config.tasks?.["compile:incluster"] ?? config.tasks?.compile ?? "");
}

/**
 * Parses the soak flags of `deno task bench --soak`.
 *
 * @param args The bench's arguments.
 * @returns The options; the short form unless `--minutes` says otherwise, V8 flags and code
 *   cache setting of the compile task unless `--v8-flags` (`--v8-flags=` for none) or
 *   `--code-cache` say otherwise.
 */
export function soakOptions(args: readonly string[]): SoakOptions {
  const options: SoakOptions = {
    minutes: 2.5,
    sampleSeconds: 5,
    tokenSeconds: 2,
    modes: SOAK_MODES,
    starts: 10,
    v8Flags: compileV8Flags(),
    trace: false,
  };
  let sampleGiven = false;
  for (const arg of args) {
    const [name, value = ""] = arg.split(/=(.*)/s);
    if (name === "--soak") continue;
    else if (name === "--minutes") options.minutes = Number(value);
    else if (name === "--sample-seconds") {
      options.sampleSeconds = Number(value);
      sampleGiven = true;
    } else if (name === "--token-seconds") options.tokenSeconds = Number(value);
    else if (name === "--starts") options.starts = Number(value);
    else if (name === "--modes") options.modes = value.split(",") as SoakMode[];
    else if (name === "--v8-flags") options.v8Flags = value === "" ? [] : value.split(",");
    else if (name === "--code-cache" && value === "") options.codeCache = true;
    else if (name === "--trace") options.trace = true;
    else if (name === "--out" && /^[\w.-]+$/.test(value)) options.out = value;
    else if (name === "--entry") options.entry = value;
    else if (name === "--env" && value.includes("=")) {
      const [key, setting] = value.split(/=(.*)/s);
      options.env = { ...options.env, [key]: setting };
    } else {
      throw new Error(
        `Unknown soak argument ${
          JSON.stringify(arg)
        }; known: --minutes=N, --sample-seconds=N, --token-seconds=N, --starts=N, --modes=${
          SOAK_MODES.join(",")
        }, --v8-flags=A,B, --code-cache, --trace, --out=NAME, --entry=SCRIPT, --env=NAME=VALUE`,
      );
    }
  }
  for (const mode of options.modes) {
    if (!SOAK_MODES.includes(mode)) throw new Error(`Unknown soak mode ${JSON.stringify(mode)}`);
  }
  // The long form samples as the issue asks: every 30 s.
  if (!sampleGiven && options.minutes >= 10) options.sampleSeconds = 30;
  return options;
}

/**
 * `deno task bench --soak [...]`: runs the soak, prints the table, writes bench/out/soak.json
 * and bench/out/soak.svg.
 *
 * @param args The bench's arguments.
 */
export async function soakMain(args: readonly string[]): Promise<void> {
  const options = soakOptions(args);
  options.log = (message) => console.error(`soak: ${message}`);
  options.log(
    `${
      options.modes.join(", ")
    } side by side for ${options.minutes} min (${options.starts} --once starts each first)`,
  );
  const report = await runSoak(options);
  await Deno.mkdir(OUT_DIR, { recursive: true });
  const out = options.out ?? "soak";
  await Deno.writeTextFile(new URL(`${out}.json`, OUT_DIR), `${JSON.stringify(report, null, 2)}\n`);
  await Deno.writeTextFile(new URL(`${out}.svg`, OUT_DIR), soakChart(report));
  console.log(formatSoak(report));
  console.log(`\nWritten to bench/out/${out}.json and bench/out/${out}.svg`);
}

if (import.meta.main) {
  await soakMain(Deno.args);
}
