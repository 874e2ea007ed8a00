/**
 * What a target puts into one Secret: the rendered data (templates, `.dockerconfigjson`), the
 * server-side apply body around it, the drift check against a Secret as seen, and the token read
 * back from a Secret at start.
 *
 * @module
 */
import type { Token } from "../token.ts";
import type { SecretObject } from "../kube/client.ts";
import { fromBase64, MANAGED_LABEL, toBase64, writtenAnnotations } from "../kube/state.ts";
import { DOCKERCONFIGJSON_KEY, type TargetSpec } from "./config.ts";
import { isBareToken, renderTemplate } from "./template.ts";

/** The annotation naming the target that created a Secret; only such Secrets are ever pruned. */
export const TARGET_ANNOTATION = "ktr.appuio.ch/target";

/**
 * The `.dockerconfigjson` of a registry credential: `auths.<registry>` with `username`,
 * `password` (the token) and `auth` (base64 of `username:password`), as the kubelet reads it.
 *
 * @param registry The registry host.
 * @param username The user name the registry wants with a token.
 * @param token The token.
 * @returns The JSON text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dockerConfigJson } from "./render.ts";
 * const parsed = JSON.parse(dockerConfigJson("r.example", "u", "t"));
 * assert.equal(atob(parsed.auths["r.example"].auth), "u:t");
 * ```
 */
export function dockerConfigJson(registry: string, username: string, token: string): string {
  return JSON.stringify({
    auths: { [registry]: { username, password: token, auth: toBase64(`${username}:${token}`) } },
  });
}

/**
 * The data of a target for a token, base64-encoded as Secret `data` wants. The same for every
 * namespace of the target, so it is rendered once per token and shared.
 *
 * @param target The target.
 * @param token The token.
 * @returns Key to base64 value.
 */
export function renderData(target: TargetSpec, token: Token): Record<string, string> {
  const data: Record<string, string> = {};
  for (const { key, template } of target.data) {
    data[key] = toBase64(renderTemplate(template, token));
  }
  if (target.dockerconfig !== undefined) {
    const { registry, username } = target.dockerconfig;
    data[DOCKERCONFIGJSON_KEY] = toBase64(dockerConfigJson(registry, username, token.value));
  }
  return data;
}

/** The state a write records besides the data. */
export interface TargetWriteState {
  /** The token written. */
  readonly token: Token;
  /** Hex SHA-256 of the token value. */
  readonly tokenSha256: string;
  /** The `refresh-now` value handled on this Secret, if any. */
  readonly refreshNowHandled?: string;
  /** Whether this target created the Secret (then `ktr.appuio.ch/target` is set). */
  readonly owned: boolean;
  /** The writer's identity (`refreshed-by`), with leader election. */
  readonly refreshedBy?: string;
}

/**
 * The server-side apply body for one Secret of a target: exactly the fields the tool owns. The
 * type is always sent: the apiserver refuses to change the type of an existing Secret, so a
 * Secret of another type is never turned into this one.
 *
 * @param target The target.
 * @param namespace The namespace.
 * @param data The rendered data ({@linkcode renderData}).
 * @param state Token, hash, handled refresh-now, ownership.
 * @returns The apply configuration.
 */
export function targetApplyBody(
  target: TargetSpec,
  namespace: string,
  data: Record<string, string>,
  state: TargetWriteState,
): SecretObject {
  const annotations: Record<string, string> = {
    ...target.annotations,
    ...writtenAnnotations(state),
  };
  if (state.owned) annotations[TARGET_ANNOTATION] = target.id;
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: target.name,
      namespace,
      labels: { ...target.labels, [MANAGED_LABEL]: "true" },
      annotations,
    },
    type: target.type,
    data,
  };
}

/**
 * Whether a Secret as seen differs from what the target would write now: a key of the target
 * missing or holding other bytes. Other keys, labels and annotations are not drift.
 *
 * @param secret The Secret, or null when it does not exist.
 * @param data The rendered data.
 * @returns True when a write is needed.
 */
export function dataDiffers(secret: SecretObject | null, data: Record<string, string>): boolean {
  if (secret === null) return true;
  for (const [key, value] of Object.entries(data)) {
    if (secret.data?.[key] !== value) return true;
  }
  return false;
}

/**
 * The token as a Secret holds it, when it can be read back: from a key whose template is exactly
 * `{{ .token }}`, else from the `.dockerconfigjson` password.
 *
 * @param target The target.
 * @param secret The Secret.
 * @returns The token value, or undefined.
 */
export function recoverToken(target: TargetSpec, secret: SecretObject): string | undefined {
  const bare = target.data.find((d) => isBareToken(d.template));
  if (bare !== undefined) {
    const encoded = secret.data?.[bare.key];
    return encoded === undefined ? undefined : fromBase64(encoded);
  }
  if (target.dockerconfig !== undefined) {
    const encoded = secret.data?.[DOCKERCONFIGJSON_KEY];
    const text = encoded === undefined ? undefined : fromBase64(encoded);
    if (text === undefined) return undefined;
    try {
      const password = JSON.parse(text)?.auths?.[target.dockerconfig.registry]?.password;
      return typeof password === "string" ? password : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
