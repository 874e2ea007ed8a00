/**
 * The `--config` YAML file: reading and parsing it (every scalar kept as the string it is
 * written as), and walking the parsed tree into key values, naming unknown and misplaced keys.
 *
 * @module
 */
import type { YAMLError } from "yaml";
import { describeReadError, messageOf } from "../errors.ts";
import { ConfigError } from "./errors.ts";
import { KEYS } from "./schema.ts";
import { closestMatch } from "./suggest.ts";
import { describeType, quote } from "./values.ts";

/**
 * Environment variables that the `yaml` package reads while parsing (its
 * debug switches). A process whose env permission does not cover them cannot
 * load a `--config` file; add them to the allowed variables.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { YAML_PARSER_ENV } from "./mod.ts";
 *
 * assert.ok(YAML_PARSER_ENV.includes("LOG_TOKENS"));
 * ```
 */
export const YAML_PARSER_ENV: readonly string[] = ["LOG_TOKENS", "LOG_STREAM"];

/** Options of {@linkcode loadConfigFile}. */
export interface LoadConfigFileOptions {
  /** Reads a whole file as UTF-8; defaults to `Deno.readTextFile`. */
  readTextFile?: (path: string) => Promise<string>;
}

/**
 * Reads and parses the `--config` YAML file. Every scalar is kept as the
 * string it is written as (`0123` stays `"0123"`, `1e3` stays `"1e3"`), so
 * file values are read exactly like environment values; empty values, `~`
 * and `null` become `null`, which means "not set". The shape is checked
 * later, by {@linkcode resolveConfig}.
 *
 * @param path The file path, as given.
 * @param options How to read the file.
 * @returns The parsed document: `null` when empty, else whatever the YAML holds.
 * @throws {ConfigError} `CONFIG_FILE_UNREADABLE` when the file cannot be read;
 *   `CONFIG_FILE_SYNTAX` with `line` and `column` when it is not valid YAML.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadConfigFile } from "./mod.ts";
 *
 * const file = await loadConfigFile("ktr.yaml", {
 *   readTextFile: () => Promise.resolve("interval: 60\nsecret:\n  name: my-token\n"),
 * });
 * assert.deepEqual(file, { interval: "60", secret: { name: "my-token" } });
 * ```
 */
export async function loadConfigFile(
  path: string,
  options: LoadConfigFileOptions = {},
): Promise<unknown> {
  const { readTextFile = Deno.readTextFile } = options;
  let text: string;
  try {
    text = await readTextFile(path);
  } catch (error) {
    throw new ConfigError(`Cannot read config file ${quote(path)}: ${describeReadError(error)}`, {
      code: "CONFIG_FILE_UNREADABLE",
      source: "file",
      cause: error,
    });
  }

  // Loaded on demand: most deployments configure through the environment alone.
  const { LineCounter, parseDocument } = await import("yaml");
  const lineCounter = new LineCounter();
  let document;
  try {
    document = parseDocument(text, {
      // "failsafe" keeps scalars as written; only YAML's null spellings are resolved.
      schema: "failsafe",
      customTags: ["null"],
      lineCounter,
      prettyErrors: false,
      // "silent" would also drop the error for a second document; "error" only mutes warnings.
      logLevel: "error",
    });
  } catch (error) {
    // The parser looks at its debug switches in the environment while it runs.
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    throw new ConfigError(
      `Cannot parse config file ${quote(path)}: the YAML parser reads the environment variables ${
        YAML_PARSER_ENV.join(" and ")
      }, so allow them with --allow-env`,
      { code: "CONFIG_FILE_UNREADABLE", source: "file", cause: error },
    );
  }
  const syntaxError = (
    message: string,
    error: YAMLError | unknown,
    line?: number,
    column?: number,
  ) =>
    new ConfigError(
      `Invalid YAML in config file ${quote(path)}${
        line === undefined ? "" : ` at line ${line}, column ${column}`
      }: ${message.replace(/\.$/, "")}`,
      { code: "CONFIG_FILE_SYNTAX", source: "file", line, column, cause: error },
    );
  if (document.errors.length > 0) {
    const [error] = document.errors;
    const { line, col } = lineCounter.linePos(error.pos[0]);
    // The parser's own text for this one points at its JavaScript API.
    const message = error.code === "MULTIPLE_DOCS"
      ? 'the file holds more than one YAML document (a "---" line); keep all keys in one'
      : error.message;
    throw syntaxError(message, error, line, col);
  }
  try {
    return document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // Alias problems only show while building values, and carry no position.
    throw syntaxError(messageOf(error), error);
  }
}

