/**
 * "Did you mean" for misspelt keys, flags and `KTR_` variables.
 *
 * @module
 */
import { envName, KEYS } from "./schema.ts";

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
      const suggestion = closestMatch(name, known);
      return `Ignoring unknown environment variable ${name}: ${
        suggestion === undefined
          ? "no configuration key reads it (run with --help to list them)"
          : `did you mean ${suggestion}?`
      }`;
    });
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
