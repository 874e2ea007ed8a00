/**
 * Workload identity federation: the pod's Kubernetes service-account token stands in for a client
 * secret. It comes from a projected token file (re-read before every request, since the kubelet
 * rotates it) or is minted with the TokenRequest API for the tool's own service account (a fresh
 * one per request, for providers that refuse a reused `jti`).
 *
 * The one rule this module enforces above all: a token whose audience is the API server's own is
 * never sent. The provider would receive a credential it could replay against the cluster as the
 * service account. The API server's audiences and the tool's own service account are read from
 * the `aud`, `iss` and `sub` of the mounted service-account token, with no network call.
 *
 * @module
 */
import type * as oauth from "oauth4webapi";
import {
  type Config,
  ConfigError,
  DEFAULT_FEDERATION_EXPIRATION,
  DEFAULT_SUBJECT_TOKEN_TYPE,
  type GrantType,
} from "../config/mod.ts";
import { describeReadError } from "../errors.ts";
import { KubeApiError, type KubeClient } from "../kube/client.ts";
import { TokenError } from "./error.ts";
import { isoTime } from "../time.ts";

/** The federation section of the configuration. */
export type FederationConfig = NonNullable<Config["oidc"]["federation"]>;

/** RFC 7523 §2.2: the client assertion type of a JWT used for client authentication. */
export const JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** The claims of a service-account token that matter here, read without verifying it. */
export interface ServiceAccountClaims {
  /** `iss`: the cluster's service-account issuer. */
  readonly issuer?: string;
  /** `sub`: `system:serviceaccount:<namespace>:<name>`. */
  readonly subject?: string;
  /** `aud`, always as a list. */
  readonly audiences: readonly string[];
  /** `exp` in ms since the epoch. */
  readonly expiresAt?: number;
}

/** A problem with a token's text, phrased to follow the token's description. */
class ClaimsProblem extends Error {}

function decodeSegment(segment: string): unknown {
  const b64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
}

function claimsOf(token: string): ServiceAccountClaims {
  const parts = token.split(".");
  if (parts.length !== 3) throw new ClaimsProblem("is not a JWT (three dot-separated parts)");
  let payload: unknown;
  try {
    payload = decodeSegment(parts[1]);
  } catch {
    // The decoder's message could quote part of the token: only the fact is reported.
    throw new ClaimsProblem("is not a JWT: its payload is not base64url-encoded JSON");
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new ClaimsProblem("is not a JWT: its payload is not a JSON object");
  }
  const { iss, sub, aud, exp } = payload as Record<string, unknown>;
  const audiences = typeof aud === "string"
    ? [aud]
    : Array.isArray(aud)
    ? aud.filter((a): a is string => typeof a === "string")
    : [];
  return {
    ...(typeof iss === "string" ? { issuer: iss } : {}),
    ...(typeof sub === "string" ? { subject: sub } : {}),
    audiences,
    ...(typeof exp === "number" && Number.isFinite(exp) ? { expiresAt: exp * 1000 } : {}),
  };
}

/**
 * Reads `iss`, `sub`, `aud` and `exp` of a JWT without verifying it: the provider verifies;
 * these claims only decide whether the token may be sent and what a dry run shows.
 *
 * @param token A service-account token.
 * @returns Its claims.
 * @throws {TokenError} `TOKEN_CREDENTIALS` when it is not a JWT; the message never quotes it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeServiceAccountToken } from "./federation.ts";
 *
 * const payload = btoa(JSON.stringify({ aud: "api://AzureADTokenExchange", exp: 2 }));
 * const claims = decodeServiceAccountToken(`e30.${payload.replace(/=+$/, "")}.sig`);
 * assert.deepEqual(claims.audiences, ["api://AzureADTokenExchange"]);
 * assert.equal(claims.expiresAt, 2000);
 * ```
 */
export function decodeServiceAccountToken(token: string): ServiceAccountClaims {
  try {
    return claimsOf(token);
  } catch (error) {
    if (error instanceof ClaimsProblem) {
      throw new TokenError(`The service-account token ${error.message}`, {
        code: "TOKEN_CREDENTIALS",
      });
    }
    throw error;
  }
}

