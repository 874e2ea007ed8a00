/**
 * The tool's logger: one `configureLogging()` call from the entrypoint, `getLogger()` everywhere
 * else. It does what the tool needs of a logging library and no more (message templates, five
 * levels, one sink, text and JSON Lines): a logging package pulled in `node:util` and some forty
 * Node compatibility modules at start, several MiB of resident memory for nothing we used.
 *
 * @module
 */
import type { LogFormat } from "./config/mod.ts";
import { isoTime } from "./time.ts";

/** The root category every logger of the tool lives under. */
export const LOG_CATEGORY = "ktr";

/** Severity of a record, lowest first; `warning` is written `WARN`. */
export type LogLevel = "debug" | "info" | "warning" | "error" | "fatal";

const RANK: Readonly<Record<LogLevel, number>> = {
  debug: 0,
  info: 1,
  warning: 2,
  error: 3,
  fatal: 4,
};

/** One log record, as sinks and formatters receive it. */
export interface LogRecord {
  /** The logger's category, root first, like `["ktr", "refresh"]`. */
  readonly category: readonly string[];
  /** The severity. */
  readonly level: LogLevel;
  /** Milliseconds since the epoch, when the record was made. */
  readonly timestamp: number;
  /**
   * The message with its placeholders filled: text and values alternating, text first and last,
   * so `"Secret {secret} written"` with `{ secret: "a" }` is `["Secret ", "a", " written"]`.
   */
  readonly message: readonly unknown[];
  /** The message template as the caller wrote it. */
  readonly rawMessage: string;
  /** The fields given with the message. */
  readonly properties: Readonly<Record<string, unknown>>;
}

/** Where records go: a function called once per record that passes the level filter. */
export type Sink = (record: LogRecord) => void;

/** Turns a record into the text a sink writes. */
export type TextFormatter = (record: LogRecord) => string;

/** Writes records of one category; get one with {@linkcode getLogger}. */
export interface Logger {
  /** Details for someone debugging. */
  debug(message: string, properties?: Record<string, unknown>): void;
  /** What the tool did. */
  info(message: string, properties?: Record<string, unknown>): void;
  /** Something went wrong and the tool carries on (level `warning`). */
  warn(message: string, properties?: Record<string, unknown>): void;
  /** Something went wrong that someone must look at. */
  error(message: string, properties?: Record<string, unknown>): void;
  /** The tool stops. */
  fatal(message: string, properties?: Record<string, unknown>): void;
}

/** The process's one configuration; none until `configureLogging()`, so nothing is written. */
let active: { root: string; lowest: number; sink: Sink } | undefined;

/**
 * Fills a message template: `{name}` is replaced by the property `name` (`undefined` when there is
 * none; spaces around the name are ignored), `{{` and `}}` stand for literal braces, and a `{`
 * with no `}` after it is text. A template without `{` is kept as it is.
 *
 * @param template The message template.
 * @param properties The fields to fill it from.
 * @returns Text and values alternating, text first and last.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fillTemplate } from "./log.ts";
 * assert.deepEqual(fillTemplate("{{ {n} }}", { n: 2 }), ["{ ", 2, " }"]);
 * ```
 */
export function fillTemplate(template: string, properties: Record<string, unknown>): unknown[] {
  if (!template.includes("{")) return [template];
  const parts: unknown[] = [];
  let text = "";
  let i = 0;
  while (i < template.length) {
    const char = template[i];
    const next = template[i + 1];
    if ((char === "{" && next === "{") || (char === "}" && next === "}")) {
      text += char;
      i += 2;
      continue;
    }
    const close = char === "{" ? template.indexOf("}", i + 1) : -1;
    if (close === -1) {
      text += char;
      i++;
      continue;
    }
    const key = template.slice(i + 1, close);
    // A name with spaces around it is looked up as written first, then trimmed.
    const name = Object.hasOwn(properties, key) ? key : key.trim();
    parts.push(text, Object.hasOwn(properties, name) ? properties[name] : undefined);
    text = "";
    i = close + 1;
  }
  parts.push(text);
  return parts;
}

function emit(
  category: readonly string[],
  level: LogLevel,
  rawMessage: string,
  given: Record<string, unknown> | undefined,
): void {
  const config = active;
  if (config === undefined || category[0] !== config.root || RANK[level] < config.lowest) return;
  const properties = { ...given };
  const record: LogRecord = {
    category,
    level,
    timestamp: Date.now(),
    message: fillTemplate(rawMessage, properties),
    rawMessage,
    properties,
  };
  try {
    config.sink(record);
  } catch {
    // The sink is the only place a record could go, so a record it cannot take (standard error
    // closed, say) is dropped: logging must not turn a refresh into a failure.
  }
}

