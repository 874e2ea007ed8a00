/**
 * A small writer for the Prometheus text exposition format (version 0.0.4): counters, gauges and
 * histograms with labels, rendered on demand.
 *
 * Hand-written rather than `prom-client` because every import is paid at start-up: measured in a
 * fresh Deno 2.9 process, `prom-client` 15 adds about 7 MB of RSS on top of the tool's other
 * dependencies (20 MB over a bare process) for the Node built-ins it pulls in, while the tool
 * needs only the three metric types and the text format. The tests parse the output with the
 * Prometheus Python client's parser, an independent implementation of the format.
 *
 * @module
 */

/** Codes of {@linkcode MetricsError}. */
export type MetricsErrorCode =
  /** A metric or label name breaks the Prometheus naming rules. */
  | "METRICS_INVALID_NAME"
  /** A metric of that name is already registered. */
  | "METRICS_DUPLICATE"
  /** Labels given do not match the label names the metric was declared with. */
  | "METRICS_LABELS"
  /** A value is not allowed (a counter that goes down, a histogram without buckets, ...). */
  | "METRICS_INVALID_VALUE";

/**
 * A programming error in the use of the metrics: names, labels or values that would produce an
 * exposition Prometheus rejects.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsError, MetricsRegistry } from "./metrics.ts";
 *
 * const registry = new MetricsRegistry();
 * assert.throws(() => registry.counter({ name: "bad name", help: "x" }), MetricsError);
 * ```
 */
export class MetricsError extends Error {
  /** Always `MetricsError`. */
  override name = "MetricsError";
  /** The reason. */
  readonly code: MetricsErrorCode;

  /**
   * Creates the error.
   *
   * @param message One line saying what is wrong.
   * @param code The reason.
   */
  constructor(message: string, code: MetricsErrorCode) {
    super(message);
    this.code = code;
  }
}

/** Label values by label name. */
export type Labels = Readonly<Record<string, string>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

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

/** `\` and newline are escaped in HELP text; quotes may stand as they are. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** `\`, `"` and newline are escaped in label values. */
function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function renderLabels(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  return `{${names.map((n, i) => `${n}="${escapeLabelValue(values[i])}"`).join(",")}}`;
}

/** Options shared by every metric. */
export interface MetricOptions {
  /** The metric name; for a counter it must end in `_total`. */
  name: string;
  /** One line of help text. */
  help: string;
  /** Names of the labels every sample carries, in output order. */
  labelNames?: readonly string[];
}

/**
 * What every metric type shares: a validated name, help text, label names, and its series (one
 * per set of label values, in the order they were first seen).
 */
export abstract class Metric<V> {
  /** The metric name. */
  readonly name: string;
  /** The help text. */
  readonly help: string;
  /** The label names every series carries, in output order. */
  readonly labelNames: readonly string[];
  /** Series by their label values (JSON of the values in label-name order). */
  protected readonly series = new Map<string, { labels: string[]; value: V }>();
  /** The `# TYPE` of the metric. */
  protected abstract readonly type: string;