/** The tool's own service account and the API server's audiences, from the mounted token. */
export interface ClusterIdentity {
  /** Where they were read from. */
  readonly tokenPath: string;
  /** The cluster's service-account issuer. */
  readonly issuer?: string;
  /** The audiences the API server accepts: the mounted token's `aud` and the issuer. */
  readonly apiAudiences: readonly string[];
  /** The tool's service account, when `sub` names one. */
  readonly serviceAccount?: { readonly namespace: string; readonly name: string };
}

const SERVICE_ACCOUNT_SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** The audiences a token must not carry: the API server's, and the issuer (its default one). */
function forbiddenAudiences(identity: ClusterIdentity | undefined, issuer?: string): Set<string> {
  const forbidden = new Set(identity?.apiAudiences ?? []);
  if (issuer !== undefined) forbidden.add(issuer);
  return forbidden;
}

/**
 * Reads the mounted service-account token (`<dir>/token`) for what it says about the cluster:
 * its `aud` are the API server's audiences, its `sub` the tool's own service account. No network
 * call is made and nothing is verified.
 *
 * @param serviceAccountDir The folder of the mounted service account.
 * @param options How to read the file.
 * @returns The identity, or `undefined` when there is no mounted token (outside a pod).
 * @throws {TokenError} `TOKEN_CREDENTIALS` when the token exists but cannot be read or decoded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readClusterIdentity } from "./federation.ts";
 *
 * const payload = btoa(JSON.stringify({
 *   iss: "https://kubernetes.default.svc",
 *   aud: ["https://kubernetes.default.svc"],
 *   sub: "system:serviceaccount:tools:refresher",
 * })).replace(/=+$/, "");
 * const identity = await readClusterIdentity("/sa", {
 *   readTextFile: () => Promise.resolve(`e30.${payload}.sig`),
 * });
 * assert.deepEqual(identity?.serviceAccount, { namespace: "tools", name: "refresher" });
 * ```
 */
export async function readClusterIdentity(
  serviceAccountDir: string,
  options: { readTextFile?: (path: string) => Promise<string> } = {},
): Promise<ClusterIdentity | undefined> {
  const { readTextFile = Deno.readTextFile } = options;
  const tokenPath = `${serviceAccountDir.replace(/\/+$/, "")}/token`;
  let text: string;
  try {
    text = await readTextFile(tokenPath);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new TokenError(
      `Cannot read the mounted service-account token ${JSON.stringify(tokenPath)}: ${
        describeReadError(error)
      }`,
      { code: "TOKEN_CREDENTIALS", cause: error },
    );
  }
  let claims: ServiceAccountClaims;
  try {
    claims = claimsOf(text.trim());
  } catch (error) {
    if (!(error instanceof ClaimsProblem)) throw error;
    throw new TokenError(
      `The mounted service-account token ${JSON.stringify(tokenPath)} ${error.message}`,
      { code: "TOKEN_CREDENTIALS" },
    );
  }
  const match = SERVICE_ACCOUNT_SUBJECT.exec(claims.subject ?? "");
  return {
    tokenPath,
    ...(claims.issuer === undefined ? {} : { issuer: claims.issuer }),
    apiAudiences: [...forbiddenAudiences(undefined, claims.issuer), ...claims.audiences],
    ...(match === null ? {} : { serviceAccount: { namespace: match[1], name: match[2] } }),
  };
}

/**
 * The start-up check of the federation keys against the cluster: a configured audience must not
 * be one of the API server's, and minting with TokenRequest needs the tool's own service account.
 *
 * @param federation The federation section of the configuration.
 * @param identity What the mounted service-account token says, if there is one.
 * @returns The problem as a configuration error (exit 2), or `undefined` when all is well.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkFederationAtStart } from "./federation.ts";
 *
 * const identity = {
 *   tokenPath: "/sa/token",
 *   apiAudiences: ["https://kubernetes.default.svc"],
 *   serviceAccount: { namespace: "tools", name: "refresher" },
 * };
 * const error = checkFederationAtStart({ audience: "https://kubernetes.default.svc" }, identity);
 * assert.equal(error?.key, "oidc.federation.audience");
 * assert.equal(checkFederationAtStart({ audience: "api://AzureADTokenExchange" }, identity), undefined);
 * ```
 */
