/**
 * Child processes of the footprint bench: `deno run` under a deno.json permission set (started by
 * the tests' process fixture, so the bench runs the tool exactly as the tests do), their
 * memory as the kernel counts it, their JSON-lines output, and the list of modules V8 has
 * compiled in them (read over the inspector protocol).
 *
 * @module
 */

import { ROOT, startDeno } from "../tests/fixtures/refresher_process.ts";

export { ROOT };

let cachedDenoDir: string | undefined;

/**
 * Deno's cache folder, as `deno info` reports it, so children with a cleared environment find
 * the same cache (and the same compiled code) as the parent.
 *
 * @returns The folder.
 */
export async function denoDir(): Promise<string> {
  if (cachedDenoDir !== undefined) return cachedDenoDir;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  cachedDenoDir = String(JSON.parse(new TextDecoder().decode(out.stdout)).denoDir);
  return cachedDenoDir;
}

/** Options of {@linkcode spawnDeno}. */
export interface SpawnDenoOptions {
  /** The script, relative to the repository root. */
  script: string;
  /** Flags for `deno run` besides the config, permission set and `--quiet`. */
  denoFlags?: string[];
  /** Arguments after the script. */
  args?: string[];
  /** The environment besides `DENO_DIR` (nothing else is inherited). */
  env?: Record<string, string>;
  /** The deno.json permission set. Default `incluster`. */
  permissionSet?: string;
}

/** A running child. */
export interface DenoChild {
  /** The process id (of Deno itself: no shell in between). */
  readonly pid: number;
  /** `performance.now()` of the parent just before the spawn. */
  readonly spawnedAt: number;
  /** Complete standard output lines, in order, as they arrive. */
  readonly lines: AsyncIterable<string>;
  /** The last few kilobytes of standard error, for error messages. */
  stderrTail(): string;
  /** Sends a signal if the process still runs. */
  kill(signal?: Deno.Signal): void;
  /** The exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Kills the process (SIGKILL) if it still runs and waits for it. */
  [Symbol.asyncDispose](): Promise<void>;
}

const STDERR_TAIL = 4096;

/**
 * Starts `deno run --quiet --no-prompt --config=deno.json --permission-set=<set> <script>`
 * through the tests' {@linkcode startDeno}, and splits its output into lines.
 *
 * @param options Script, flags, arguments and environment.
 * @returns The running child.
 */
export async function spawnDeno(options: SpawnDenoOptions): Promise<DenoChild> {
  const env = { DENO_DIR: await denoDir(), ...options.env };
  const spawnedAt = performance.now();
  const child = startDeno({ ...options, env });
  let tail = "";
  const drainStderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      tail = (tail + chunk).slice(-STDERR_TAIL);
    }
  })();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    await drainStderr;
    return s;
  });
  return {
    pid: child.pid,
    spawnedAt,
    lines,
    stderrTail: () => tail,
    kill(signal: Deno.Signal = "SIGTERM") {
      if (exited) return;
      try {
        child.kill(signal);
      } catch {
        // Exited in the meantime.
      }
    },
    status,
    async [Symbol.asyncDispose]() {
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited in the meantime.
        }
      }
      await status;
      await lines.cancel().catch(() => {});
    },
  };
}

function lineSplitter(): TransformStream<string, string> {
  let buffer = "";
  return new TransformStream({
    transform(chunk, controller) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        controller.enqueue(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    },
    flush(controller) {
      if (buffer !== "") controller.enqueue(buffer);
    },
  });
}

/** A process's memory as the kernel counts it, in bytes. */
export interface ProcMemory {
  /** Resident set size (`VmRSS`): what a memory limit is compared with. */
  rss: number;
  /** Its anonymous part (`RssAnon`): heaps, stacks; cannot be dropped under pressure. */
  anon: number;
  /** Its file-backed part (`RssFile`): mostly the pages of the Deno executable in use. */
  file: number;
  /** Peak resident set size (`VmHWM`). */
  peak: number;
}

/**
 * Reads `/proc/<pid>/status` (Linux).
 *
 * @param pid The process id.
 * @returns Its memory, or undefined when `/proc` is not there or the process is gone.
 */
export function procMemory(pid: number): ProcMemory | undefined {
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const kib = (field: string) => {
    const match = status.match(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m"));
    return match ? Number(match[1]) * 1024 : NaN;
  };
  const memory = {
    rss: kib("VmRSS"),
    anon: kib("RssAnon"),
    file: kib("RssFile"),
    peak: kib("VmHWM"),
  };
  // A process that has exited but not been waited for still has a status file, without these.
  return Object.values(memory).some(Number.isNaN) ? undefined : memory;
}

export { freePort } from "../tests/fixtures/ports.ts";

/**
 * The URLs of every script V8 has compiled in a process started with
 * `--inspect=127.0.0.1:<port>`: it connects to the inspector, enables the debugger (which
 * reports each script parsed so far) and disconnects. Nothing runs in the inspected process.
 *
 * @param port The inspector port.
 * @param timeoutMs How long to wait for the inspector.
 * @returns Script URLs (`file:`, `node:`, `ext:` ...), in the order V8 reports them.
 */
export async function compiledScripts(port: number, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let target: string | undefined;
  while (target === undefined) {
    try {
      const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      target = list[0]?.webSocketDebuggerUrl;
    } catch {
      // Not listening yet.
    }
    if (target === undefined) {
      if (Date.now() > deadline) throw new Error(`No inspector on port ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  const socket = new WebSocket(target);
  const urls: string[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("The inspector did not answer")), timeoutMs);
      socket.onerror = () => {
        clearTimeout(timer);
        reject(new Error("Inspector connection failed"));
      };
      socket.onopen = () => socket.send(JSON.stringify({ id: 1, method: "Debugger.enable" }));
      socket.onmessage = (message) => {
        const data = JSON.parse(String(message.data));
        if (data.method === "Debugger.scriptParsed" && data.params.url) urls.push(data.params.url);
        if (data.id === 1) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
  } finally {
    socket.close();
  }
  return urls;
}

/**
 * The npm package a module URL or bundle path belongs to, from the layout of Deno's npm cache
 * (`…/npm/<registry>/<name>/<version>/…`) or of a `node_modules` folder.
 *
 * @param url A module URL or path.
 * @returns The package name, or undefined for anything else.
 */
export function npmPackageOf(url: string): string | undefined {
  const fromCache = url.match(/\/npm\/[^/]+\/((?:@[^/]+\/)?[^/]+)\/\d[^/]*\//);
  if (fromCache) return fromCache[1];
  const fromNodeModules = url.match(/.*\/node_modules\/((?:@[^/]+\/)?[^/.][^/]*)\//);
  return fromNodeModules?.[1];
}
