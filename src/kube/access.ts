/**
 * The Kubernetes permissions the refresher needs on its Secret (and for its Events), checked with
 * access reviews rather than by trying them, so a check writes nothing.
 *
 * @module
 */
import type { KubeClient } from "./client.ts";
import type { SecretTarget } from "./secret.ts";

/** The verbs the refresher uses on its Secret. */
export type SecretVerb = "get" | "patch" | "create" | "list" | "watch";

/** One permission and whether the identity in use has it. */
export interface SecretPermission {
  /** The verb. */
  readonly verb: SecretVerb | "create" | "patch";
  /** `secrets`, or `events` (group `events.k8s.io`). */
  readonly resource?: "secrets" | "events";
  /**
   * The Secret's name: every Secret verb is asked about the one Secret, since RBAC narrows them
   * all by `resourceNames` (apply's create check carries the name; list and watch carry it in
   * their `metadata.name` field selector). Absent for Events, whose names are generated.
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
 * `get`, `patch`, `create`, `list` and `watch` the target Secret, and `create` and `patch`
 * Events in its namespace.
 *
 * @param client The Kubernetes client.
 * @param target The Secret.
 * @param signal Aborts the reviews.
 * @returns One entry per verb: the five on the Secret, then the two on Events.
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
  const asks: { verb: SecretPermission["verb"]; resource: "secrets" | "events"; name?: string }[] =
    [
      ...(["get", "patch", "create", "list", "watch"] as const).map((verb) => ({
        verb,
        resource: "secrets" as const,
        name: target.name,
      })),
      { verb: "create", resource: "events" },
      { verb: "patch", resource: "events" },
    ];
  const permissions: SecretPermission[] = [];
  for (const ask of asks) {
    const status = await client.reviewAccess({
      namespace: target.namespace,
      verb: ask.verb,
      resource: ask.resource,
      ...(ask.resource === "events" ? { group: "events.k8s.io" } : {}),
      ...(ask.name === undefined ? {} : { name: ask.name }),
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
 * The RBAC rule that grants a missing permission, for messages.
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
 *   roleRuleFor({ verb: "patch", name: "tok" }),
 *   '{apiGroups: [""], resources: ["secrets"], resourceNames: ["tok"], verbs: ["patch"]}',
 * );
 * ```
 */
export function roleRuleFor(
  permission: {
    verb: string | readonly string[];
    name?: string;
    resource?: "secrets" | "events";
  },
): string {
  const verbs = `verbs: [${
    (typeof permission.verb === "string" ? [permission.verb] : permission.verb)
      .map((v) => JSON.stringify(v)).join(", ")
  }]`;
  if (permission.resource === "events") {
    return `{apiGroups: ["events.k8s.io"], resources: ["events"], ${verbs}}`;
  }
  const names = permission.name === undefined
    ? ""
    : ` resourceNames: [${JSON.stringify(permission.name)}],`;
  return `{apiGroups: [""], resources: ["secrets"],${names} ${verbs}}`;
}