export function checkFederationAtStart(
  federation: FederationConfig,
  identity: ClusterIdentity | undefined,
): ConfigError | undefined {
  const { audience } = federation;
  if (audience === undefined) return undefined;
  if (forbiddenAudiences(identity).has(audience)) {
    return new ConfigError(
      `Invalid value ${
        JSON.stringify(audience)
      } for oidc.federation.audience: it is an audience of the Kubernetes API server itself (read from the mounted service-account token ${
        JSON.stringify(identity!.tokenPath)
      }), so the identity provider could use the token against the cluster as this service account; set the audience the provider expects, like api://AzureADTokenExchange or the provider's issuer URL`,
      { code: "CONFIG_INVALID", key: "oidc.federation.audience" },
    );
  }
  if (identity?.serviceAccount === undefined) {
    return new ConfigError(
      `Key oidc.federation.audience mints tokens for the tool's own service account, which is read from the mounted service-account token: ${
        identity === undefined
          ? "there is none (not running in a pod?)"
          : `the subject of ${JSON.stringify(identity.tokenPath)} names no service account`
      }; run in a pod with a service account, or set oidc.federation.tokenfile to a projected token instead`,
      { code: "CONFIG_CONFLICT", key: "oidc.federation.audience" },
    );
  }
  return undefined;
}

/** A source of service-account tokens to send to the provider. */
export interface ServiceAccountTokenSource {
  /** Where the tokens come from, for logs and the dry run (never a token). */
  readonly description: string;
  /** The audience the tokens are minted for, when they are minted. */
  readonly audience?: string;
  /**
   * Reads or mints a token, and checks it may be sent (not for the API server, not expired).
   *
   * @param signal Aborts a TokenRequest.
   * @returns The token. Never log it.
   * @throws {TokenError} `TOKEN_CREDENTIALS` on any failure; `TOKEN_ABORTED` when aborted.
   */
  token(signal?: AbortSignal): Promise<string>;
  /** The claims of the last token handed out, for the dry run. */
  readonly lastClaims?: ServiceAccountClaims;
}

/** Options of {@linkcode createServiceAccountTokenSource}. */
export interface ServiceAccountTokenSourceOptions {
  /** The federation section of the configuration. */
  federation: FederationConfig;
  /** What the mounted token says about the cluster; `undefined` outside a pod. */
  identity?: ClusterIdentity;
  /** The Kubernetes client, for TokenRequest. */
  client?: KubeClient;
  /** Reads the token file; defaults to `Deno.readTextFile`. */
  readTextFile?: (path: string) => Promise<string>;
  /** The clock, ms since the epoch. */
  now?: () => number;
}

function credentials(message: string, cause?: unknown): TokenError {
  return new TokenError(message, { code: "TOKEN_CREDENTIALS", cause });
}

/**
 * The service-account token source the configuration asks for: the projected token file, or
 * TokenRequest for the tool's own service account with the configured audience.
 *
 * @param options Configuration, cluster identity, client and test hooks.
 * @returns The source.
 * @throws {TypeError} When TokenRequest is configured without a client or service account
 *   ({@linkcode checkFederationAtStart} reports that as a configuration error first).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createServiceAccountTokenSource } from "./federation.ts";
 *
 * const payload = btoa(JSON.stringify({ aud: ["https://kubernetes.default.svc"] }));
 * const source = createServiceAccountTokenSource({
 *   federation: { tokenFile: "/var/run/secrets/tokens/provider" },
 *   identity: { tokenPath: "/sa/token", apiAudiences: ["https://kubernetes.default.svc"] },
 *   readTextFile: () => Promise.resolve(`e30.${payload.replace(/=+$/, "")}.sig`),
 * });
 * await assert.rejects(source.token(), /audience of the Kubernetes API server/);
 * ```
 */