  /**
   * Validates the names.
   *
   * @param options Name, help and label names.
   * @param reservedLabels Label names the type uses itself (a histogram's `le`).
   * @throws {MetricsError} `METRICS_INVALID_NAME` for a bad metric or label name.
   */
  constructor(options: MetricOptions, reservedLabels: readonly string[] = []) {
    if (!METRIC_NAME.test(options.name)) {
      throw new MetricsError(`Invalid metric name "${options.name}"`, "METRICS_INVALID_NAME");
    }
    const labelNames = options.labelNames ?? [];
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || reservedLabels.includes(label)) {
        throw new MetricsError(
          `Invalid label name "${label}" for metric "${options.name}"`,
          "METRICS_INVALID_NAME",
        );
      }
    }
    if (new Set(labelNames).size !== labelNames.length) {
      throw new MetricsError(
        `Label names of metric "${options.name}" repeat`,
        "METRICS_INVALID_NAME",
      );
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = labelNames;
  }

  /**
   * The label values in declaration order.
   *
   * @param labels Label values by name.
   * @returns The values.
   * @throws {MetricsError} `METRICS_LABELS` for missing or unknown labels.
   */
  protected labelValues(labels: Labels = {}): string[] {
    const given = Object.keys(labels);
    const unknown = given.filter((l) => !this.labelNames.includes(l));
    const missing = this.labelNames.filter((l) => !given.includes(l));
    if (unknown.length > 0 || missing.length > 0) {
      throw new MetricsError(
        `Labels of metric "${this.name}" must be exactly [${this.labelNames.join(", ")}]`,
        "METRICS_LABELS",
      );
    }
    return this.labelNames.map((l) => labels[l]);
  }

  /**
   * The series of a set of label values, created with `initial()` when new.
   *
   * @param labels Label values by name.
   * @param initial Makes the state of a new series.
   * @returns The series.
   */
  protected entry(labels: Labels | undefined, initial: () => V): { labels: string[]; value: V } {
    const values = this.labelValues(labels);
    const key = JSON.stringify(values);
    let found = this.series.get(key);
    if (found === undefined) {
      found = { labels: values, value: initial() };
      this.series.set(key, found);
    }
    return found;
  }

  /**
   * Renders the metric: HELP, TYPE and every series.
   *
   * @returns The text, ending in a newline.
   */
  render(): string {
    let text = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    for (const { labels, value } of this.series.values()) text += this.renderSeries(labels, value);
    return text;
  }

  /**
   * Renders one series.
   *
   * @param labels The series' label values.
   * @param value The series' state.
   * @returns Its sample lines.
   */
  protected abstract renderSeries(labels: string[], value: V): string;
}

/**
 * A value that only goes up, like the number of refresh attempts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./metrics.ts";
 *
 * const registry = new MetricsRegistry();
 * const attempts = registry.counter({
 *   name: "demo_attempts_total", help: "Attempts.", labelNames: ["result"],
 * });
 * attempts.inc({ result: "success" });
 * assert.match(registry.render(), /^demo_attempts_total\{result="success"\} 1$/m);
 * ```
 */
export class Counter extends Metric<number> {
  /** The `# TYPE`. */
  protected readonly type = "counter";

  /**
   * Creates a counter without series.
   *
   * @param options Name (ending in `_total`), help and label names.
   * @throws {MetricsError} `METRICS_INVALID_NAME` for a bad name or one without `_total`.
   */
  constructor(options: MetricOptions) {
    super(options);
    if (!options.name.endsWith("_total")) {
      throw new MetricsError(
        `Counter name "${options.name}" must end in "_total"`,
        "METRICS_INVALID_NAME",
      );
    }
  }

  /**
   * Adds to the counter of one series, creating it at 0 first.
   *
   * @param labels The series' label values.
   * @param amount How much to add, at least 0 (0 makes the series appear).
   * @throws {MetricsError} `METRICS_LABELS` or `METRICS_INVALID_VALUE`.
   */
  inc(labels?: Labels, amount = 1): void {
    if (!(amount >= 0) || !Number.isFinite(amount)) {
      throw new MetricsError(
        `Counter "${this.name}" cannot grow by ${amount}`,
        "METRICS_INVALID_VALUE",
      );
    }
    this.entry(labels, () => 0).value += amount;
  }

  /** Renders the one sample line of a series. */
  protected renderSeries(labels: string[], value: number): string {
    return `${this.name}${renderLabels(this.labelNames, labels)} ${formatValue(value)}\n`;
  }
}

