/**
 * Which namespaces a target selects: names and globs (`team-*`), and Kubernetes label selectors
 * (`env=prod,tier!=cache,team in (a,b),!legacy`), parsed once at start and matched in memory
 * against the namespaces the tool lists and watches.
 *
 * @module
 */

/**
 * Compiles a namespace glob: `*` matches any run of characters, `?` exactly one; everything else
 * is literal. A pattern without wildcards matches only that name.
 *
 * @param pattern The glob.
 * @returns A test for namespace names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileGlob } from "./select.ts";
 * assert.ok(compileGlob("team-*")("team-a"));
 * assert.ok(!compileGlob("team-*")("ci"));
 * ```
 */
export function compileGlob(pattern: string): (name: string) => boolean {
  if (!/[*?]/.test(pattern)) return (name) => name === pattern;
  const source = pattern.replace(/[.+^${}()|[\]\\-]/g, "\\$&").replaceAll("*", ".*")
    .replaceAll("?", ".");
  const regex = new RegExp(`^${source}$`);
  return (name) => regex.test(name);
}

/** A glob may hold the characters of a namespace name plus `*` and `?`. */
export function checkGlob(pattern: string): string | undefined {
  return /^[a-z0-9*?]([-a-z0-9*?]*)$/.test(pattern) && pattern.length <= 63
    ? undefined
    : "a namespace name or a glob of one (lowercase letters, digits, '-', '*' and '?')";
}

/** One requirement of a label selector. */
export type Requirement =
  | { readonly op: "=" | "!="; readonly key: string; readonly value: string }
  | { readonly op: "in" | "notin"; readonly key: string; readonly values: readonly string[] }
  | { readonly op: "exists" | "!"; readonly key: string };

/** Thrown by {@linkcode parseLabelSelector} for a selector it cannot read; `message` says why. */
export class SelectorSyntaxError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "SelectorSyntaxError";
  }
}

const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function checkKey(key: string): string {
  if (!LABEL_KEY.test(key) || key.length > 317) {
    throw new SelectorSyntaxError(`${JSON.stringify(key)} is not a label key`);
  }
  return key;
}

function checkValue(value: string): string {
  if (!LABEL_VALUE.test(value)) {
    throw new SelectorSyntaxError(`${JSON.stringify(value)} is not a label value`);
  }
  return value;
}

/** Splits at commas outside parentheses. */
function splitTop(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim());
}

/**
 * Parses a label selector in the syntax of `kubectl -l`: requirements joined by commas, each
 * `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key` or `!key`.
 *
 * @param selector The selector.
 * @returns Its requirements (all must hold).
 * @throws {SelectorSyntaxError} When it does not parse.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchesLabels, parseLabelSelector } from "./select.ts";
 * const selector = parseLabelSelector("ktr.appuio.ch/inject=true,env in (prod,stage)");
 * assert.ok(matchesLabels(selector, { "ktr.appuio.ch/inject": "true", env: "prod" }));
 * ```
 */
export function parseLabelSelector(selector: string): Requirement[] {
  if (selector.trim() === "") throw new SelectorSyntaxError("the selector is empty");
  return splitTop(selector).map((part): Requirement => {
    if (part === "") throw new SelectorSyntaxError("an empty requirement (two commas in a row)");
    let m = /^!\s*(\S+)$/.exec(part);
    if (m) return { op: "!", key: checkKey(m[1]) };
    m = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (m) {
      const values = m[3].split(",").map((v) => checkValue(v.trim()));
      return { op: m[2] as "in" | "notin", key: checkKey(m[1]), values };
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (m) {
      return { op: m[2] === "!=" ? "!=" : "=", key: checkKey(m[1]), value: checkValue(m[3]) };
    }
    if (/^[^=!\s(),]+$/.test(part)) return { op: "exists", key: checkKey(part) };
    throw new SelectorSyntaxError(`cannot read ${JSON.stringify(part)}`);
  });
}

/**
 * Whether labels satisfy every requirement.
 *
 * @param requirements From {@linkcode parseLabelSelector}.
 * @param labels The object's labels.
 * @returns True on a match.
 */
export function matchesLabels(
  requirements: readonly Requirement[],
  labels: Readonly<Record<string, string>>,
): boolean {
  return requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    switch (r.op) {
      case "=":
        return has && value === r.value;
      case "!=":
        return !has || value !== r.value;
      case "in":
        return has && r.values.includes(value);
      case "notin":
        return !has || !r.values.includes(value);
      case "exists":
        return has;
      case "!":
        return !has;
    }
  });
}
