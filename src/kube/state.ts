/**
 * The tool's state, kept on the Secret itself as annotations, so a restarted refresher (or a new
 * leader) can tell whether the token in the Secret is still its own and still fresh, and adopt it
 * instead of asking the provider for another one.
 *
 * Everything here is pure: the caller hashes and reads, these functions decide.
 *
 * @module
 */
import type { Token } from "../token.ts";
import type { SecretObject } from "./client.ts";
import { toBase64 } from "../base64.ts";
import { isoTime } from "../time.ts";

/** The label the tool puts on every Secret it writes. */
export const MANAGED_LABEL = "ktr.appuio.ch/managed";

/** The annotation names of the contract (they never change once shipped). */
export const ANNOTATIONS = {
  /** RFC 3339 UTC: when the token in the Secret was obtained. */
  refreshedAt: "ktr.appuio.ch/refreshed-at",
  /** RFC 3339 UTC: when that token expires; absent when its lifetime is unknown. */
  expiresAt: "ktr.appuio.ch/expires-at",
  /** Hex SHA-256 of the token value under the tool's key. */
  tokenSha256: "ktr.appuio.ch/token-sha256",
  /** Who wrote it (the leader's identity, with leader election). */
  refreshedBy: "ktr.appuio.ch/refreshed-by",
  /** Set by operators: any new value asks for a refresh at once. */
  refreshNow: "ktr.appuio.ch/refresh-now",
  /** The last `refresh-now` value the tool acted on. */
  refreshNowHandled: "ktr.appuio.ch/refresh-now-handled",
} as const;

/** What one write puts on the Secret besides its key. */
export interface WrittenState {
  /** The token written. */
  readonly token: Token;
  /** Hex SHA-256 of `token.value` ({@linkcode sha256Hex}). */
  readonly tokenSha256: string;
  /** The `refresh-now` value handled, carried on every write so it is never lost. */
  readonly refreshNowHandled?: string;
  /** The writer's identity, for `refreshed-by` (leader election); absent without one. */
  readonly refreshedBy?: string;
}

/**
 * Hex SHA-256 of a token's UTF-8 bytes: what `ktr.appuio.ch/token-sha256` holds.
 *
 * @param value The token.
 * @returns 64 lowercase hex digits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Hex } from "./state.ts";
 * assert.equal((await sha256Hex("")).slice(0, 8), "e3b0c442");
 * ```
 */
