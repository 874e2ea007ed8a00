/**
 * The key table in words, for `--help` and for README's configuration table alike, so the two
 * say the same: one description and one default per key, from {@linkcode KEYS}.
 *
 * @module
 */
import { envName, flagName, KEYS } from "./schema.ts";
import type { KeyDefinition } from "./types.ts";

/** What a key defaults to, in the words of `--help` and of README. */
export interface DefaultFact {
  /** For `--help`: `default: "token"`, `required`, `no default`, ... */
  readonly help: string;
  /** For README's default column: `` `token` ``, `(required)`, `(no default)`, ... */
  readonly readme: string;
}

/** Leaves out the backticks that mark code in descriptions: `--help` is plain text. */
function plain(text: string): string {
  return text.replaceAll("`", "");
}

/**
 * The default of a key, said the same way in `--help` and README.
 *
 * @param definition The key.
 * @returns Both wordings.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultFact, KEYS } from "./mod.ts";
 *
 * const key = KEYS.find((d) => d.key === "secret.key")!;
 * assert.deepEqual(defaultFact(key), { help: 'default: "token"', readme: "`token`" });
 * ```
 */
export function defaultFact(definition: KeyDefinition): DefaultFact {
  if (definition.podDefault !== undefined) {
    return {
      help: `in a pod default: ${plain(definition.podDefault)}; required outside a pod`,
      readme: `in a pod: ${definition.podDefault}; else (required)`,
    };
  }
  if (definition.defaultText !== undefined) {
    return { help: `default: ${plain(definition.defaultText)}`, readme: definition.defaultText };
  }
  if (definition.default === undefined) {
    return definition.optional
      ? { help: "no default", readme: "(no default)" }
      : { help: "required", readme: "(required)" };
  }
  if (definition.secret) return { help: "default: hidden", readme: "(hidden)" };
  return {
    help: `default: ${JSON.stringify(definition.default)}`,
    readme: `\`${definition.default}\``,
  };
}

/**
 * A key's line of `--help`, after the flag: the description and the facts in parentheses.
 *
 * @param definition The key.
 * @returns The text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpLine, KEYS } from "./mod.ts";
 *
 * const key = KEYS.find((d) => d.key === "oidc.clientid")!;
 * assert.equal(helpLine(key), "OAuth client id (env: KTR_OIDC_CLIENTID, required)");
 * ```
 */
export function helpLine(definition: KeyDefinition): string {
  const facts = [`env: ${envName(definition.key)}`, defaultFact(definition).help];
  if (definition.secret) facts.push("secret, never shown");
  return `${plain(definition.description)} (${facts.join(", ")})`;
}

/** One row of README's configuration table. */
export interface KeyTableRow {
  /** The key, in backticks. */
  readonly key: string;
  /** Its environment variable, in backticks. */
  readonly environment: string;
  /** Its flag, in backticks. */
  readonly flag: string;
  /** Its default, as {@linkcode DefaultFact.readme}. */
  readonly default: string;
  /** The description, as `--help` shows it but with code in backticks; a secret says so. */
  readonly meaning: string;
}

/**
 * README's configuration table, row by row, in the order of `--help`. A test holds README to it.
 *
 * @returns One row per key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyTableRows } from "./mod.ts";
 *
 * assert.equal(keyTableRows()[0].key, "`secret.name`");
 * ```
 */
export function keyTableRows(): KeyTableRow[] {
  return (KEYS as readonly KeyDefinition[]).map((definition) => ({
    key: `\`${definition.key}\``,
    environment: `\`${envName(definition.key)}\``,
    flag: `\`${flagName(definition.key)}\``,
    default: defaultFact(definition).readme,
    meaning: definition.secret
      ? `${definition.description}; secret, never shown`
      : definition.description,
  }));
}