/** The file-only key holding the list of targets. */
export const TARGETS_KEY = "targets";

/** A YAML mapping (a plain object), as opposed to a list, a scalar or bytes. */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

/** Every dotted prefix of a key that is a YAML section, like `oidc`. */
function sectionsOf(keys: readonly string[]): Set<string> {
  const sections = new Set<string>();
  for (const key of keys) {
    const parts = key.split(".");
    for (let i = 1; i < parts.length; i++) sections.add(parts.slice(0, i).join("."));
  }
  return sections;
}

/** Reads the values out of the parsed file, checking its shape and naming unknown keys. */
export function readFileValues(
  file: unknown,
  filePath: string | undefined,
  errors: ConfigError[],
): Map<string, unknown> {
  const values = new Map<string, unknown>();
  const where = filePath === undefined ? "the config file" : `config file ${quote(filePath)}`;
  const known: string[] = KEYS.map((d) => d.key);
  const sections = sectionsOf(known);
  const childrenOf = (section: string) =>
    [...known, ...sections].filter((name) =>
      name.startsWith(`${section}.`) && !name.slice(section.length + 1).includes(".")
    ).map((name) => name.slice(section.length + 1));

  // An empty or comment-only file is a document without keys, not an error.
  if (file === undefined || file === null) return values;
  if (!isMapping(file)) {
    errors.push(
      new ConfigError(
        `The content of ${where} is ${
          describeType(file)
        }: expected a mapping of keys like "secret:" and "oidc:"`,
        { code: "CONFIG_INVALID", source: "file" },
      ),
    );
    return values;
  }

  const walk = (mapping: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(mapping)) {
      const key = prefix === "" ? name : `${prefix}.${name}`;
      // A list of its own, read by the targets module (file only: no variable or flag form).
      if (key === TARGETS_KEY) continue;
      if (name.includes(".")) {
        // One layout only: a flat "secret.name:" next to a nested one would be ambiguous.
        const [section, ...rest] = key.split(".");
        const nested = known.includes(key) || sections.has(key);
        errors.push(
          new ConfigError(
            `Unknown key ${quote(key)} in ${where}: ${
              nested
                ? `nest it instead, as "${rest.join(".")}:" under "${section}:"`
                : "keys are nested mappings, not dotted names"
            }`,
            { code: "CONFIG_UNKNOWN_KEY", key, source: "file" },
          ),
        );
      } else if (known.includes(key)) {
        // An empty YAML value (`key:`, `~`, `null`) sets nothing; `""` is the empty string.
        if (value !== null) values.set(key, value);
      } else if (sections.has(key)) {
        if (value === null) continue;
        if (isMapping(value)) {
          walk(value, key);
        } else {
          errors.push(
            new ConfigError(
              `Invalid value for ${key} in ${where}: expected a mapping with the keys ${
                childrenOf(key).join(", ")
              }, got ${describeType(value)}`,
              { code: "CONFIG_INVALID", key, source: "file" },
            ),
          );
        }
      } else {
        const suggestion = closestMatch(key, [...known, ...sections]);
        const hint = suggestion === undefined
          ? `known keys${prefix === "" ? "" : ` under ${prefix}`} are ${
            (prefix === "" ? [...new Set(known.map((k) => k.split(".")[0]))] : childrenOf(prefix))
              .join(", ")
          }`
          : `did you mean ${quote(suggestion)}?`;
        errors.push(
          new ConfigError(`Unknown key ${quote(key)} in ${where}: ${hint}`, {
            code: "CONFIG_UNKNOWN_KEY",
            key,
            source: "file",
          }),
        );
      }
    }
  };
  walk(file, "");
  return values;
}
