/**
 * The `/metrics` answer: a status snapshot rendered in the Prometheus text exposition format
 * (version 0.0.4). The tool exposes a fixed set of families, so they are written out here one by
 * one rather than kept in a general registry.
 *
 * Hand-written rather than `prom-client` because every import is paid at start-up: measured in a
 * fresh Deno 2.9 process, `prom-client` 15 adds about 7 MB of RSS on top of the tool's other
 * dependencies (20 MB over a bare process) for the Node built-ins it pulls in, while the tool
 * needs only three metric types and the text format. The tests parse the output with the
 * Prometheus Python client's parser, an independent implementation of the format.
 *
 * @module
 */

/**
 * Upper bounds of the refresh duration buckets, in seconds: from a fast local round trip to the
 * longest an attempt may take before liveness fails.
 */
export const DURATION_BUCKETS: readonly number[] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40];

/** Refresh durations of one result, as a histogram over {@linkcode DURATION_BUCKETS}. */
export interface DurationHistogram {
  /** Attempts per bucket, each counting only its own range; one more at the end for above all. */
  readonly counts: readonly number[];
  /** Sum of the durations, in seconds. */
  readonly sum: number;
  /** Number of attempts. */
  readonly count: number;
}

/** What the refresher has done, as the metrics show it. Times are ms since the epoch. */
export interface StatusSnapshot {
  /** The tool's version. */
  readonly version: string;
  /** Deno's version. */
  readonly denoVersion: string;
  /** When the token last written expires; `undefined` while unknown. */
  readonly tokenExpiresAt?: number;
  /** When the last successful refresh ended; `undefined` before the first. */
  readonly lastSuccessAt?: number;
  /** When the next refresh is due; `undefined` before the first attempt ended. */
  readonly nextAt?: number;
  /** Failed attempts since the last success. */
  readonly consecutiveFailures: number;
  /** Attempts by result. */
  readonly attempts: { readonly success: number; readonly failure: number };
  /** Durations by result. */
  readonly durations: { readonly success: DurationHistogram; readonly failure: DurationHistogram };
  /**
   * Repairs of the Secret (written back after a deletion or an overwritten key) by drift and
   * result; absent counts as none.
   */
  readonly repairs?: {
    readonly deleted: { readonly success: number; readonly failure: number };
    readonly overwritten: { readonly success: number; readonly failure: number };
  };
  /** With leader election: whether this replica leads (`ktr_leader`); absent counts as leading. */
  readonly leader?: boolean;
  /** Start of the process, in seconds since the epoch. */
  readonly processStartSeconds: number;
  /** Resident memory, in bytes. */
  readonly residentMemoryBytes: number;
}

/**
 * The `Content-Type` of {@linkcode renderMetrics}'s output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CONTENT_TYPE } from "./metrics.ts";
 *
 * assert.match(CONTENT_TYPE, /^text\/plain; version=0\.0\.4/);
 * ```
 */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Formats a sample value: integers without a fraction, `+Inf`, `-Inf` and `NaN` as the format
 * spells them.
 *
 * @param value The value.
 * @returns Its text form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatValue } from "./metrics.ts";
 *
 * assert.equal(formatValue(Infinity), "+Inf");
 * assert.equal(formatValue(0.25), "0.25");
 * ```
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/**
 * Escapes HELP text: `\` and newline; quotes may stand as they are.
 *
 * @param text The help text.
 * @returns The escaped text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeHelp } from "./metrics.ts";
 *
 * assert.equal(escapeHelp('a\\b\n"c"'), 'a\\\\b\\n"c"');
 * ```
 */
export function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/**
 * Renders a label set: `{name="value",...}`, values with `\`, `"` and newline escaped; nothing
 * for no labels.
 *
 * @param labels Label values by name, in the order to write them.
 * @returns The label set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderLabels } from "./metrics.ts";
 *
 * assert.equal(renderLabels({ v: 'say "hi"' }), '{v="say \\"hi\\""}');
 * ```
 */
export function renderLabels(labels: Readonly<Record<string, string>>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  const escape = (value: string) =>
    value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
  return `{${entries.map(([name, value]) => `${name}="${escape(value)}"`).join(",")}}`;
}

