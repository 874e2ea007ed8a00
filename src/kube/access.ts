/**
 * The Kubernetes permissions the refresher needs on its Secret, checked with access reviews
 * rather than by trying them, so a check writes nothing.
 *
 * @module
 */
import type { KubeClient } from "./client.ts";
import type { SecretTarget } from "./secret.ts";

/** The verbs the refresher uses on Secrets. */
export type SecretVerb = "get" | "update" | "create";

/** One permission and whether the identity in use has it. */
export interface SecretPermission {
  /** The verb. */
  readonly verb: SecretVerb;
  /**
   * The Secret's name for `get` and `update`, which RBAC can restrict by `resourceNames`;
   * absent for `create`, which RBAC cannot (the name is not known before the object exists).
   */
  readonly name?: string;
  /** The namespace. */
  readonly namespace: string;
  /** Whether the review allowed it. */
  readonly allowed: boolean;
  /** The authorizer's reason, when it gave one. */
  readonly reason?: string;
}

/**
 * Asks the API server, one SelfSubjectAccessReview per verb, whether the identity in use may
 * `get` and `update` the target Secret and `create` Secrets in its namespace.
 *
 * @param client The Kubernetes client.
 * @param target The Secret.
 * @param signal Aborts the reviews.
 * @returns One entry per verb: get, update, create.
 * @throws {KubeApiError} When a review cannot be made (unreachable, unauthorized, ...).
 *
 * @example
 * ```ts ignore
 * import { reviewSecretAccess } from "./access.ts";
 * const permissions = await reviewSecretAccess(client, { namespace: "ns", name: "tok", key: "token" });
 * const missing = permissions.filter((p) => !p.allowed).map((p) => p.verb);
 * ```
 */
export async function reviewSecretAccess(
  client: KubeClient,
  target: SecretTarget,
  signal?: AbortSignal,
): Promise<SecretPermission[]> {
  const asks: { verb: SecretVerb; name?: string }[] = [
    { verb: "get", name: target.name },
    { verb: "update", name: target.name },
    { verb: "create" },
  ];
  const permissions: SecretPermission[] = [];
  for (const ask of asks) {
    const status = await client.reviewAccess({
      namespace: target.namespace,
      resource: "secrets",
      ...ask,
    }, signal);
    permissions.push({
      ...ask,
      namespace: target.namespace,
      allowed: status.allowed,
      ...(status.reason === undefined ? {} : { reason: status.reason }),
    });
  }
  return permissions;
}

/**
 * The RBAC rule that grants a missing permission, for messages: `create` cannot be limited to one
 * name, `get` and `update` can and should be.
 *
 * @param permission The verb, and the Secret's name for the verbs RBAC can narrow to one.
 * @returns A Role rule in YAML flow style.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { roleRuleFor } from "./access.ts";
 *
 * assert.equal(
 *   roleRuleFor({ verb: "update", name: "tok" }),
 *   '{apiGroups: [""], resources: ["secrets"], resourceNames: ["tok"], verbs: ["update"]}',
 * );
 * ```
 */
export function roleRuleFor(permission: { verb: string; name?: string }): string {
  const names = permission.name === undefined
    ? ""
    : ` resourceNames: [${JSON.stringify(permission.name)}],`;
  return `{apiGroups: [""], resources: ["secrets"],${names} verbs: ["${permission.verb}"]}`;
}
