/**
 * A small Kubernetes REST client over `fetch`, for the few calls the tool makes: Secrets, and
 * access reviews for `--dry-run`.
 *
 * @module
 */

import { startDeadline } from "../deadline.ts";
import { CodedError, messageOf } from "../errors.ts";
import {
  classifySendFailure,
  describeSendFailure,
  proxyFor,
  readBoundedBody,
  type SendFailureKind,
} from "../http.ts";

/** Where the API server is and how to authenticate to it. */
export interface KubeConnection {
  /** Base URL of the API server, e.g. `https://10.0.0.1:443`. */
  readonly server: URL;
  /** Headers for one request (Authorization); called per request so rotated tokens are picked up. */
  authorize(): Promise<Record<string, string>>;
  /** The HTTP client carrying the cluster CA and any client certificate. */
  readonly httpClient?: Deno.HttpClient;
  /** The same TLS settings for long-lived watch streams, one connection each; default `httpClient`. */
  readonly streamHttpClient?: Deno.HttpClient;
  /** Says where the credentials came from, for logs and errors (never a secret). */
  readonly description: string;
  /** Releases the HTTP client. */
  close(): void;
}

/** Codes of {@linkcode KubeApiError}. */
export type KubeErrorCode =
  /** The API answered with a non-2xx status; see `status` and `reason`. */
  | "KUBE_HTTP"
  /** No answer within the timeout. */
  | "KUBE_TIMEOUT"
  /** The API server could not be reached (connection refused, TLS, DNS, ...). */
  | "KUBE_UNREACHABLE"
  /** Credentials could not be read (service account token file, kubeconfig). */
  | "KUBE_CREDENTIALS"
  /** The caller aborted (shutdown). */
  | "KUBE_ABORTED";

/** The parts of a Kubernetes `Status` object the tool uses. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; group?: string };
}

/** A failed Kubernetes API call. */
export class KubeApiError extends CodedError<KubeErrorCode> {
  override name = "KubeApiError";
  /** HTTP status, for `KUBE_HTTP`. */
  readonly status?: number;
  /** The Status object's `reason` (`NotFound`, `Conflict`, `Forbidden`, ...). */
  readonly reason?: string;
  /** The API verb that failed (`get`, `create`, `update`). */
  readonly verb?: string;
  /** For `KUBE_UNREACHABLE`: why no answer came (TLS, refused, DNS, timeout, reset). */
  readonly sendFailure?: SendFailureKind;
  /** For HTTP 429 (API Priority and Fairness): the server's `Retry-After`, in ms. */
  readonly retryAfterMs?: number;

  /**
   * @param message Human-readable description.
   * @param options Code and details.
   */
  constructor(
    message: string,
    options: {
      code: KubeErrorCode;
      status?: number;
      reason?: string;
      verb?: string;
      sendFailure?: SendFailureKind;
      retryAfterMs?: number;
      cause?: unknown;
    },
  ) {
    super(message, options.code, { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
    this.reason = options.reason;
    this.verb = options.verb;
    this.sendFailure = options.sendFailure;
  }
}

/** A namespaced object the tool reads and writes whole. Unknown fields are kept as they are. */
export interface StoredObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

/** A Kubernetes Secret, as far as the tool touches it. Unknown fields are kept as they are. */
export interface SecretObject extends StoredObject {
  type?: string;
  data?: Record<string, string>;
}

/** A `coordination.k8s.io/v1` Lease, as far as leader election touches it. */
export interface LeaseObject extends StoredObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
    [field: string]: unknown;
  };
}

/** What an access review asks about: one verb on one kind of resource in a namespace. */
export interface ResourceAttributes {
  /** Namespace of the resource. */
  namespace: string;
  /** The API verb: `get`, `update`, `create`, ... */
  verb: string;
  /** The resource, plural and lowercase: `secrets`. */
  resource: string;
  /** API group; `""` (the default) is the core group. */
  group?: string;
  /** One object by name; without it the question is about every object of the resource. */
  name?: string;
  /** A subresource, like `token` of `serviceaccounts`. */
  subresource?: string;
}