/**
 * Gets the logger of a category. Records are written once `configureLogging()` has run, and
 * only under the tool's category {@linkcode LOG_CATEGORY}.
 *
 * @param category The category, root first, like `["ktr", "refresh"]`; a string is one level.
 * @returns The logger.
 *
 * @example
 * ```ts
 * import { getLogger, LOG_CATEGORY } from "./log.ts";
 * getLogger([LOG_CATEGORY, "refresh"]).info("Token refreshed", { secret: "api-token" });
 * ```
 */
export function getLogger(category: readonly string[] | string): Logger {
  const path = typeof category === "string" ? [category] : [...category];
  return {
    debug: (message, properties) => emit(path, "debug", message, properties),
    info: (message, properties) => emit(path, "info", message, properties),
    warn: (message, properties) => emit(path, "warning", message, properties),
    error: (message, properties) => emit(path, "error", message, properties),
    fatal: (message, properties) => emit(path, "fatal", message, properties),
  };
}

/** Options of {@linkcode configureLogging}. */
export interface LoggingOptions {
  /** Lowest level written. */
  level: LogLevel;
  /** `text` for people, `json` for one object per line. */
  format: LogFormat;
  /** Where records go; defaults to standard error, written synchronously so nothing is lost at exit. */
  sink?: Sink;
}

function renderValue(value: unknown): string {
  if (typeof value === "string") {
    return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  }
  if (value instanceof Date) return isoTime(value.getTime());
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value) ?? String(value);
}

/**
 * Formats a record as one human-readable line: time, level, message, then `key=value` fields.
 *
 * @param record The log record.
 * @returns The line, ending with a newline.
 *
 * @example
 * ```ts
 * import { textFormatter } from "./log.ts";
 * const line = textFormatter({
 *   category: ["ktr"], level: "info", timestamp: 0, rawMessage: "Token refreshed",
 *   message: ["Token refreshed"], properties: { secret: "a" },
 * });
 * console.assert(line.includes("secret=a"));
 * ```
 */
export const textFormatter: TextFormatter = (record: LogRecord): string => {
  let message = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    message += i % 2 === 0 || typeof part === "string" ? String(part) : renderValue(part);
  }
  // Values already written into the message are not repeated as fields.
  const inMessage = new Set(
    typeof record.rawMessage === "string"
      ? [...record.rawMessage.matchAll(/\{(\w+)\}/g)].map((m) => m[1])
      : [],
  );
  const fields = Object.entries(record.properties)
    .filter(([k, v]) => v !== undefined && !inMessage.has(k))
    .map(([k, v]) => ` ${k}=${renderValue(v)}`)
    .join("");
  // "WARN", as in the JSON format and in log.level's own word for it.
  const level = (record.level === "warning" ? "WARN" : record.level.toUpperCase()).padEnd(5);
  return `${isoTime(record.timestamp)} ${level} ${message}${fields}\n`;
};

/**
 * A `JSON.stringify` replacer that writes a value found inside itself as `"[Circular]"` (a value
 * met twice side by side is written twice), big integers as strings, and, with `errors`, errors
 * as their name, message, stack and own fields. It keeps state: one per `JSON.stringify` call.
 */
function jsonReplacer(errors: boolean): (this: unknown, key: string, value: unknown) => unknown {
  // The objects being written, outermost first, as given and as replaced.
  const given: unknown[] = [];
  const written: unknown[] = [];
  return function (this: unknown, _key: string, value: unknown): unknown {
    const result = typeof value === "bigint"
      ? value.toString()
      : errors && value instanceof Error
      ? errorFields(value)
      : value;
    if (typeof result !== "object" || result === null) return result;
    // `this` is the object holding the value: everything written after it is done.
    while (written.length > 0 && written[written.length - 1] !== this) {
      written.pop();
      given.pop();
    }
    if (written.includes(result) || given.includes(value)) return "[Circular]";
    given.push(value);
    written.push(result);
    return result;
  };
}

function errorFields(error: Error): Record<string, unknown> {
  const fields: Record<string, unknown> = { name: error.name, message: error.message };
  if (typeof error.stack === "string") fields.stack = error.stack;
  if (error.cause !== undefined) fields.cause = error.cause;
  if (error instanceof AggregateError) fields.errors = error.errors;
  for (const key of Object.keys(error)) if (!(key in fields)) fields[key] = (error as never)[key];
  return fields;
}