export async function sha256Hex(value: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Secret `data` is base64 of UTF-8 bytes: the one encoder the tool has.
export { toBase64 };

/**
 * Decodes Secret `data` (base64 of UTF-8 bytes).
 *
 * @param encoded The base64 text.
 * @returns The text, or undefined when it is not valid base64.
 *
 * @example
 * ```ts
 * import { fromBase64 } from "./state.ts";
 * console.assert(fromBase64("dG9rZW4=") === "token");
 * ```
 */
export function fromBase64(encoded: string): string | undefined {
  try {
    return new TextDecoder().decode(Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

/**
 * The annotations one write sets: when and what was written, the expiry when known, the handled
 * `refresh-now` and the writer. Shared by the single Secret and the targets.
 *
 * @param state The token and what to annotate.
 * @returns The annotations, keyed by their full names.
 *
 * @example
 * ```ts
 * import { writtenAnnotations } from "./state.ts";
 * const notes = writtenAnnotations({
 *   token: { value: "t", obtainedAt: 0, lifetimeSource: "unknown" },
 *   tokenSha256: "e3b0",
 * });
 * console.assert(notes["ktr.appuio.ch/refreshed-at"] === "1970-01-01T00:00:00.000Z");
 * ```
 */
export function writtenAnnotations(state: WrittenState): Record<string, string> {
  const annotations: Record<string, string> = {
    [ANNOTATIONS.refreshedAt]: isoTime(state.token.obtainedAt),
    [ANNOTATIONS.tokenSha256]: state.tokenSha256,
  };
  if (state.token.expiresAt !== undefined) {
    annotations[ANNOTATIONS.expiresAt] = isoTime(state.token.expiresAt);
  }
  if (state.refreshNowHandled !== undefined) {
    annotations[ANNOTATIONS.refreshNowHandled] = state.refreshNowHandled;
  }
  if (state.refreshedBy !== undefined) annotations[ANNOTATIONS.refreshedBy] = state.refreshedBy;
  return annotations;
}

/**
 * The server-side apply body of one write: exactly the fields the tool owns. A field it owned
 * before and leaves out now (an unknown expiry) is removed by the apiserver; every other field
 * stays with its own manager. No `type`: a new Secret defaults to `Opaque`, and an existing one
 * keeps its own.
 *
 * @param target Namespace, name and key.
 * @param state The token and what to annotate.
 * @returns The apply configuration.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyConfiguration } from "./state.ts";
 * const body = applyConfiguration({ namespace: "ns", name: "tok", key: "token" }, {
 *   token: { value: "t", obtainedAt: 0, lifetimeSource: "unknown" },
 *   tokenSha256: "e3b0",
 * });
 * assert.equal(body.data?.token, "dA==");
 * assert.equal(body.metadata.annotations?.["ktr.appuio.ch/expires-at"], undefined);
 * ```
 */
export function applyConfiguration(
  target: { namespace: string; name: string; key: string },
  state: WrittenState,
): SecretObject {
  const annotations = writtenAnnotations(state);
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: target.name,
      namespace: target.namespace,
      labels: { [MANAGED_LABEL]: "true" },
      annotations,
    },
    data: { [target.key]: toBase64(state.token.value) },
  };
}

/** The knobs of the start-up decision. */
export interface AdoptionOptions {
  /** The key holding the token. */
  readonly key: string;
  /** Now, ms since the epoch. */
  readonly now: number;
  /** The `interval` key in ms. */
  readonly intervalMs: number;
  /** The `renew.percent` key as a fraction. */
  readonly renewFraction: number;
}

/** The start-up decision. */
export type Adoption =
  | {
    readonly kind: "adopt";
    /** The token in the Secret, with its lifetime from the annotations. */
    readonly token: Token;
    /** When to refresh it: the earlier of its renewal point and `refreshed-at + interval`. */
    readonly renewAt: number;
    /** The handled `refresh-now` value found, to be carried on later writes. */
    readonly refreshNowHandled?: string;
  }
  | {
    readonly kind: "refresh";
    /** Why the token in the Secret is not adopted, for the log. */
    readonly reason: string;
    /**
     * The `refresh-now` value to record as handled with the next write: one set while the tool
     * was down (it is handled by this very refresh), else the one handled before.
     */
    readonly refreshNowHandled?: string;
  };

function parseTime(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  // RFC 3339 with a zone only: Date.parse would read a bare date as local time.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    return undefined;
  }
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Decides at start whether the token already in the Secret can be adopted. It can when the
 * annotations are there and parse, the key's value hashes to `token-sha256`, no `refresh-now`
 * is waiting, and both the renewal point and `refreshed-at + interval` are still ahead.
 *
 * @param secret The Secret as read, or null when it does not exist.
 * @param valueSha256 Hex SHA-256 of the key's decoded value, or undefined without one.
 * @param options Key, now, interval and renewal fraction.
 * @returns Adopt (with the token and when to renew it) or refresh (with the reason).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decideAdoption } from "./state.ts";
 * const decision = decideAdoption(null, undefined, {
 *   key: "token", now: 0, intervalMs: 500_000, renewFraction: 2 / 3,
 * });
 * assert.equal(decision.kind, "refresh");
 * ```
 */
export function decideAdoption(
  secret: SecretObject | null,
  valueSha256: string | undefined,
  options: AdoptionOptions,
): Adoption {
  if (secret === null) return { kind: "refresh", reason: "the Secret does not exist" };
  const annotations = secret.metadata.annotations ?? {};
  const requested = annotations[ANNOTATIONS.refreshNow];
  const handled = annotations[ANNOTATIONS.refreshNowHandled];
  const carried = handled === undefined ? {} : { refreshNowHandled: handled };
  if (requested !== undefined && requested !== handled) {
    return {
      kind: "refresh",
      reason: "a refresh-now request is waiting",
      refreshNowHandled: requested,
    };
  }
  const encoded = secret.data?.[options.key];
  if (encoded === undefined) {
    return { kind: "refresh", reason: `the key "${options.key}" is missing`, ...carried };
  }
  const recordedHash = annotations[ANNOTATIONS.tokenSha256];
  const obtainedAt = parseTime(annotations[ANNOTATIONS.refreshedAt]);
  if (recordedHash === undefined || annotations[ANNOTATIONS.refreshedAt] === undefined) {
    return { kind: "refresh", reason: "the Secret carries no refresh annotations", ...carried };
  }
  if (obtainedAt === undefined) {
    return { kind: "refresh", reason: "refreshed-at does not parse", ...carried };
  }
  const expiresText = annotations[ANNOTATIONS.expiresAt];
  const expiresAt = parseTime(expiresText);
  if (expiresText !== undefined && (expiresAt === undefined || expiresAt <= obtainedAt)) {
    return { kind: "refresh", reason: "expires-at does not parse", ...carried };
  }
  if (valueSha256 === undefined || valueSha256 !== recordedHash.toLowerCase()) {
    return {
      kind: "refresh",
      reason: "the key no longer holds the token the annotations describe",
      ...carried,
    };
  }
  const value = fromBase64(encoded);
  if (value === undefined) {
    return { kind: "refresh", reason: "the key is not valid base64", ...carried };
  }
  const lifetimeMs = expiresAt === undefined ? undefined : expiresAt - obtainedAt;
  const renewalPoint = lifetimeMs === undefined
    ? Infinity
    : obtainedAt + lifetimeMs * options.renewFraction;
  const renewAt = Math.min(renewalPoint, obtainedAt + options.intervalMs);
  if (renewAt <= options.now) {
    return { kind: "refresh", reason: "the token is past its renewal point", ...carried };
  }
  const token: Token = {
    value,
    obtainedAt,
    ...(lifetimeMs === undefined ? {} : { lifetimeSeconds: lifetimeMs / 1000, expiresAt }),
    // The annotation does not say whether the lifetime came from expires_in or the JWT.
    lifetimeSource: lifetimeMs === undefined ? "unknown" : "expires_in",
  };
  return { kind: "adopt", token, renewAt, ...carried };
}

/** What a watched change of the Secret means for the tool. */
export type Drift =
  /** Nothing the tool owns changed (other keys, labels or annotations are not drift). */
  | { readonly kind: "none" }
  /** The Secret was deleted. */
  | { readonly kind: "deleted" }
  /** The key no longer holds the token the tool wrote. */
  | { readonly kind: "overwritten"; readonly by?: string };

/**
 * Compares a watched Secret with the token the tool wrote last, by hash, in memory.
 *
 * @param secret The Secret from the watch, or null when deleted.
 * @param key The tool's key.
 * @param valueSha256 Hex SHA-256 of the key's decoded value, or undefined without one.
 * @param writtenSha256 Hex SHA-256 of the token the tool wrote.
 * @returns Whether and how the tool's key drifted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { detectDrift } from "./state.ts";
 * assert.equal(detectDrift(null, "token", undefined, "ab").kind, "deleted");
 * ```
 */
export function detectDrift(
  secret: SecretObject | null,
  key: string,
  valueSha256: string | undefined,
  writtenSha256: string,
): Drift {
  if (secret === null) return { kind: "deleted" };
  if (valueSha256 === writtenSha256) return { kind: "none" };
  const by = lastManagerOf(secret, key);
  return { kind: "overwritten", ...(by === undefined ? {} : { by }) };
}

/**
 * The field manager that last touched the tool's key, from `managedFields`, for the
 * "who changed it" of a contested Secret. Undefined when not visible.
 *
 * @param secret The Secret.
 * @param key The tool's key.
 * @returns The manager's name, e.g. `kubectl-patch`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lastManagerOf } from "./state.ts";
 * const secret = {
 *   metadata: {
 *     name: "tok",
 *     managedFields: [{ manager: "kubectl-patch", time: "2026-01-01T00:00:00Z",
 *       fieldsV1: { "f:data": { "f:token": {} } } }],
 *   },
 * };
 * assert.equal(lastManagerOf(secret, "token"), "kubectl-patch");
 * ```
 */
export function lastManagerOf(secret: SecretObject, key: string): string | undefined {
  const entries = secret.metadata.managedFields;
  if (!Array.isArray(entries)) return undefined;
  let found: { manager: string; time: string } | undefined;
  for (const entry of entries) {
    if (typeof entry !== "object" || entry === null) continue;
    const { manager, time, fieldsV1 } = entry as {
      manager?: unknown;
      time?: unknown;
      fieldsV1?: { "f:data"?: Record<string, unknown> };
    };
    if (typeof manager !== "string" || manager === "kube-token-refresher") continue;
    if (fieldsV1?.["f:data"]?.[`f:${key}`] === undefined) continue;
    const at = typeof time === "string" ? time : "";
    if (found === undefined || at >= found.time) found = { manager, time: at };
  }
  return found?.manager;
}