/**
 * A value that goes up and down, like a timestamp. A series that was never set has no sample,
 * so "unknown" shows as absent rather than as a made-up 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./metrics.ts";
 *
 * const registry = new MetricsRegistry();
 * const expiry = registry.gauge({ name: "demo_expiry_timestamp_seconds", help: "Expiry." });
 * assert.doesNotMatch(registry.render(), /^demo_expiry_timestamp_seconds /m);
 * expiry.set(1700000000);
 * assert.match(registry.render(), /^demo_expiry_timestamp_seconds 1700000000$/m);
 * ```
 */
export class Gauge extends Metric<number> {
  /** The `# TYPE`. */
  protected readonly type = "gauge";

  /**
   * Sets the value of one series.
   *
   * @param value The value.
   * @param labels The series' label values.
   * @throws {MetricsError} `METRICS_LABELS`.
   */
  set(value: number, labels?: Labels): void {
    this.entry(labels, () => value).value = value;
  }

  /**
   * Removes one series, so it has no sample until set again.
   *
   * @param labels The series' label values.
   * @throws {MetricsError} `METRICS_LABELS`.
   */
  remove(labels?: Labels): void {
    this.series.delete(JSON.stringify(this.labelValues(labels)));
  }

  /** Renders the one sample line of a series. */
  protected renderSeries(labels: string[], value: number): string {
    return `${this.name}${renderLabels(this.labelNames, labels)} ${formatValue(value)}\n`;
  }
}

/** Options of {@linkcode Histogram}. */
export interface HistogramOptions extends MetricOptions {
  /** Upper bounds of the buckets, increasing; `+Inf` is added. */
  buckets: readonly number[];
}

/** The state of one histogram series: counts per bucket (not cumulative), sum and count. */
export interface HistogramSeries {
  /** Observations per bucket, `+Inf` last; each counts only its own range. */
  counts: number[];
  /** Sum of the observed values. */
  sum: number;
  /** Number of observations. */
  count: number;
}

/**
 * Observations counted into cumulative buckets, like request durations.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./metrics.ts";
 *
 * const registry = new MetricsRegistry();
 * const duration = registry.histogram({
 *   name: "demo_duration_seconds", help: "Duration.", buckets: [0.1, 1],
 * });
 * duration.observe(0.5);
 * const text = registry.render();
 * assert.match(text, /^demo_duration_seconds_bucket\{le="0.1"\} 0$/m);
 * assert.match(text, /^demo_duration_seconds_bucket\{le="1"\} 1$/m);
 * assert.match(text, /^demo_duration_seconds_bucket\{le="\+Inf"\} 1$/m);
 * assert.match(text, /^demo_duration_seconds_count 1$/m);
 * ```
 */
export class Histogram extends Metric<HistogramSeries> {
  /** The `# TYPE`. */
  protected readonly type = "histogram";
  /** Upper bounds, increasing, without `+Inf`. */
  readonly buckets: readonly number[];

  /**
   * Creates a histogram without series.
   *
   * @param options Name, help, label names and bucket bounds.
   * @throws {MetricsError} `METRICS_INVALID_NAME` (also for a label named `le`) or
   *   `METRICS_INVALID_VALUE` for buckets that are empty, not finite or not increasing.
   */
  constructor(options: HistogramOptions) {
    super(options, ["le"]);
    const { buckets } = options;
    const increasing = buckets.every((b, i) =>
      Number.isFinite(b) && (i === 0 || b > buckets[i - 1])
    );
    if (buckets.length === 0 || !increasing) {
      throw new MetricsError(
        `Buckets of histogram "${options.name}" must be finite and increasing`,
        "METRICS_INVALID_VALUE",
      );
    }
    this.buckets = [...buckets];
  }

