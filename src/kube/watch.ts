/**
 * A watch on the Secrets of one name over streaming `fetch`: list once, then follow changes from
 * the list's resourceVersion, reconnecting from the last one seen when the stream ends or breaks.
 *
 * @module
 */
import { getLogger, LOG_CATEGORY } from "../log.ts";
import { systemClock } from "../token.ts";
import { KubeApiError, type KubeClient, type SecretObject } from "./client.ts";
import { textReader } from "../http.ts";
import { unlessAborted } from "../deadline.ts";
import { startIdleTimer } from "../timer.ts";

/** One change of a watched Secret. */
export interface SecretChange {
  /** What happened. */
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  /** The Secret after the change (for DELETED: its last state). */
  readonly secret: SecretObject;
}

/** Counts of what the watch went through, for tests and metrics. */
export interface WatchStats {
  /** Lists (the first one, and one after each expired resourceVersion). */
  lists: number;
  /** Watch requests opened. */
  connects: number;
  /** Streams ended because the resourceVersion had expired (HTTP 410 or an ERROR event). */
  expired: number;
  /** Streams given up because nothing arrived for `silenceMs`. */
  silent: number;
  /** Failed list or watch requests. */
  failures: number;
  /** Events received (bookmarks included). */
  events: number;
}

/** Options of {@linkcode SecretWatch}. */
export interface SecretWatchOptions {
  /** The Kubernetes client. */
  client: KubeClient;
  /** The Secret name. */
  name: string;
  /** The namespace, or undefined to watch the name in every namespace. */
  namespace?: string;
  /**
   * Called with the Secrets of the name after every list: at start and after an expired
   * resourceVersion, when changes may have been missed.
   */
  onSync(secrets: SecretObject[]): void | Promise<void>;
  /** Called for every change, in order. */
  onChange(change: SecretChange): void | Promise<void>;
  /** Server-side timeout of one watch request in seconds. Default 300. */
  timeoutSeconds?: number;
  /** A stream with no event or bookmark for this long is dead. Default 90 000 ms. */
  silenceMs?: number;
  /** First reconnect delay after a failure. Default 500 ms. */
  backoffBaseMs?: number;
  /** Longest reconnect delay. Default 30 000 ms. */
  backoffMaxMs?: number;
  /** Random number in [0, 1) for jitter. */
  random?: () => number;
  /**
   * Another collection to follow with the same list-watch-reconnect logic (the namespaces of
   * the targets): its list and its watch request. Default: the Secrets of `name`.
   */
  collection?: {
    list(signal: AbortSignal): Promise<{ items: SecretObject[]; resourceVersion: string }>;
    watch(
      options: { resourceVersion?: string; timeoutSeconds: number },
      signal: AbortSignal,
    ): Promise<Response>;
  };
}

const MAX_LINE_BYTES = 4 << 20;

/**
 * Follows one Secret name: list, watch, reconnect. A stream that ends (the server's
 * `timeoutSeconds`) is reopened at once from the last resourceVersion; a failed request is
 * retried with jittered exponential backoff (0.5 s doubling to 30 s, ±20 %); an expired
 * resourceVersion (HTTP 410, or an `ERROR` event with code 410) means list again and watch from
 * there; a stream silent for `silenceMs` (the server sends a bookmark about every minute) is
 * dropped as dead and reopened.
 *
 * @example
 * ```ts ignore
 * import { SecretWatch } from "./watch.ts";
 * const watch = new SecretWatch({ client, name: "tok", namespace: "ns", onSync, onChange });
 * await watch.run(shutdown.signal);
 * ```
 */
export class SecretWatch {
  /** What the watch went through so far. */
  readonly stats: WatchStats = {
    lists: 0,
    connects: 0,
    expired: 0,
    silent: 0,
    failures: 0,
    events: 0,
  };
  #options: SecretWatchOptions;
  #resourceVersion: string | undefined;

  /**
   * @param options Client, name, namespace, callbacks and timings.
   */
  constructor(options: SecretWatchOptions) {
    this.#options = options;
  }

