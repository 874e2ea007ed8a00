/**
 * Writing the token into the Secret with server-side apply: one request creates or updates it,
 * and the tool owns only its key, its label and its annotations.
 *
 * @module
 */
import type { Token } from "../token.ts";
import { roleRuleFor } from "./access.ts";
import { KubeApiError, type KubeClient, type SecretObject } from "./client.ts";
import { applyConfiguration, sha256Hex } from "./state.ts";

export { MANAGED_LABEL, toBase64 } from "./state.ts";

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
  /**
   * `created` when the Secret did not exist, `updated` otherwise; `adopted` when nothing was
   * written because the token already in the Secret was taken over at start.
   */
  readonly action: "created" | "updated" | "adopted";
  /** API requests the write took (1: apply creates or updates in one; 0 when adopted). */
  readonly requests: number;
  /** The Secret's resourceVersion after the write. */
  readonly resourceVersion?: string;
}

/** Options of {@linkcode SecretWriter}. */
export interface SecretWriterOptions {
  /** The writer's identity for the `refreshed-by` annotation (leader election). */
  refreshedBy?: string;
}

/**
 * Writes tokens into one Secret with server-side apply, and remembers what it wrote: the token's
 * hash (so the watch can tell the tool's own writes from someone else's) and the `refresh-now`
 * value handled (carried on every write, since leaving an owned annotation out of an apply
 * removes it).
 *
 * @example
 * ```ts ignore
 * import { SecretWriter } from "./secret.ts";
 * const writer = new SecretWriter(client, { namespace: "ns", name: "my-token", key: "token" });
 * await writer.write(token);
 * ```
 */
export class SecretWriter {
  #client: KubeClient;
  #target: SecretTarget;
  #refreshedBy: string | undefined;
  #refreshNowHandled: string | undefined;
  #writtenSha256: string | undefined;
  #inFlightSha256: string | undefined;
  #earlierSha256: string[] = [];
  #writes = 0;

  /**
   * @param client The Kubernetes client.
   * @param target Namespace, name and key.
   * @param options The writer's identity.
   */
  constructor(client: KubeClient, target: SecretTarget, options: SecretWriterOptions = {}) {
    this.#client = client;
    this.#target = target;
    this.#refreshedBy = options.refreshedBy;
  }

  /** Which Secret and key. */
  get target(): SecretTarget {
    return this.#target;
  }

  /** Hex SHA-256 of the token last written successfully, if any. */
  get writtenSha256(): string | undefined {
    return this.#writtenSha256;
  }

  /** The identity written to `ktr.appuio.ch/refreshed-by`, if any. */
  get refreshedBy(): string | undefined {
    return this.#refreshedBy;
  }

  /**
   * Sets the identity the next writes name in `ktr.appuio.ch/refreshed-by` (a new leader's).
   *
   * @param identity The writer's identity, or undefined to leave the annotation out.
   */
  set refreshedBy(identity: string | undefined) {
    this.#refreshedBy = identity;
  }

  /** The `refresh-now` value recorded as handled with every write. */
  get refreshNowHandled(): string | undefined {
    return this.#refreshNowHandled;
  }

  /**
   * Sets the `refresh-now` value the next writes record as handled.
   *
   * @param value The annotation's value.
   */
  set refreshNowHandled(value: string | undefined) {
    this.#refreshNowHandled = value;
  }

  /**
   * Whether a token with this hash is the tool's own: the one written last, or the one being
   * written now (its watch event may arrive before the write's answer).
   *
   * @param sha256 Hex SHA-256 of a token value.
   * @returns True for the tool's own token.
   */
  isOwn(sha256: string | undefined): boolean {
    return sha256 !== undefined &&
      (sha256 === this.#writtenSha256 || sha256 === this.#inFlightSha256);
  }

  /**
   * Whether a token with this hash is one the tool wrote before its latest: a watch that lags
   * behind the writes shows those, and they are no one else's change.
   *
   * @param sha256 Hex SHA-256 of a token value.
   * @returns True for one of the last few tokens written before the current one.
   */
  wroteEarlier(sha256: string | undefined): boolean {
    return sha256 !== undefined && this.#earlierSha256.includes(sha256);
  }

  /** Successful writes so far. */
  get writes(): number {
    return this.#writes;
  }

  /**
   * Records a token found in the Secret at start as the tool's own (adopted, not written).
   *
   * @param sha256 Its hex SHA-256.
   */
  adopt(sha256: string): void {
    this.#writtenSha256 = sha256;
  }

  /**
   * Puts the token under the key, with the managed label and the state annotations, creating the
   * Secret if needed. Other keys, labels and annotations stay as they are.
   *
   * @param token The token.
   * @param signal Aborts the write.
   * @returns What was done (one request).
   * @throws {KubeApiError} On failure; a 403 carries an RBAC hint naming the missing verb.
   */
  async write(token: Token, signal?: AbortSignal): Promise<WriteResult> {
    const tokenSha256 = await sha256Hex(token.value);
    const body = applyConfiguration(this.#target, {
      token,
      tokenSha256,
      ...(this.#refreshNowHandled === undefined
        ? {}
        : { refreshNowHandled: this.#refreshNowHandled }),
      ...(this.#refreshedBy === undefined ? {} : { refreshedBy: this.#refreshedBy }),
    });
    this.#inFlightSha256 = tokenSha256;
    let applied: { secret: SecretObject; created: boolean };
    try {
      applied = await this.#client.applySecret(this.#target.namespace, body, signal);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 403) throw this.#forbidden(err);
      throw err;
    } finally {
      this.#inFlightSha256 = undefined;
    }
    if (this.#writtenSha256 !== undefined && this.#writtenSha256 !== tokenSha256) {
      this.#earlierSha256 = [this.#writtenSha256, ...this.#earlierSha256].slice(0, 4);
    }
    this.#writtenSha256 = tokenSha256;
    this.#writes++;
    return {
      action: applied.created ? "created" : "updated",
      requests: 1,
      resourceVersion: applied.secret.metadata.resourceVersion,
    };
  }

  #forbidden(err: KubeApiError): KubeApiError {
    const { namespace, name } = this.#target;
    // Apply is authorized as patch and, when it creates the Secret, also as create (with the
    // name); the Status does not say which check failed, so the hint names both.
    return new KubeApiError(
      `${err.message}. The identity in use (${this.#client.description}) lacks the "patch" verb (or, while the Secret does not exist, "create") on secret "${name}" in namespace "${namespace}": grant them in a Role bound to that identity with the rule ${
        roleRuleFor({ verb: ["get", "patch", "create", "list", "watch"], name })
      }`,
      { code: err.code, status: err.status, reason: err.reason, verb: "patch", cause: err },
    );
  }
}