export function createServiceAccountTokenSource(
  options: ServiceAccountTokenSourceOptions,
): ServiceAccountTokenSource {
  const { federation, identity, client } = options;
  const now = options.now ?? Date.now;
  let lastClaims: ServiceAccountClaims | undefined;

  /** The checks every token passes before it leaves the process. */
  const admit = (token: string, what: string): string => {
    let claims: ServiceAccountClaims;
    try {
      claims = claimsOf(token);
    } catch (error) {
      if (error instanceof ClaimsProblem) throw credentials(`${what} ${error.message}`);
      throw error;
    }
    const forbidden = forbiddenAudiences(identity, claims.issuer);
    const offending = claims.audiences.find((audience) => forbidden.has(audience));
    if (offending !== undefined) {
      throw credentials(
        `${what} has the audience ${
          JSON.stringify(offending)
        }, an audience of the Kubernetes API server itself: it is not sent, since the identity provider could use it against the cluster; give the token the provider's audience (audience of the projected volume)`,
      );
    }
    if (claims.audiences.length === 0) {
      throw credentials(`${what} has no audience: it is not sent`);
    }
    if (claims.expiresAt !== undefined && claims.expiresAt <= now()) {
      throw credentials(
        `${what} expired at ${
          isoTime(claims.expiresAt)
        }: the kubelet did not rotate it; check that the projected volume is mounted`,
      );
    }
    lastClaims = claims;
    return token;
  };

  const { tokenFile, audience } = federation;
  if (tokenFile !== undefined) {
    const readTextFile = options.readTextFile ?? Deno.readTextFile;
    const what = `Service-account token file ${JSON.stringify(tokenFile)}`;
    return {
      description: `projected token file ${JSON.stringify(tokenFile)}`,
      get lastClaims() {
        return lastClaims;
      },
      async token() {
        let text: string;
        try {
          text = await readTextFile(tokenFile);
        } catch (error) {
          throw credentials(`Cannot read ${what}: ${describeReadError(error)}`, error);
        }
        const token = text.trim();
        if (token === "") throw credentials(`${what} is empty`);
        return admit(token, what);
      },
    };
  }
  if (audience === undefined) {
    throw new TypeError("federation needs tokenFile or audience");
  }
  const account = identity?.serviceAccount;
  if (client === undefined || account === undefined) {
    throw new TypeError("TokenRequest needs a Kubernetes client and the tool's service account");
  }
  const expirationSeconds = federation.expiration ?? DEFAULT_FEDERATION_EXPIRATION;
  const name = `${account.namespace}/${account.name}`;
  return {
    description: `TokenRequest for service account ${JSON.stringify(name)}, ${expirationSeconds} s`,
    audience,
    get lastClaims() {
      return lastClaims;
    },
    async token(signal?: AbortSignal) {
      let minted: { token: string };
      try {
        minted = await client.requestServiceAccountToken(
          account.namespace,
          account.name,
          { audiences: [audience], expirationSeconds },
          signal,
        );
      } catch (error) {
        if (error instanceof KubeApiError && error.code === "KUBE_ABORTED") {
          throw new TokenError("Token request aborted", { code: "TOKEN_ABORTED" });
        }
        const hint = error instanceof KubeApiError && error.status === 403
          ? `; grant create on serviceaccounts/token with resourceNames ["${account.name}"] in namespace "${account.namespace}"`
          : "";
        throw credentials(
          `TokenRequest for service account ${JSON.stringify(name)} failed: ${
            error instanceof Error ? error.message : String(error)
          }${hint}`,
          error,
        );
      }
      return admit(minted.token, `The token minted for service account ${JSON.stringify(name)}`);
    },
  };
}

/**
 * Client authentication with the service-account token (RFC 7523 §2.2), for oauth4webapi:
 * `client_assertion` and its type in the form body, and `client_id` only when configured (Entra
 * needs it; Keycloak finds the client from the token's issuer and subject).
 *
 * @param assertion The service-account token.
 * @param clientId The configured client id, if any.
 * @returns The client authentication.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { workloadIdentityAuth } from "./federation.ts";
 *
 * const body = new URLSearchParams();
 * const as = { issuer: "https://auth.example.com" };
 * workloadIdentityAuth("eyJ.x.y", undefined)(as, { client_id: "-" }, body, new Headers());
 * assert.equal(body.has("client_id"), false);
 * ```
 */
export function workloadIdentityAuth(
  assertion: string,
  clientId: string | undefined,
): oauth.ClientAuth {
  return (_as, _client, body) => {
    if (clientId !== undefined) body.set("client_id", clientId);
    body.set("client_assertion_type", JWT_BEARER_ASSERTION_TYPE);
    body.set("client_assertion", assertion);
  };
}

