/**
 * What the tool takes from the world it runs in: time, the network, files, its output streams,
 * the shutdown signals and its environment. `main()` gets one {@linkcode Runtime}; the entrypoint
 * passes {@linkcode processRuntime}, tests pass their own and run `main()` in-process.
 *
 * One runtime means one clock: the refresh loop, the status behind `/readyz` and `/metrics`, the
 * token source and the dry run all read the runtime's clock, so they cannot disagree.
 *
 * @module
 */
import { exposedCollector } from "./memory.ts";
import { type Clock, systemClock } from "./token.ts";

/** A stream written synchronously, like `Deno.stdout`. */
export interface OutputStream {
  /**
   * Writes some of the bytes.
   *
   * @param p The bytes.
   * @returns How many were written.
   */
  writeSync(p: Uint8Array): number;
}

/** Where the shutdown signals (SIGTERM, SIGINT) come from. */
export interface SignalSource {
  /**
   * Calls `onSignal` on every shutdown signal until the returned handle is disposed.
   *
   * @param onSignal Called with the signal's name.
   * @returns Disposing it stops listening.
   */
  listen(onSignal: (signal: Deno.Signal) => void): Disposable;
}

/** The world `main()` runs in. */
export interface Runtime {
  /** The one clock of the loop, the status, the token source and the dry run. */
  readonly clock: Clock;
  /** The fetch of the token source and the Kubernetes client. */
  readonly fetch: typeof fetch;
  /** Reads a whole file as UTF-8: the config file, secret, key, CA and service-account files. */
  readonly readTextFile: (path: string) => Promise<string>;
  /** Where `--help`, `--version` and the dry-run report go. */
  readonly stdout: OutputStream;
  /** Where log lines and configuration errors go. */
  readonly stderr: OutputStream;
  /** SIGTERM and SIGINT. */
  readonly signals: SignalSource;
  /** The environment the tool reads: the `KTR_*` variables and the Kubernetes ones. */
  readonly env: Readonly<Record<string, string>>;
  /** Variables the process may not read (a narrow `--allow-env`), so "unset" is not claimed. */
  readonly unreadable?: readonly string[];
  /**
   * V8's full collection, run every minute by a long-running process to keep its memory flat
   * (src/memory.ts); present when the process runs with `--v8-flags=--expose-gc`.
   */
  readonly collectGarbage?: () => void;
}

/** The signals that stop the refresher. */
const SHUTDOWN_SIGNALS: readonly Deno.Signal[] = ["SIGTERM", "SIGINT"];

/**
 * SIGTERM and SIGINT of this process.
 *
 * @example
 * ```ts ignore
 * import { processSignals } from "./runtime.ts";
 * using _listening = processSignals.listen((signal) => console.log(signal));
 * ```
 */
export const processSignals: SignalSource = {
  listen(onSignal) {
    const handlers = SHUTDOWN_SIGNALS.map((signal) => {
      const handler = () => onSignal(signal);
      Deno.addSignalListener(signal, handler);
      return [signal, handler] as const;
    });
    return {
      [Symbol.dispose]() {
        for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
      },
    };
  },
};

/**
 * The runtime of the real process: the system clock, the global `fetch`, `Deno.readTextFile`,
 * the standard streams and the process's signals.
 *
 * @param env The environment, as the entrypoint read it (by name, under its permissions).
 * @param unreadable Variables the process may not read.
 * @returns The runtime.
 *
 * @example
 * ```ts
 * import { processRuntime } from "./runtime.ts";
 * const runtime = processRuntime({ KTR_SECRET_NAME: "my-token" });
 * console.assert(runtime.env.KTR_SECRET_NAME === "my-token");
 * ```
 */
export function processRuntime(
  env: Readonly<Record<string, string>>,
  unreadable: readonly string[] = [],
): Runtime {
  return {
    clock: systemClock,
    fetch: (input, init) => fetch(input, init),
    readTextFile: (path) => Deno.readTextFile(path),
    stdout: Deno.stdout,
    stderr: Deno.stderr,
    signals: processSignals,
    env,
    unreadable,
    collectGarbage: exposedCollector(),
  };
}
