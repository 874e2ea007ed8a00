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
      cause?: unknown;
    },
  ) {
    super(message, options.code, { cause: options.cause });
    this.status = options.status;
    this.reason = options.reason;
    this.verb = options.verb;
    this.sendFailure = options.sendFailure;
  }
}

/** A Kubernetes Secret, as far as the tool touches it. Unknown fields are kept as they are. */
export interface SecretObject {
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
  type?: string;
  data?: Record<string, string>;
  [field: string]: unknown;
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
    try {
      return await this.#request("get", "GET", secretPath(namespace, name), undefined, signal, {
        check: isSecret,
        what: "a Secret",
      });
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return null;
      throw err;
    }
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
    return this.#request("create", "POST", `${secretPath(namespace)}${query}`, secret, signal, {
      check: isSecret,
      what: "a Secret",
    });
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
    try {
      await this.#request(
        "get",
        "GET",
        `/api/v1/namespaces/${encodeURIComponent(namespace)}`,
        undefined,
        signal,
        { check: isNamed, what: "a Namespace" },
      );
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return false;
      throw err;
    }
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
      { check: isSecret, what: "a Secret" },
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

  async #request<T>(
    verb: string,
    method: string,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    expect: { check: (value: unknown) => value is T; what: string },
  ): Promise<T> {
    let headers: Record<string, string>;
    try {
      headers = await this.#connection.authorize();
    } catch (err) {
      throw new KubeApiError(
        `Kubernetes credentials could not be read (${this.#connection.description}): ${
          messageOf(err)
        }`,
        { code: "KUBE_CREDENTIALS", verb },
      );
    }
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
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: deadline.signal,
        client: this.#connection.httpClient,
      } as RequestInit);
      const answer = await readBoundedBody(response, MAX_RESPONSE_BYTES, () =>
        new KubeApiError(
          `Kubernetes API answered with more than the ${MAX_RESPONSE_BYTES} bytes accepted`,
          { code: "KUBE_HTTP", status: response.status },
        ));
      text = new TextDecoder().decode(answer);
    } catch (err) {
      if (err instanceof KubeApiError) throw err;
      if (signal?.aborted) {
        throw new KubeApiError("Kubernetes API request aborted", { code: "KUBE_ABORTED", verb });
      }
      if (deadline.expired) {
        throw new KubeApiError(
          `Kubernetes API at ${url.origin} did not answer within ${this.#timeoutMs} ms (${verb} ${path})`,
          { code: "KUBE_TIMEOUT", verb },
        );
      }
      // The cause names TLS, refused, DNS or reset; fetch's own message is only "fetch failed".
      const failure = classifySendFailure(err);
      throw new KubeApiError(
        `Kubernetes API at ${url.origin} could not be reached: ${
          describeSendFailure(err, proxyFor(url, this.#proxyEnv))
        }`,
        { code: "KUBE_UNREACHABLE", verb, sendFailure: failure.kind, cause: err },
      );
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
        { code: "KUBE_HTTP", status: response.status, reason: status?.reason, verb },
      );
    }
    if (!expect.check(parsed)) {
      throw new KubeApiError(
        `Kubernetes API answered ${verb} ${path} with something that is not ${expect.what}`,
        { code: "KUBE_HTTP", status: response.status, verb },
      );
    }
    return parsed;
  }
}

function secretPath(namespace: string, name?: string): string {
  const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
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
