/**
 * Log set-up: one `configure()` call from the entrypoint, `getLogger()` everywhere else.
 *
 * @module
 */
import {
  configure,
  getJsonLinesFormatter,
  type LogLevel,
  type LogRecord,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";
import type { LogFormat } from "./config/mod.ts";

/** The root category every logger of the tool lives under. */
export const LOG_CATEGORY = "ktr";

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
  if (value instanceof Date) return value.toISOString();
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
  return `${new Date(record.timestamp).toISOString()} ${level} ${message}${fields}\n`;
};

const jsonFormatter = getJsonLinesFormatter({ properties: "flatten" });

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
 * Configures LogTape for the whole process. Call once, from the entrypoint.
 *
 * @param options Level, format and an optional sink.
 * @returns A promise that resolves once logging is configured.
 *
 * @example
 * ```ts ignore
 * import { configureLogging } from "./log.ts";
 * await configureLogging({ level: "info", format: "json" });
 * ```
 */
export async function configureLogging(options: LoggingOptions): Promise<void> {
  const sink = options.sink ?? stderrSink(options.format);
  await configure({
    reset: true,
    sinks: { main: sink },
    loggers: [
      { category: [LOG_CATEGORY], lowestLevel: options.level, sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}