/** A value filled into a JSON record's message: strings quoted, objects as JSON. */
function jsonMessageValue(value: unknown): string {
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
    return JSON.stringify(value);
  }
  const bigints = (_key: string, v: unknown) => typeof v === "bigint" ? v.toString() : v;
  let json: string | undefined;
  try {
    json = JSON.stringify(value, bigints);
  } catch {
    json = JSON.stringify(value, jsonReplacer(false));
  }
  // Like string concatenation: undefined, functions and symbols read "undefined".
  return String(json);
}

// DEL and U+0080 to U+009F, which JSON.stringify leaves as they are and a terminal reads as
// control codes (the 8-bit CSI among them); every other control character it escapes itself.
const C1_CONTROLS = /[\u007f-\u009f]/g;

/**
 * Formats a record as one JSON object per line: `@timestamp`, `level` (`WARN` for warning),
 * `message` (values filled in, strings quoted), `logger` (the category joined with dots), then
 * the properties; fields that are `undefined` are left out.
 *
 * @param record The log record.
 * @returns The line, ending with a newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonFormatter } from "./log.ts";
 * const line = jsonFormatter({
 *   category: ["ktr", "refresh"], level: "warning", timestamp: 0, rawMessage: "Retry {n}",
 *   message: ["Retry ", 2, ""], properties: { n: 2 },
 * });
 * assert.equal(
 *   line,
 *   '{"@timestamp":"1970-01-01T00:00:00.000Z","level":"WARN","message":"Retry 2","logger":"ktr.refresh","n":2}\n',
 * );
 * ```
 */
export const jsonFormatter: TextFormatter = (record: LogRecord): string => {
  let message = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    message += i % 2 === 0 ? String(part) : jsonMessageValue(part);
  }
  const line = JSON.stringify(
    {
      "@timestamp": isoTime(record.timestamp),
      level: record.level === "warning" ? "WARN" : record.level.toUpperCase(),
      message,
      logger: record.category.join("."),
      ...record.properties,
    },
    jsonReplacer(true),
  );
  return line.replace(
    C1_CONTROLS,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  ) + "\n";
};

const encoder = new TextEncoder();

/**
 * Writes the whole text to a stream synchronously, so nothing is lost when the process exits
 * right after; one `writeSync` call may write only part of it.
 *
 * @param stream Where to write, like `Deno.stderr`.
 * @param text The text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeAllSync } from "./log.ts";
 *
 * // A stream that takes two bytes per call, as a full pipe may.
 * const parts: string[] = [];
 * const twoAtATime = {
 *   writeSync(p: Uint8Array) {
 *     parts.push(new TextDecoder().decode(p.subarray(0, 2)));
 *     return Math.min(2, p.length);
 *   },
 * };
 * writeAllSync(twoAtATime, "hello");
 * assert.deepEqual(parts, ["he", "ll", "o"]);
 * ```
 */
export function writeAllSync(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}

/**
 * Makes a sink that writes formatted records to a stream synchronously.
 *
 * @param format The log format.
 * @param stream Where to write; standard error in the real process.
 * @returns The sink.
 */
export function streamSink(
  format: LogFormat,
  stream: { writeSync(p: Uint8Array): number },
): Sink {
  const formatter = format === "json" ? jsonFormatter : textFormatter;
  return (record) => writeAllSync(stream, formatter(record));
}

/**
 * Makes a sink that writes formatted records to standard error synchronously.
 *
 * @param format The log format.
 * @returns The sink.
 */
export function stderrSink(format: LogFormat): Sink {
  return streamSink(format, Deno.stderr);
}

/**
 * Configures logging for the whole process: records of the tool's categories at `level` and
 * above go to the sink. Call once, from the entrypoint; a second call replaces the first.
 *
 * @param options Level, format and an optional sink.
 *
 * @example
 * ```ts ignore
 * import { configureLogging } from "./log.ts";
 * configureLogging({ level: "info", format: "json" });
 * ```
 */
export function configureLogging(options: LoggingOptions): void {
  active = {
    root: LOG_CATEGORY,
    lowest: RANK[options.level],
    sink: options.sink ?? stderrSink(options.format),
  };
}

/**
 * Undoes {@linkcode configureLogging}: nothing is written until it is called again. Tests that
 * capture records call it in a `finally` block.
 */
export function resetLogging(): void {
  active = undefined;
}