/** The answer of an access review. */
export interface AccessReviewStatus {
  /** Whether the action is allowed. */
  allowed: boolean;
  /** Whether an authorizer denied it explicitly (rather than none allowing it). */
  denied?: boolean;
  /** Why, as the authorizer put it (RBAC names the binding that allows). */
  reason?: string;
  /** Set when an authorizer failed to evaluate; `allowed` may then be wrong. */
  evaluationError?: string;
}

/** Options of {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** Per-request timeout in milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** The fetch to use; tests pass their own. */
  fetch?: typeof fetch;
  /**
   * The proxy variables fetch reads (`HTTPS_PROXY`, `NO_PROXY`, ...), so an unreachable proxy is
   * reported as the proxy's failure rather than the API server's.
   */
  proxyEnv?: Readonly<Record<string, string | undefined>>;
}

const MAX_RESPONSE_BYTES = 4 << 20;

/**
 * Calls the Kubernetes API for Secrets and access reviews.
 *
 * @example
 * ```ts ignore
 * import { KubeClient } from "./client.ts";
 * const client = new KubeClient(connection);
 * const secret = await client.getSecret("my-namespace", "my-token");
 * ```
 */
export class KubeClient {
  #connection: KubeConnection;
  #timeoutMs: number;
  #fetch: typeof fetch;
  #proxyEnv: Readonly<Record<string, string | undefined>>;

  /**
   * @param connection Server, credentials and TLS client.
   * @param options Timeout and test hooks.
   */
  constructor(connection: KubeConnection, options: KubeClientOptions = {}) {
    this.#connection = connection;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#fetch = options.fetch ?? fetch;
    this.#proxyEnv = options.proxyEnv ?? {};
  }

  /** Where the credentials came from (for logs). */
  get description(): string {
    return this.#connection.description;
  }

  /**
   * Reads a Secret.
   *
   * @param namespace Namespace of the Secret.
   * @param name Name of the Secret.
   * @param signal Aborts the request.
   * @returns The Secret, or `null` when it does not exist.
   * @throws {KubeApiError} On any other failure.
   */
  async getSecret(
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<SecretObject | null> {
    return await this.#getOrNull(secretPath(namespace, name), signal, SECRET);
  }

  /**
   * Creates a Secret.
   *
   * @param namespace Namespace to create it in.
   * @param secret The Secret object.
   * @param signal Aborts the request.
   * @param options `dryRun`: the API server checks the create (authorization, admission, the
   *   namespace) and stores nothing (`?dryRun=All`).
   * @returns The created Secret as the API returned it.
   * @throws {KubeApiError} On failure (409 when it already exists, 404 when the namespace does
   *   not).
   */
  createSecret(
    namespace: string,
    secret: SecretObject,
    signal?: AbortSignal,
    options: { dryRun?: boolean } = {},
  ): Promise<SecretObject> {
    const query = options.dryRun ? "?dryRun=All" : "";
    return this.#request(
      "create",
      "POST",
      `${secretPath(namespace)}${query}`,
      secret,
      signal,
      SECRET,
    );
  }

