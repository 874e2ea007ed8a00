/**
 * Reading one raw value as its key wants it, and the wording messages share: where a value
 * came from, a value quoted short, a URL with its password hidden.
 *
 * @module
 */
import { envName, flagName } from "./schema.ts";
import type { ConfigSource, KeyDefinition } from "./types.ts";

/** A value read from a source: a typed value, or what is wrong with the raw one. */
export type ParsedValue =
  | { readonly ok: true; readonly value: string | number | boolean | readonly string[] }
  | { readonly ok: false; readonly problem: string };

/** The YAML type of a raw value, for "got ..." in messages. */
export function describeType(raw: unknown): string {
  if (raw === null) return "null";
  if (Array.isArray(raw)) return "a list";
  if (typeof raw === "object") return "a mapping";
  return `a ${typeof raw}`;
}

/**
 * Reads one raw value as the given key wants it. Strings from the
 * environment and flags are read strictly (`10s`, `-5`, `1e3`, `` are not
 * integers). A `boolean` flag given without a value is `true`.
 *
 * @param definition The key.
 * @param raw The raw value: a string from any source, or a number or boolean
 *   from a parsed file or a bare flag.
 * @returns The typed value, or a problem phrased to follow "expected".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KEYS, parseKeyValue } from "./mod.ts";
 *
 * const interval = KEYS.find((d) => d.key === "interval")!;
 * assert.deepEqual(parseKeyValue(interval, "30"), { ok: true, value: 30 });
 * assert.equal(parseKeyValue(interval, "10s").ok, false);
 * ```
 */
export function parseKeyValue(definition: KeyDefinition, raw: unknown): ParsedValue {
  const invalid = (detail = ""): ParsedValue => ({
    ok: false,
    problem: detail === "" ? definition.allowed : detail,
  });
  switch (definition.kind) {
    case "boolean": {
      if (typeof raw === "boolean") return { ok: true, value: raw };
      if (raw === "true" || raw === "1") return { ok: true, value: true };
      if (raw === "false" || raw === "0") return { ok: true, value: false };
      return invalid();
    }
    case "integer": {
      let value: number;
      if (typeof raw === "number") {
        value = raw;
      } else if (typeof raw === "string" && /^(0|[1-9][0-9]*)$/.test(raw)) {
        // Leading zeros are refused: some tools read "010" as octal, so it is ambiguous.
        value = Number(raw);
      } else {
        return invalid(
          typeof raw === "string" ? "" : `${definition.allowed}, got ${describeType(raw)}`,
        );
      }
      if (!Number.isSafeInteger(value)) return invalid();
      if (definition.min !== undefined && value < definition.min) return invalid();
      if (definition.max !== undefined && value > definition.max) return invalid();
      return { ok: true, value };
    }
    case "string": {
      if (typeof raw !== "string") {
        if (raw === true) return invalid(`a value, since the flag was given without one`);
        return invalid(`${definition.allowed}, got ${describeType(raw)}`);
      }
      if (definition.choices !== undefined) {
        const choice = Object.entries(definition.choices).find(
          ([spelling]) => spelling === raw.toLowerCase(),
        );
        if (choice !== undefined) return { ok: true, value: choice[1] };
        const reason = definition.refused?.[raw.toLowerCase()];
        return invalid(reason === undefined ? "" : `${definition.allowed}; ${reason}`);
      }
      if (raw === "" || raw.trim() !== raw) return invalid();
      const detail = definition.check?.(raw);
      return detail === undefined ? { ok: true, value: raw } : invalid(detail);
    }
    case "list": {
      let items: readonly unknown[];
      if (typeof raw === "string") {
        if (raw === "" || raw.trim() !== raw) return invalid();
        items = raw.split(/\s+/);
      } else if (Array.isArray(raw) && raw.length > 0) {
        items = raw;
      } else {
        if (raw === true) return invalid(`a value, since the flag was given without one`);
        return invalid(
          `${definition.allowed}, got ${Array.isArray(raw) ? "an empty list" : describeType(raw)}`,
        );
      }
      for (const item of items) {
        if (typeof item !== "string" || item === "" || /\s/.test(item)) {
          return invalid(
            `${definition.allowed}, got the list item ${
              typeof item === "string" ? quote(item) : describeType(item)
            }`,
          );
        }
        const detail = definition.check?.(item);
        if (detail !== undefined) {
          return invalid(`${detail === "" ? definition.allowed : detail}, got ${quote(item)}`);
        }
      }
      return { ok: true, value: Object.freeze([...items as string[]]) };
    }
  }
}

/** A URL's password must not reach a message even when the URL itself is wrong. */
export function hideUrlPassword(value: unknown): unknown {
  if (typeof value !== "string" || !URL.canParse(value)) return value;
  const url = new URL(value);
  if (url.password === "") return value;
  url.password = "***";
  return url.href;
}

/** Keeps messages one line and short, whatever the value holds. */
export function quote(value: unknown): string {
  const text = JSON.stringify(typeof value === "string" ? value : String(value));
  return text.length > 80 ? `${text.slice(0, 76)}…"` : text;
}

/** Where a value came from, in words: "flag --interval", "environment variable KTR_INTERVAL", ... */
export function describeSource(
  source: ConfigSource,
  definition: KeyDefinition,
  filePath: string | undefined,
): string {
  switch (source) {
    case "flag":
      return `flag ${flagName(definition.key)}`;
    case "env":
      return `environment variable ${envName(definition.key)}`;
    case "file":
      return filePath === undefined ? "the config file" : `config file ${quote(filePath)}`;
    case "default":
      return "the built-in default";
  }
}