/** HELP and TYPE of a family, then its sample lines. */
function family(name: string, type: string, help: string, samples: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n${samples}`;
}

/** One sample line; nothing for a value that is not known. */
function sample(name: string, value: number | undefined, labels: Record<string, string> = {}) {
  return value === undefined ? "" : `${name}${renderLabels(labels)} ${formatValue(value)}\n`;
}

/** The cumulative buckets, `+Inf` last, then `_sum` and `_count`, of one result. */
function histogramSamples(name: string, result: string, histogram: DurationHistogram): string {
  let text = "";
  let cumulative = 0;
  [...DURATION_BUCKETS, Infinity].forEach((bound, i) => {
    cumulative += histogram.counts[i] ?? 0;
    text += sample(`${name}_bucket`, cumulative, { result, le: formatValue(bound) });
  });
  return text + sample(`${name}_sum`, histogram.sum, { result }) +
    sample(`${name}_count`, histogram.count, { result });
}

const seconds = (ms: number | undefined) => ms === undefined ? undefined : ms / 1000;

/**
 * Renders a status snapshot in the Prometheus text exposition format. Families are always
 * there, with HELP and TYPE; a timestamp that is not known yet has no sample.
 *
 * @param status The snapshot.
 * @returns The exposition, ending in a newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderMetrics } from "./metrics.ts";
 *
 * const empty = { counts: [], sum: 0, count: 0 };
 * const text = renderMetrics({
 *   version: "1.0.0", denoVersion: "2.9.6", consecutiveFailures: 0,
 *   attempts: { success: 1, failure: 0 }, durations: { success: empty, failure: empty },
 *   processStartSeconds: 1_700_000_000, residentMemoryBytes: 50_000_000,
 * });
 * assert.match(text, /^ktr_refresh_attempts_total\{result="success"\} 1$/m);
 * ```
 */
export function renderMetrics(status: StatusSnapshot): string {
  const duration = "ktr_refresh_duration_seconds";
  return [
    family(
      "ktr_build_info",
      "gauge",
      "Always 1; the labels say which version of the refresher and of Deno run.",
      sample("ktr_build_info", 1, { version: status.version, deno_version: status.denoVersion }),
    ),
    family(
      "ktr_token_expiry_timestamp_seconds",
      "gauge",
      "When the token last written to the Secret expires, in seconds since the epoch; absent while unknown.",
      sample("ktr_token_expiry_timestamp_seconds", seconds(status.tokenExpiresAt)),
    ),
    family(
      "ktr_refresh_last_success_timestamp_seconds",
      "gauge",
      "When the last successful refresh ended, in seconds since the epoch.",
      sample("ktr_refresh_last_success_timestamp_seconds", seconds(status.lastSuccessAt)),
    ),
    family(
      "ktr_refresh_next_timestamp_seconds",
      "gauge",
      "When the next refresh is scheduled, in seconds since the epoch.",
      sample("ktr_refresh_next_timestamp_seconds", seconds(status.nextAt)),
    ),
    family(
      "ktr_refresh_consecutive_failures",
      "gauge",
      "Failed refresh attempts since the last successful one.",
      sample("ktr_refresh_consecutive_failures", status.consecutiveFailures),
    ),
    family(
      "ktr_refresh_attempts_total",
      "counter",
      "Refresh attempts (token request and Secret write) by result.",
      sample("ktr_refresh_attempts_total", status.attempts.success, { result: "success" }) +
        sample("ktr_refresh_attempts_total", status.attempts.failure, { result: "failure" }),
    ),
    family(
      duration,
      "histogram",
      "Duration of refresh attempts by result, in seconds.",
      histogramSamples(duration, "success", status.durations.success) +
        histogramSamples(duration, "failure", status.durations.failure),
    ),
    family(
      "ktr_secret_repairs_total",
      "counter",
      "Writes of the token in hand after the Secret was deleted or its key overwritten, by drift and result.",
      (["deleted", "overwritten"] as const).map((drift) =>
        (["success", "failure"] as const).map((result) =>
          sample("ktr_secret_repairs_total", status.repairs?.[drift][result] ?? 0, {
            drift,
            result,
          })
        ).join("")
      ).join(""),
    ),
    family(
      "ktr_leader",
      "gauge",
      "1 while this replica refreshes and writes (the leader, or the only replica without leader.elect), 0 while it stands by.",
      sample("ktr_leader", status.leader === false ? 0 : 1),
    ),
    family(
      "process_start_time_seconds",
      "gauge",
      "Start time of the process since the epoch, in seconds.",
      sample("process_start_time_seconds", status.processStartSeconds),
    ),
    family(
      "process_resident_memory_bytes",
      "gauge",
      "Resident memory size in bytes.",
      sample("process_resident_memory_bytes", status.residentMemoryBytes),
    ),
  ].join("");
}
