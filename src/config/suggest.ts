/**
 * "Did you mean" for misspelt keys, flags and `KTR_` variables.
 *
 * @module
 */
import { envName, KEYS } from "./schema.ts";
import type { KeyDefinition } from "./types.ts";

/**
 * Warnings for `KTR_` environment variables that no key reads, each naming
 * the closest valid name: a misspelt variable must not go unnoticed, yet it
 * is no reason to refuse to start.
 *
 * @param env The process environment.
 * @returns One message per unknown variable, sorted; never a value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { envWarnings } from "./mod.ts";
 *
 * assert.deepEqual(envWarnings({ KTR_SECRETNAME: "x", HOME: "/root" }), [
 *   'Ignoring unknown environment variable KTR_SECRETNAME: did you mean KTR_SECRET_NAME?',
 * ]);
 * ```
 */
export function envWarnings(env: Readonly<Record<string, string | undefined>>): string[] {
  const known: readonly string[] = KEYS.map((d) => envName(d.key));
  return Object.keys(env)
    .filter((name) => name.startsWith("KTR_") && !known.includes(name))
    .sort()
    .map((name) => {
      // A probed misspelling names its key; anything else gets the closest name.
      const suggestion = MISSPELLINGS.get(name) ?? closestMatch(name, known);
      return `Ignoring unknown environment variable ${name}: ${
        suggestion === undefined
          ? "no configuration key reads it (run with --help to list them)"
          : `did you mean ${suggestion}?`
      }`;
    });
}

/**
 * The words the keys' joined segments are made of (`clientsecretfile` is client, secret, file),
 * so their split spellings can be probed. A segment that does not split into these stays whole.
 */
const KEY_WORDS = [
  "access",
  "account",
  "address",
  "alg",
  "assertion",
  "audience",
  "auth",
  "ca",
  "client",
  "dir",
  "file",
  "id",
  "key",
  "method",
  "private",
  "secret",
  "service",
  "token",
  "url",
];

/** Splits a joined segment into {@linkcode KEY_WORDS}, fewest words first; else keeps it whole. */
function splitWords(segment: string): string[] {
  const best: (string[] | undefined)[] = [[]];
  for (let end = 1; end <= segment.length; end++) {
    for (let start = 0; start < end; start++) {
      const before = best[start];
      const word = segment.slice(start, end);
      if (before === undefined || !KEY_WORDS.includes(word)) continue;
      if (best[end] === undefined || before.length + 1 < best[end]!.length) {
        best[end] = [...before, word];
      }
    }
  }
  return best[segment.length] ?? [segment];
}

/** Other forms of a key's last word that people write: plurals, and percent as a percentage. */
function lastWordForms(word: string): string[] {
  const forms = word.endsWith("s") ? [] : [`${word}s`];
  if (word === "percent") forms.push("percentage", "percentages", "pct");
  return forms;
}

/**
 * The likely misspellings of a key's `KTR_` name, built the same way for every key: the words
 * joined (`KTR_OIDCCLIENTID`) or split (`KTR_OIDC_CLIENT_ID`), the section left out
 * (`KTR_CLIENTID`, `KTR_CLIENT_ID`), and other forms of the last word: plurals
 * (`KTR_OIDC_RESOURCES`) and, for `renew.percent`, the percentage forms (`KTR_RENEW_PERCENTAGE`).
 * Switches get no plural.
 *
 * @param definition The key.
 * @returns The names, without the real one.
 */
function misspellingsOf(definition: KeyDefinition): string[] {
  const sections = definition.key.split(".");
  const words = (section: string) => section.split("-").flatMap(splitWords);
  const spellings: string[][] = [
    sections.flatMap((section) => section.split("-")),
    sections.flatMap(words),
    [sections.join("").replaceAll("-", "")],
  ];
  if (sections.length > 1) {
    const last = sections.at(-1)!;
    spellings.push([last.replaceAll("-", "")], words(last));
  }
  const name = (parts: readonly string[]) => `KTR_${parts.join("_").toUpperCase()}`;
  const names = new Set<string>();
  for (const parts of spellings) {
    names.add(name(parts));
    if (definition.kind === "boolean") continue;
    for (const form of lastWordForms(parts.at(-1)!)) names.add(name([...parts.slice(0, -1), form]));
  }
  names.delete(envName(definition.key));
  return [...names];
}

/** Each likely misspelling and the real name it stands for; the first key to claim one keeps it. */
function buildMisspellings(): ReadonlyMap<string, string> {
  const real = new Set<string>(KEYS.map((d) => envName(d.key)));
  const map = new Map<string, string>();
  for (const definition of KEYS as readonly KeyDefinition[]) {
    for (const name of misspellingsOf(definition)) {
      if (!real.has(name) && !map.has(name)) map.set(name, envName(definition.key));
    }
  }
  return map;
}

/** Built once from the key table, which never changes. */
const MISSPELLINGS = buildMisspellings();

/**
 * The `KTR_` names worth reading when the environment cannot be listed (a narrow `--allow-env`
 * grants names, not a listing): every key's real name and its likely misspellings (the words
 * joined or split, the section left out, plurals and percentage forms of the last word). A
 * misspelling outside these is found only where the whole environment may be read.
 *
 * @returns The names, real ones first, without duplicates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { probedEnvNames } from "./suggest.ts";
 *
 * const names = probedEnvNames();
 * assert.ok(names.includes("KTR_OIDC_CLIENT_ID"));
 * assert.ok(names.includes("KTR_RENEW_PERCENTAGE"));
 * ```
 */
export function probedEnvNames(): string[] {
  return [...KEYS.map((d) => envName(d.key)), ...MISSPELLINGS.keys()];
}

/** Optimal string alignment distance: edits, with a swap of neighbours counting as one. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate a misspelt name most likely meant, for "did you mean" hints:
 * the same name ignoring case and separators (`clientId`, `KTR_SECRETNAME`),
 * else one within a few typing errors, else the only one ending in the same
 * word (`tokenurl` for `oidc.tokenurl`).
 *
 * @param name The unknown name.
 * @param candidates The valid names.
 * @returns The best candidate, or `undefined` when none is close.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closestMatch } from "./mod.ts";
 *
 * assert.equal(closestMatch("oidc.clientId", ["oidc.clientid", "oidc.tokenurl"]), "oidc.clientid");
 * assert.equal(closestMatch("colour", ["oidc.clientid"]), undefined);
 * ```
 */
export function closestMatch(name: string, candidates: readonly string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replaceAll(/[^a-z0-9]/g, "");
  const same = candidates.find((c) => squash(c) === squash(name));
  if (same !== undefined) return same;

  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 4))) return best;

  const lastWord = (s: string) => squash(s.split(/[._-]/).filter(Boolean).at(-1) ?? "");
  const sameEnding = candidates.filter((c) => lastWord(c) === lastWord(name));
  return sameEnding.length === 1 ? sameEnding[0] : undefined;
}
