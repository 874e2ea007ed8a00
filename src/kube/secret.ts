/**
 * Writing the token into the Secret: create it, or update one key of it, keeping everything else.
 *
 * @module
 */
import { toBase64 } from "../base64.ts";
import { roleRuleFor } from "./access.ts";
import { KubeApiError, type KubeClient, type SecretObject } from "./client.ts";

/** The label the tool puts on every Secret it writes. */
export const MANAGED_LABEL = "ktr.appuio.ch/managed";

/** Which Secret, and which key in it, receives the token. */
export interface SecretTarget {
  /** Namespace of the Secret. */
  readonly namespace: string;
  /** Name of the Secret. */
  readonly name: string;
  /** Key in the Secret's data. */
  readonly key: string;
}

/** What one write did. */
export interface WriteResult {
  /** `created` when the Secret did not exist, `updated` otherwise. */
  readonly action: "created" | "updated";
  /** API requests the write took (1 in steady state). */
  readonly requests: number;
  /** The Secret's resourceVersion after the write. */
  readonly resourceVersion?: string;
}

/** Options of {@linkcode SecretWriter}. */
export interface SecretWriterOptions {
  /** How many 409 Conflicts in a row one write absorbs before giving up. Default 5. */
  maxConflicts?: number;
}

/**
 * Writes tokens into one Secret. It remembers the Secret as last written, so a steady-state
 * refresh is a single update; a stale copy shows as 409 Conflict and is read again, a Secret
 * deleted by someone shows as 404 and is created again.
 *
 * @example
 * ```ts ignore
 * import { SecretWriter } from "./secret.ts";
 * const writer = new SecretWriter(client, { namespace: "ns", name: "my-token", key: "token" });
 * await writer.write(token.value);
 * ```
 */
export class SecretWriter {
  #client: KubeClient;
  #target: SecretTarget;
  #maxConflicts: number;
  #last: SecretObject | undefined;

  /**
   * @param client The Kubernetes client.
   * @param target Namespace, name and key.
   * @param options Limits.
   */
  constructor(client: KubeClient, target: SecretTarget, options: SecretWriterOptions = {}) {
    this.#client = client;
    this.#target = target;
    this.#maxConflicts = options.maxConflicts ?? 5;
  }

  /**
   * Puts the token under the key and the managed label on the Secret, creating it if needed.
   *
   * @param token The token.
   * @param signal Aborts the write.
   * @returns What was done and how many requests it took.
   * @throws {KubeApiError} On failure; a 403 carries an RBAC hint naming the missing verb.
   */
  async write(token: string, signal?: AbortSignal): Promise<WriteResult> {
    const { namespace, name } = this.#target;
    let requests = 0;
    let conflicts = 0;
    // undefined: unknown, read it; null: known not to exist.
    let current: SecretObject | null | undefined = this.#last;
    while (true) {
      try {
        if (current === undefined) {
          requests++;
          current = await this.#client.getSecret(namespace, name, signal);
        }
        if (current === null) {
          requests++;
          const created = await this.#client.createSecret(namespace, this.#fresh(token), signal);
          this.#last = created;
          return { action: "created", requests, resourceVersion: created.metadata.resourceVersion };
        }
        requests++;
        const updated = await this.#client.replaceSecret(
          namespace,
          this.#withToken(current, token),
          signal,
        );
        this.#last = updated;
        return { action: "updated", requests, resourceVersion: updated.metadata.resourceVersion };
      } catch (err) {
        if (!(err instanceof KubeApiError) || err.code !== "KUBE_HTTP") throw err;
        if (err.status === 409 && conflicts < this.#maxConflicts) {
          // Someone else wrote the Secret (or created it) since we read it: read again.
          conflicts++;
          this.#last = undefined;
          current = undefined;
          continue;
        }
        if (err.status === 404 && err.verb === "update") {
          // Deleted behind our back: create it again.
          this.#last = undefined;
          current = null;
          continue;
        }
        this.#last = undefined;
        if (err.status === 403) throw this.#forbidden(err);
        throw err;
      }
    }
  }

  #fresh(token: string): SecretObject {
    const { namespace, name, key } = this.#target;
    return {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace, labels: { [MANAGED_LABEL]: "true" } },
      type: "Opaque",
      data: { [key]: toBase64(token) },
    };
  }

  #withToken(current: SecretObject, token: string): SecretObject {
    return {
      ...current,
      metadata: {
        ...current.metadata,
        labels: { ...current.metadata.labels, [MANAGED_LABEL]: "true" },
      },
      data: { ...current.data, [this.#target.key]: toBase64(token) },
    };
  }

  #forbidden(err: KubeApiError): KubeApiError {
    const { namespace, name } = this.#target;
    const verb = err.verb ?? "update";
    const scope = verb === "create"
      ? `secrets in namespace "${namespace}" (create cannot be limited by resourceNames)`
      : `secret "${name}" in namespace "${namespace}"`;
    return new KubeApiError(
      `${err.message}. The identity in use (${this.#client.description}) lacks the "${verb}" verb on ${scope}: grant it in a Role bound to that identity with the rule ${
        roleRuleFor({ verb, ...(verb === "create" ? {} : { name }) })
      }`,
      { code: err.code, status: err.status, reason: err.reason, verb, cause: err },
    );
  }
}