  /**
   * Whether a namespace exists. Needs `get` on that namespace, a cluster-scoped permission which
   * least-privilege identities lack.
   *
   * @param namespace The namespace.
   * @param signal Aborts the request.
   * @returns True when it exists, false on 404.
   * @throws {KubeApiError} On any other failure (403 without the permission).
   */
  async namespaceExists(namespace: string, signal?: AbortSignal): Promise<boolean> {
    const found = this.#request(
      "get",
      "GET",
      `/api/v1/namespaces/${encodeURIComponent(namespace)}`,
      undefined,
      signal,
      { check: isNamed, what: "a Namespace" },
    ).then(() => true);
    return await orWhenStatus(found, false, 404);
  }

  /**
   * Replaces a Secret; fails with 409 if `metadata.resourceVersion` is stale.
   *
   * @param namespace Namespace of the Secret.
   * @param secret The whole new Secret, with the resourceVersion it was read at.
   * @param signal Aborts the request.
   * @returns The updated Secret.
   * @throws {KubeApiError} On failure.
   */
  replaceSecret(
    namespace: string,
    secret: SecretObject,
    signal?: AbortSignal,
  ): Promise<SecretObject> {
    return this.#request(
      "update",
      "PUT",
      secretPath(namespace, secret.metadata.name),
      secret,
      signal,
      SECRET,
    );
  }

  /**
   * Asks the API server whether the identity in use may do something
   * (`SelfSubjectAccessReview`, which every authenticated identity may create). Nothing is
   * changed: the review is answered and not stored.
   *
   * @param attributes The verb, resource and namespace (and optionally the object name).
   * @param signal Aborts the request.
   * @returns The review's status: `allowed`, and a `reason` when the authorizer gave one.
   * @throws {KubeApiError} When the review cannot be made.
   *
   * @example
   * ```ts ignore
   * import { KubeClient } from "./client.ts";
   * const client = new KubeClient(connection);
   * const { allowed } = await client.reviewAccess({
   *   namespace: "my-namespace", verb: "update", resource: "secrets", name: "my-token",
   * });
   * ```
   */
  async reviewAccess(
    attributes: ResourceAttributes,
    signal?: AbortSignal,
  ): Promise<AccessReviewStatus> {
    const review = await this.#request(
      "create",
      "POST",
      "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
      {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        spec: { resourceAttributes: { group: "", ...attributes } },
      },
      signal,
      { check: isAccessReview, what: "a SelfSubjectAccessReview" },
    );
    const { allowed, denied, reason, evaluationError } = review.status;
    return {
      allowed: allowed === true,
      ...(typeof denied === "boolean" ? { denied } : {}),
      ...(typeof reason === "string" && reason !== "" ? { reason } : {}),
      ...(typeof evaluationError === "string" && evaluationError !== "" ? { evaluationError } : {}),
    };
  }

  /**
   * Writes a Secret with server-side apply: one `PATCH` that creates the Secret or updates it,
   * owning (as field manager `kube-token-refresher`, forcing conflicts) exactly the fields in
   * `secret` and leaving every other field with whoever set it. The apiserver authorizes it as
   * `patch`, and also as `create` (with the name) when the Secret does not exist yet.
   *
   * @param namespace Namespace of the Secret.
   * @param secret The fields the tool owns: apiVersion, kind, name, its key, label, annotations.
   * @param signal Aborts the request.
   * @param options `dryRun`: the API server authorizes, admits and answers the apply (a missing
   *   namespace is a 404) and stores nothing (`?dryRun=All`).
   * @returns The Secret as stored (or as it would be), and whether this request created it.
   * @throws {KubeApiError} On failure.
   */
  async applySecret(
    namespace: string,
    secret: SecretObject,
    signal?: AbortSignal,
    options: { dryRun?: boolean } = {},
  ): Promise<{ secret: SecretObject; created: boolean }> {
    const query = `?fieldManager=${FIELD_MANAGER}&force=true${options.dryRun ? "&dryRun=All" : ""}`;
    // JSON is YAML, so the body needs no YAML library.
    const { value, status } = await this.#send(
      "patch",
      "PATCH",
      secretPath(namespace, secret.metadata.name) + query,
      secret,
      signal,
      SECRET,
      "application/apply-patch+yaml",
    );
    return { secret: value, created: status === 201 };
  }

  /**
   * Lists the Secrets of one name: in one namespace, or across all when `namespace` is absent.
   * A name field selector lets RBAC authorize the list by `resourceNames`.
   *
   * @param name The Secret name.
   * @param namespace The namespace, or undefined for every namespace.
   * @param signal Aborts the request.
   * @returns The Secrets found and the list's resourceVersion, where a watch can start.
   * @throws {KubeApiError} On failure.
   */
  async listSecretsNamed(
    name: string,
    namespace: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ items: SecretObject[]; resourceVersion: string }> {
    const list = await this.#request(
      "list",
      "GET",
      `${secretCollection(namespace)}?fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}`,
      undefined,
      signal,
      { check: isSecretList, what: "a SecretList" },
    );
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? "" };
  }

  /**
   * Opens a watch on the Secrets of one name and returns the streaming response. The request's
   * timeout covers only the answer's headers: the stream itself lives as long as the server
   * keeps it (`timeoutSeconds`) or until `signal` aborts.
   *
   * @param name The Secret name.
   * @param namespace The namespace, or undefined for every namespace.
   * @param options Where to start, and the server-side timeout.
   * @param signal Closes the stream.
   * @returns The response, whose body is one JSON watch event per line.
   * @throws {KubeApiError} On a non-2xx answer (410 Gone when `resourceVersion` is too old).
   */
  watchSecretsNamed(
    name: string,
    namespace: string | undefined,
    options: { resourceVersion?: string; timeoutSeconds: number },
    signal: AbortSignal,
  ): Promise<Response> {
    const query = watchQuery(options, { fieldSelector: `metadata.name=${name}` });
    return this.#openStream(`${secretCollection(namespace)}?${query}`, signal);
  }

  /**
   * Lists every namespace with its labels and phase. Needs `list` on namespaces.
   *
   * @param signal Aborts the request.
   * @returns The namespaces and the list's resourceVersion, where a watch can start.
   * @throws {KubeApiError} On failure.
   */
  async listNamespaces(
    signal?: AbortSignal,
  ): Promise<{ items: NamespaceObject[]; resourceVersion: string }> {
    const list = await this.#request("list", "GET", "/api/v1/namespaces", undefined, signal, {
      check: isNamespaceList,
      what: "a NamespaceList",
    });
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? "" };
  }

  /**
   * Opens a watch on all namespaces and returns the streaming response (one JSON watch event per
   * line). Needs `watch` on namespaces.
   *
   * @param options Where to start, and the server-side timeout.
   * @param signal Closes the stream.
   * @returns The response.
   * @throws {KubeApiError} On a non-2xx answer (410 Gone when `resourceVersion` is too old).
   */
  watchNamespaces(
    options: { resourceVersion?: string; timeoutSeconds: number },
    signal: AbortSignal,
  ): Promise<Response> {
    return this.#openStream(`/api/v1/namespaces?${watchQuery(options)}`, signal);
  }

  /**
   * Deletes a Secret, only if it is still the one seen (`preconditions.uid`), so a Secret
   * recreated by someone else in between is never deleted.
   *
   * @param namespace Its namespace.
   * @param name Its name.
   * @param uid The uid it had when the decision was made.
   * @param signal Aborts the request.
   * @returns False when it was already gone (404) or replaced (409).
   * @throws {KubeApiError} On any other failure.
   */
  async deleteSecret(
    namespace: string,
    name: string,
    uid: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const deleted = this.#request(
      "delete",
      "DELETE",
      secretPath(namespace, name),
      {
        apiVersion: "v1",
        kind: "DeleteOptions",
        preconditions: { uid },
      },
      signal,
      { check: (v): v is unknown => v !== undefined, what: "an answer" },
    ).then(() => true);
    return await orWhenStatus(deleted, false, 404, 409);
  }

  /** Reads one object; null when it does not exist (404). */
  #getOrNull<T>(
    path: string,
    signal: AbortSignal | undefined,
    expect: { check: (value: unknown) => value is T; what: string },
  ): Promise<T | null> {
    return orWhenStatus(this.#request("get", "GET", path, undefined, signal, expect), null, 404);
  }

  /** The connection's credentials as headers; a failure to read them is KUBE_CREDENTIALS. */
  async #authorize(verb: string): Promise<Record<string, string>> {
    try {
      return await this.#connection.authorize();
    } catch (err) {
      throw new KubeApiError(
        `Kubernetes credentials could not be read (${this.#connection.description}): ${
          messageOf(err)
        }`,
        { code: "KUBE_CREDENTIALS", verb },
      );
    }
  }

  /**
   * The error for a request that got no answer: aborted by the caller, out of time (`request`
   * names it in the message, else the verb alone), or not sent at all.
   */
  #sendError(
    err: unknown,
    at: { url: URL; signal?: AbortSignal; expired: boolean; verb: string; request?: string },
  ): KubeApiError {
    const { url, verb } = at;
    if (at.signal?.aborted) {
      return new KubeApiError("Kubernetes API request aborted", { code: "KUBE_ABORTED", verb });
    }
    if (at.expired) {
      return new KubeApiError(
        `Kubernetes API at ${url.origin} did not answer within ${this.#timeoutMs} ms (${
          at.request ?? verb
        })`,
        { code: "KUBE_TIMEOUT", verb },
      );
    }
    // The cause names TLS, refused, DNS or reset; fetch's own message is only "fetch failed".
    return new KubeApiError(
      `Kubernetes API at ${url.origin} could not be reached: ${
        describeSendFailure(err, proxyFor(url, this.#proxyEnv))
      }`,
      { code: "KUBE_UNREACHABLE", verb, sendFailure: classifySendFailure(err).kind, cause: err },
    );
  }

  async #openStream(path: string, signal: AbortSignal): Promise<Response> {
    const headers = await this.#authorize("watch");
    const url = new URL(path, this.#connection.server);
    let response: Response;
    {
      using deadline = startDeadline(this.#timeoutMs, signal);
      try {
        response = await this.#fetch(url, {
          headers: { ...headers, accept: "application/json" },
          signal: AbortSignal.any([deadline.signal, signal]),
          client: this.#connection.streamHttpClient ?? this.#connection.httpClient,
        } as RequestInit);
      } catch (err) {
        throw this.#sendError(err, { url, signal, expired: deadline.expired, verb: "watch" });
      }
    }
    if (response.ok) return response;
    let status: KubeStatus | undefined;
    try {
      const body = await readBoundedBody(response, MAX_RESPONSE_BYTES, () => tooLarge(response));
      const parsed = JSON.parse(new TextDecoder().decode(body));
      status = isStatus(parsed) ? parsed : undefined;
    } catch {
      status = undefined;
    }
    throw new KubeApiError(
      `Kubernetes API answered watch ${path.split("?")[0]} with HTTP ${response.status}${
        status?.reason ? ` ${status.reason}` : ""
      }: ${status?.message ?? (response.statusText || "no Status object")}`,
      { code: "KUBE_HTTP", status: response.status, reason: status?.reason, verb: "watch" },
    );
  }

  /**
   * Creates an `events.k8s.io/v1` Event.
   *
   * @param namespace Namespace of the Event (that of the object it is about).
   * @param event The Event.
   * @param signal Aborts the request.
   * @throws {KubeApiError} On failure.
   */
  async createEvent(
    namespace: string,
    event: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.#request("create", "POST", eventPath(namespace), event, signal, EVENT);
  }

  /**
   * Updates an Event's `series` with a JSON merge patch (the other fields of an
   * `events.k8s.io/v1` Event are immutable).
   *
   * @param namespace Namespace of the Event.
   * @param name Name of the Event.
   * @param patch The merge patch.
   * @param signal Aborts the request.
   * @throws {KubeApiError} On failure (404 when the Event has expired).
   */
  async patchEvent(
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.#send(
      "patch",
      "PATCH",
      eventPath(namespace, name),
      patch,
      signal,
      EVENT,
      "application/merge-patch+json",
    );
  }

  /**
   * Mints a token for a service account with the TokenRequest API
   * (`POST .../serviceaccounts/NAME/token`); needs `create` on `serviceaccounts/token`.
   *
   * @param namespace Namespace of the service account.
   * @param name Name of the service account.
   * @param spec The audiences the token is for and its lifetime in seconds.
   * @param signal Aborts the request.
   * @returns The token and its expiry as the API server stated it. Never log the token.
   * @throws {KubeApiError} On failure (403 without the permission).
   */
  async requestServiceAccountToken(
    namespace: string,
    name: string,
    spec: { audiences: readonly string[]; expirationSeconds: number },
    signal?: AbortSignal,
  ): Promise<{ token: string; expirationTimestamp?: string }> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${
      encodeURIComponent(name)
    }/token`;
    const review = await this.#request(
      "create",
      "POST",
      path,
      { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec },
      signal,
      { check: isTokenRequest, what: "a TokenRequest with a token" },
    );
    const { token, expirationTimestamp } = review.status;
    return typeof expirationTimestamp === "string" ? { token, expirationTimestamp } : { token };
  }

  /**
   * Reads a `coordination.k8s.io/v1` Lease (leader election).
   *
   * @param namespace Namespace of the Lease.
   * @param name Name of the Lease.
   * @param signal Aborts the request.
   * @returns The Lease, or `null` when it does not exist.
   * @throws {KubeApiError} On any other failure.
   */
  async getLease(
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<LeaseObject | null> {
    return await this.#getOrNull(leasePath(namespace, name), signal, LEASE);
  }

  /**
   * Creates a Lease.
   *
   * @param namespace Namespace of the Lease.
   * @param lease The Lease.
   * @param signal Aborts the request.
   * @returns The Lease as stored.
   * @throws {KubeApiError} On failure (409 when it exists already).
   */
  createLease(namespace: string, lease: LeaseObject, signal?: AbortSignal): Promise<LeaseObject> {
    return this.#request("create", "POST", leasePath(namespace), lease, signal, LEASE);
  }

  /**
   * Replaces a Lease; fails with 409 when `metadata.resourceVersion` is not the stored one, so
   * two candidates never both win (optimistic concurrency, never a blind write).
   *
   * @param namespace Namespace of the Lease.
   * @param lease The whole Lease, with the resourceVersion it was read at.
   * @param signal Aborts the request.
   * @returns The Lease as stored.
   * @throws {KubeApiError} On failure.
   */
  replaceLease(namespace: string, lease: LeaseObject, signal?: AbortSignal): Promise<LeaseObject> {
    return this.#request(
      "update",
      "PUT",
      leasePath(namespace, lease.metadata.name),
      lease,
      signal,
      LEASE,
    );
  }

  async #request<T>(
    verb: string,
    method: string,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    expect: { check: (value: unknown) => value is T; what: string },
  ): Promise<T> {
    return (await this.#send(verb, method, path, body, signal, expect)).value;
  }

  async #send<T>(
    verb: string,
    method: string,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    expect: { check: (value: unknown) => value is T; what: string },
    contentType = "application/json",
  ): Promise<{ value: T; status: number }> {
    const headers = await this.#authorize(verb);
    using deadline = startDeadline(this.#timeoutMs, signal);
    const url = new URL(path, this.#connection.server);
    let text: string;
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers: {
          ...headers,
          accept: "application/json",
          ...(body === undefined ? {} : { "content-type": contentType }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: deadline.signal,
        client: this.#connection.httpClient,
      } as RequestInit);
      const answer = await readBoundedBody(response, MAX_RESPONSE_BYTES, () => tooLarge(response));
      text = new TextDecoder().decode(answer);
    } catch (err) {
      if (err instanceof KubeApiError) throw err;
      throw this.#sendError(err, {
        url,
        signal,
        expired: deadline.expired,
        verb,
        request: `${verb} ${path}`,
      });
    }
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const status = isStatus(parsed) ? parsed : undefined;
      // Only a Status object's message is quoted: any other body (a proxy's error page) could
      // echo the request, and the request of an update carries the token.
      const detail = status?.message ??
        `${response.statusText || "no Status object"} (${
          response.headers.get("content-type") ?? "no content type"
        } body not shown)`;
      throw new KubeApiError(
        `Kubernetes API answered ${verb} ${path} with HTTP ${response.status}${
          status?.reason ? ` ${status.reason}` : ""
        }: ${detail}`,
        {
          code: "KUBE_HTTP",
          status: response.status,
          reason: status?.reason,
          verb,
          retryAfterMs: retryAfterOf(response),
        },
      );
    }
    if (!expect.check(parsed)) {
      throw new KubeApiError(
        `Kubernetes API answered ${verb} ${path} with something that is not ${expect.what}`,
        { code: "KUBE_HTTP", status: response.status, verb },
      );
    }
    return { value: parsed, status: response.status };
  }
}

/** A Namespace, as far as the tool reads it. */
export interface NamespaceObject {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    [field: string]: unknown;
  };
  status?: { phase?: string };
}

/** A list answer (`items` and the list's resourceVersion) whose items each pass `isItem`. */
function isList<T>(
  value: unknown,
  isItem: (item: unknown) => boolean,
): value is { items: T[]; metadata?: { resourceVersion?: string } } {
  return isObject(value) && Array.isArray(value.items) && value.items.every(isItem);
}

function isNamespaceList(
  value: unknown,
): value is { items: NamespaceObject[]; metadata?: { resourceVersion?: string } } {
  return isList<NamespaceObject>(value, isNamed);
}

/** `Retry-After` of a 429 (seconds, as API Priority and Fairness sends it), in ms. */
function retryAfterOf(response: Response): number | undefined {
  if (response.status !== 429) return undefined;
  const seconds = Number(response.headers.get("retry-after"));
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, 300) * 1000 : undefined;
}

const SECRET = { check: isSecret, what: "a Secret" };
const LEASE = { check: isLease, what: "a Lease" };
const EVENT = { check: isObject, what: "an Event" };

/** The answer of `request`, or `fallback` when it failed with one of `statuses` (404: absent). */
async function orWhenStatus<T, F>(
  request: Promise<T>,
  fallback: F,
  ...statuses: number[]
): Promise<T | F> {
  try {
    return await request;
  } catch (err) {
    if (err instanceof KubeApiError && statuses.some((status) => err.status === status)) {
      return fallback;
    }
    throw err;
  }
}

/** The query of a watch: from `resourceVersion` when given, with bookmarks, ended by the server. */
function watchQuery(
  options: { resourceVersion?: string; timeoutSeconds: number },
  selector: { fieldSelector?: string } = {},
): URLSearchParams {
  const query = new URLSearchParams({
    watch: "1",
    ...selector,
    allowWatchBookmarks: "true",
    timeoutSeconds: String(options.timeoutSeconds),
  });
  if (options.resourceVersion) query.set("resourceVersion", options.resourceVersion);
  return query;
}

function tooLarge(response: Response): KubeApiError {
  return new KubeApiError(
    `Kubernetes API answered with more than the ${MAX_RESPONSE_BYTES} bytes accepted`,
    { code: "KUBE_HTTP", status: response.status },
  );
}

/** The field manager of every server-side apply the tool sends. */
export const FIELD_MANAGER = "kube-token-refresher";

function secretCollection(namespace: string | undefined): string {
  return namespace === undefined
    ? "/api/v1/secrets"
    : `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
}