  /**
   * Makes a series appear with zero observations, so rates work before the first one.
   *
   * @param labels The series' label values.
   * @throws {MetricsError} `METRICS_LABELS`.
   */
  touch(labels?: Labels): void {
    this.entry(labels, () => this.#empty());
  }

  /**
   * Counts one observation.
   *
   * @param value The observed value (`NaN` is refused).
   * @param labels The series' label values.
   * @throws {MetricsError} `METRICS_LABELS` or `METRICS_INVALID_VALUE`.
   */
  observe(value: number, labels?: Labels): void {
    if (Number.isNaN(value)) {
      throw new MetricsError(
        `Histogram "${this.name}" cannot observe NaN`,
        "METRICS_INVALID_VALUE",
      );
    }
    const series = this.entry(labels, () => this.#empty()).value;
    // Each bucket counts only its own range here; render() makes them cumulative.
    const index = this.buckets.findIndex((bound) => value <= bound);
    series.counts[index === -1 ? this.buckets.length : index]++;
    series.sum += value;
    series.count++;
  }

  #empty(): HistogramSeries {
    return { counts: new Array(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  /** Renders the cumulative buckets, `+Inf` last, then `_sum` and `_count`. */
  protected renderSeries(labels: string[], value: HistogramSeries): string {
    const names = [...this.labelNames, "le"];
    let text = "";
    let cumulative = 0;
    [...this.buckets, Infinity].forEach((bound, i) => {
      cumulative += value.counts[i];
      text += `${this.name}_bucket${renderLabels(names, [...labels, formatValue(bound)])} ${
        formatValue(cumulative)
      }\n`;
    });
    const plain = renderLabels(this.labelNames, labels);
    text += `${this.name}_sum${plain} ${formatValue(value.sum)}\n`;
    text += `${this.name}_count${plain} ${formatValue(value.count)}\n`;
    return text;
  }
}

/**
 * The `Content-Type` of {@linkcode MetricsRegistry.render}'s output.
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
 * A set of metrics rendered together, in registration order. Hooks run before each rendering, to
 * update values that are read rather than counted (memory in use, for example).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./metrics.ts";
 *
 * const registry = new MetricsRegistry();
 * const up = registry.gauge({ name: "demo_up", help: "Always 1." });
 * registry.beforeRender(() => up.set(1));
 * assert.equal(registry.render(), "# HELP demo_up Always 1.\n# TYPE demo_up gauge\ndemo_up 1\n");
 * ```
 */
export class MetricsRegistry {
  #metrics: { readonly name: string; render(): string }[] = [];
  #hooks: (() => void)[] = [];

  #add<M extends { readonly name: string; render(): string }>(metric: M): M {
    if (this.#metrics.some((m) => m.name === metric.name)) {
      throw new MetricsError(
        `Metric "${metric.name}" is already registered`,
        "METRICS_DUPLICATE",
      );
    }
    this.#metrics.push(metric);
    return metric;
  }

  /**
   * Registers a counter.
   *
   * @param options Name, help and label names.
   * @returns The counter.
   * @throws {MetricsError} For a bad or duplicate name.
   */
  counter(options: MetricOptions): Counter {
    return this.#add(new Counter(options));
  }

  /**
   * Registers a gauge.
   *
   * @param options Name, help and label names.
   * @returns The gauge.
   * @throws {MetricsError} For a bad or duplicate name.
   */
  gauge(options: MetricOptions): Gauge {
    return this.#add(new Gauge(options));
  }

  /**
   * Registers a histogram.
   *
   * @param options Name, help, label names and buckets.
   * @returns The histogram.
   * @throws {MetricsError} For a bad or duplicate name, or bad buckets.
   */
  histogram(options: HistogramOptions): Histogram {
    return this.#add(new Histogram(options));
  }

  /**
   * Adds a function that runs before every rendering.
   *
   * @param hook Updates metrics from their source.
   */
  beforeRender(hook: () => void): void {
    this.#hooks.push(hook);
  }

  /**
   * Renders every metric in the text exposition format.
   *
   * @returns The exposition, ending in a newline.
   */
  render(): string {
    for (const hook of this.#hooks) hook();
    return this.#metrics.map((m) => m.render()).join("");
  }
}