  /** The last resourceVersion seen, where the next watch starts. */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  /**
   * Runs until `signal` aborts. Never throws: failures are logged and retried.
   *
   * @param signal Stops the watch and closes its stream.
   */
  async run(signal: AbortSignal): Promise<void> {
    const log = getLogger([LOG_CATEGORY, "watch"]);
    const o = this.#options;
    const random = o.random ?? Math.random;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === undefined) {
          this.stats.lists++;
          const list = o.collection !== undefined
            ? await o.collection.list(signal)
            : await o.client.listSecretsNamed(o.name, o.namespace, signal);
          this.#resourceVersion = list.resourceVersion;
          await o.onSync(list.items);
        }
        const outcome = await this.#follow(signal);
        failures = 0;
        if (outcome === "expired") {
          this.stats.expired++;
          log.debug("Watch resourceVersion expired; listing again", { secret: o.name });
          this.#resourceVersion = undefined;
        } else if (outcome === "silent") {
          this.stats.silent++;
          log.warn(
            "Watch of the Secret was silent for {seconds} s; reconnecting",
            { secret: o.name, namespace: o.namespace, seconds: (o.silenceMs ?? 90_000) / 1000 },
          );
        }
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof KubeApiError && err.status === 410) {
          this.stats.expired++;
          this.#resourceVersion = undefined;
          continue;
        }
        this.stats.failures++;
        failures++;
        const base = o.backoffBaseMs ?? 500;
        const max = o.backoffMaxMs ?? 30_000;
        const delay = Math.min(max, base * 2 ** Math.min(failures - 1, 30)) *
          (0.8 + 0.4 * random());
        log.warn("Watch of the Secret failed; retrying in {retryInSeconds} s: {error}", {
          secret: o.name,
          namespace: o.namespace,
          error: err instanceof Error ? err.message : String(err),
          retryInSeconds: Math.round(delay / 100) / 10,
          failures,
        });
        await systemClock.sleep(delay, signal);
      }
    }
  }

  /** Reads one watch stream to its end. */
  async #follow(signal: AbortSignal): Promise<"ended" | "expired" | "silent"> {
    const o = this.#options;
    const silenceMs = o.silenceMs ?? 90_000;
    const stream = new AbortController();
    const onAbort = () => stream.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    let silent = false;
    // Every read restarts the quiet stretch; silence that long means a dead connection.
    const silence = startIdleTimer(silenceMs, () => {
      silent = true;
      stream.abort();
    });
    try {
      this.stats.connects++;
      const request = {
        resourceVersion: this.#resourceVersion,
        timeoutSeconds: o.timeoutSeconds ?? 300,
      };
      const response = o.collection !== undefined
        ? await o.collection.watch(request, stream.signal)
        : await o.client.watchSecretsNamed(o.name, o.namespace, request, stream.signal);
      const reader = response.body ? textReader(response.body) : undefined;
      if (reader === undefined) return "ended";
      let buffered = "";
      try {
        while (true) {
          // A read pending when the request is aborted does not always settle (seen with data
          // still in flight through the decoder): the abort itself ends the wait.
          const { done, value } = await unlessAborted(reader.read(), stream.signal);
          if (done) return "ended";
          silence.touch();
          buffered += value;
          let newline: number;
          while ((newline = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (line === "") continue;
            const outcome = await this.#handle(line);
            if (outcome !== undefined) return outcome;
          }
          if (buffered.length > MAX_LINE_BYTES) {
            throw new KubeApiError(
              `Kubernetes API sent a watch event over the ${MAX_LINE_BYTES} bytes accepted`,
              { code: "KUBE_HTTP", verb: "watch" },
            );
          }
        }
      } finally {
        // Not awaited, for the same reason: the connection is closed by the abort below.
        reader.cancel().catch(() => {});
      }
    } catch (err) {
      if (silent && !signal.aborted) return "silent";
      throw err;
    } finally {
      silence.cancel();
      signal.removeEventListener("abort", onAbort);
      stream.abort();
    }
  }

  /** Handles one event line; returns how the stream ends when the event ends it. */
  async #handle(line: string): Promise<"expired" | undefined> {
    let event: { type?: unknown; object?: unknown };
    try {
      event = JSON.parse(line);
    } catch {
      throw new KubeApiError("Kubernetes API sent a watch event that is not JSON", {
        code: "KUBE_HTTP",
        verb: "watch",
      });
    }
    this.stats.events++;
    const object = event.object as SecretObject | {
      kind?: string;
      code?: number;
      message?: string;
    };
    switch (event.type) {
      case "BOOKMARK": {
        const rv = (object as SecretObject)?.metadata?.resourceVersion;
        if (typeof rv === "string" && rv !== "") this.#resourceVersion = rv;
        return undefined;
      }
      case "ERROR": {
        const status = object as { code?: number; message?: string; reason?: string };
        if (status?.code === 410) return "expired";
        throw new KubeApiError(
          `Kubernetes API ended the watch with an error: ${status?.message ?? "no message"}`,
          { code: "KUBE_HTTP", status: status?.code, reason: status?.reason, verb: "watch" },
        );
      }
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        const secret = object as SecretObject;
        if (typeof secret?.metadata?.name !== "string") return undefined;
        const rv = secret.metadata.resourceVersion;
        if (typeof rv === "string" && rv !== "") this.#resourceVersion = rv;
        await this.#options.onChange({ type: event.type, secret });
        return undefined;
      }
      default:
        return undefined;
    }
  }
}