/**
 * The grant type and parameters of a grant that carries the service-account token itself:
 * `jwt_bearer` sends it as `assertion` (RFC 7523 §2.1), `token_exchange` as `subject_token`
 * with its type (RFC 8693 §2.1).
 *
 * @param grant The configured grant (not `client_credentials`).
 * @param token The service-account token.
 * @param base The shared parameters (scope, audience, resource) and `oidc.federation.params`.
 * @param tokenType `subject_token_type` for token exchange.
 * @returns The grant type URN and the parameters to send.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { federatedGrant } from "./federation.ts";
 *
 * const { grantType, parameters } = federatedGrant("token_exchange", "eyJ.x.y", new URLSearchParams());
 * assert.equal(grantType, "urn:ietf:params:oauth:grant-type:token-exchange");
 * assert.equal(parameters.get("subject_token_type"), "urn:ietf:params:oauth:token-type:jwt");
 * ```
 */
export function federatedGrant(
  grant: Exclude<GrantType, "client_credentials">,
  token: string,
  base: URLSearchParams,
  tokenType: string = DEFAULT_SUBJECT_TOKEN_TYPE,
): { grantType: string; parameters: URLSearchParams } {
  const parameters = new URLSearchParams(base);
  if (grant === "jwt_bearer") {
    parameters.set("assertion", token);
    return { grantType: "urn:ietf:params:oauth:grant-type:jwt-bearer", parameters };
  }
  parameters.set("subject_token", token);
  parameters.set("subject_token_type", tokenType);
  return { grantType: "urn:ietf:params:oauth:grant-type:token-exchange", parameters };
}

/**
 * Appends the `name=value` items of `oidc.federation.params` to form parameters.
 *
 * @param parameters The parameters to extend.
 * @param items The configured items.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { appendFormParameters } from "./federation.ts";
 *
 * const parameters = new URLSearchParams();
 * appendFormParameters(parameters, ["connector_id=kubernetes"]);
 * assert.equal(parameters.get("connector_id"), "kubernetes");
 * ```
 */
export function appendFormParameters(parameters: URLSearchParams, items: readonly string[]): void {
  for (const item of items) {
    const at = item.indexOf("=");
    parameters.append(item.slice(0, at), item.slice(at + 1));
  }
}

/** What the dry run shows about the service-account token. */
export interface FederationReport {
  /** Lines for people; never a token. */
  readonly lines: readonly string[];
  /** Problems that would make a run fail. */
  readonly problems: readonly string[];
}

/**
 * The dry run's part for federation: the token source and audience, the issuer, subject and
 * expiry of the token last handed out (the dry run's token request read or minted it), and, for
 * TokenRequest, whether the identity in use may mint tokens for its service account.
 *
 * @param source The service-account token source the token request used.
 * @param options The client and service account, for the permission review.
 * @returns Lines and problems.
 *
 * @example
 * ```ts ignore
 * const report = await federationDryRun(source, { client, identity });
 * ```
 */
export async function federationDryRun(
  source: ServiceAccountTokenSource,
  options: { client: KubeClient; identity?: ClusterIdentity; signal?: AbortSignal },
): Promise<FederationReport> {
  const lines = [`Service-account token: ${source.description}`];
  const problems: string[] = [];
  const claims = source.lastClaims;
  if (claims === undefined) {
    lines.push("Service-account token: none obtained (see the token line)");
  } else {
    const expiry = claims.expiresAt === undefined
      ? "no expiry"
      : `expires ${isoTime(claims.expiresAt)}`;
    lines.push(
      `Service-account token: audience ${
        claims.audiences.map((a) => JSON.stringify(a)).join(", ")
      }, issuer ${JSON.stringify(claims.issuer ?? "(none)")}, subject ${
        JSON.stringify(claims.subject ?? "(none)")
      }, ${expiry} (token not shown)`,
    );
  }
  const account = options.identity?.serviceAccount;
  if (source.audience !== undefined && account !== undefined) {
    const object = `serviceaccounts/token "${account.name}" in namespace "${account.namespace}"`;
    try {
      const review = await options.client.reviewAccess({
        namespace: account.namespace,
        verb: "create",
        resource: "serviceaccounts",
        subresource: "token",
        name: account.name,
      }, options.signal);
      lines.push(`Permission create ${object}: ${review.allowed ? "allowed" : "MISSING"}`);
      if (!review.allowed) {
        problems.push(
          `Permission missing: create ${object}; grant it with a Role rule {apiGroups: [""], resources: ["serviceaccounts/token"], resourceNames: ["${account.name}"], verbs: ["create"]}`,
        );
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      lines.push(`Permission create ${object}: FAILED: ${message}`);
      problems.push(`The TokenRequest permission could not be reviewed: ${message}`);
    }
  }
  return { lines, problems };
}