/** The path of a namespaced collection (`group` is `api/v1` or `apis/GROUP/VERSION`), or of one item. */
function namespacedPath(group: string, resource: string, namespace: string, name?: string): string {
  const base = `/${group}/namespaces/${encodeURIComponent(namespace)}/${resource}`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

function eventPath(namespace: string, name?: string): string {
  return namespacedPath("apis/events.k8s.io/v1", "events", namespace, name);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isSecretList(
  value: unknown,
): value is { items: SecretObject[]; metadata?: { resourceVersion?: string } } {
  return isList<SecretObject>(value, isSecret);
}

function secretPath(namespace: string, name?: string): string {
  return namespacedPath("api/v1", "secrets", namespace, name);
}

function leasePath(namespace: string, name?: string): string {
  return namespacedPath("apis/coordination.k8s.io/v1", "leases", namespace, name);
}

function isLease(value: unknown): value is LeaseObject {
  return isNamed(value);
}

function isStatus(value: unknown): value is KubeStatus {
  return typeof value === "object" && value !== null && (value as KubeStatus).kind === "Status";
}

function isAccessReview(value: unknown): value is { status: Record<string, unknown> } {
  if (typeof value !== "object" || value === null) return false;
  const status = (value as { status?: unknown }).status;
  return typeof status === "object" && status !== null;
}

function isTokenRequest(
  value: unknown,
): value is { status: { token: string; expirationTimestamp?: unknown } } {
  if (typeof value !== "object" || value === null) return false;
  const status = (value as { status?: { token?: unknown } }).status;
  return typeof status === "object" && status !== null && typeof status.token === "string" &&
    status.token !== "";
}

function isNamed(value: unknown): value is { metadata: { name: string } } {
  if (typeof value !== "object" || value === null) return false;
  const meta = (value as { metadata?: { name?: unknown } }).metadata;
  return typeof meta === "object" && meta !== null && typeof meta.name === "string";
}

function isSecret(value: unknown): value is SecretObject {
  if (typeof value !== "object" || value === null) return false;
  const meta = (value as SecretObject).metadata;
  return typeof meta === "object" && meta !== null && typeof meta.name === "string";
}
