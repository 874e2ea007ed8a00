/**
 * The token source: OAuth 2.0 client credentials grant through oauth4webapi.
 *
 * The token endpoint is configured directly or found in the issuer's metadata
 * (OpenID Connect discovery, else RFC 8414), fetched at the first request and
 * again after the endpoint fails. The client authenticates with a secret (in
 * the form body or a Basic header) or a private key (`private_key_jwt`);
 * secret, key and CA files are read before every request.
 *
 * @module
 */
import * as oauth from "oauth4webapi";
import { fromBase64 } from "../base64.ts";
import type { ClientAuthMethod, Config, GrantType } from "../config/mod.ts";
import { startDeadline } from "../deadline.ts";
import {
  describeSendFailure,
  isLoopbackHost,
  proxyFor,
  type ProxyRoute,
  readBoundedBody,
} from "../http.ts";
import { getLogger, LOG_CATEGORY } from "../log.ts";
import type { Token, TokenSource } from "../token.ts";
import { type ClientPrivateKey, readPrivateKeyFile, readSecretFile } from "./auth.ts";
import { createTrustingClient } from "./trust.ts";
import { TokenError } from "./error.ts";
import {
  appendFormParameters,
  federatedGrant,
  type ServiceAccountTokenSource,
  workloadIdentityAuth,
} from "./federation.ts";

export { TokenError, type TokenErrorCode, type TokenErrorOptions } from "./error.ts";

/** Options of {@linkcode createClientCredentialsSource}. */
export interface ClientCredentialsOptions {
  /**
   * The provider's token endpoint; give this or {@linkcode ClientCredentialsOptions.issuer}.
   * `http:` is only for loopback (config validation enforces it).
   */
  tokenUrl?: string;
  /**
   * The issuer, whose metadata names the token endpoint; give this or
   * {@linkcode ClientCredentialsOptions.tokenUrl}. The metadata is fetched at the first
   * request, and again after the token endpoint fails (unreachable, 404 or 5xx).
   */
  issuer?: string;
  /** OAuth client id; only `workload_identity` may leave it out. */
  clientId?: string;
  /** How the client authenticates. Default `client_secret_post`, as the original tool did. */
  authMethod?: ClientAuthMethod;
  /** The grant. Default `client_credentials`. */
  grant?: GrantType;
  /**
   * The Kubernetes service-account token, read or minted before every request; needed by
   * `workload_identity` and by the `jwt_bearer` and `token_exchange` grants.
   */
  serviceAccountToken?: ServiceAccountTokenSource;
  /** `subject_token_type` of token exchange. Default `urn:ietf:params:oauth:token-type:jwt`. */
  subjectTokenType?: string;
  /** Further form parameters, `name=value` each (`oidc.federation.params`). */
  extraParameters?: readonly string[];
  /**
   * OAuth client secret, or a function returning it (called before every request); needed
   * by `client_secret_post` and `client_secret_basic`.
   */
  clientSecret?: string | (() => string | Promise<string>);
  /**
   * The private key of `private_key_jwt`, or a function returning it (called before every
   * request).
   */
  privateKey?: ClientPrivateKey | (() => ClientPrivateKey | Promise<ClientPrivateKey>);
  /** `aud` of the client assertion of `private_key_jwt`. Default: the token endpoint URL. */
  assertionAudience?: string;
  /** Space-separated scopes, sent as `scope`. */
  scope?: string;
  /** Sent as `audience`, the parameter Auth0 wants. */
  audience?: string;
  /** RFC 8707 resource indicators, one `resource` parameter each. */
  resource?: readonly string[];
  /**
   * Makes the HTTP client for one token request (discovery included), which is closed after
   * it; used to trust a private CA. Default: the one `fetch` uses anyway.
   */
  httpClient?: () => Promise<Deno.HttpClient>;
  /** Timeout in milliseconds of each request, body included. Default 10 000. */
  timeoutMs?: number;
  /** Largest response body accepted, in bytes. Default 1 MiB. */
  maxResponseBytes?: number;
  /** The fetch to use; tests pass their own. */
  fetch?: typeof fetch;
  /** The clock, ms since the epoch. */
  now?: () => number;
  /**
   * The proxy variables fetch reads (`HTTPS_PROXY`, `NO_PROXY`, ...), so an unreachable proxy is
   * reported as the proxy's failure rather than the endpoint's.
   */
  proxyEnv?: Readonly<Record<string, string | undefined>>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 1 << 20;

/**
 * Parses a `Retry-After` header value: delay seconds or an HTTP date.
 *
 * @param value The header value.
 * @param now The current time in ms since the epoch.
 * @returns Milliseconds to wait, or undefined when absent or malformed.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./source.ts";
 * console.assert(parseRetryAfter("7", 0) === 7000);
 * ```
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Reads the `exp` claim of a JWT without verifying it; used for scheduling only.
 *
 * @param token A token that may be a JWT.
 * @returns `exp` in seconds since the epoch, or undefined when the token is no JWT or has none.
 *
 * @example
 * ```ts
 * import { jwtExpiry } from "./source.ts";
 * const payload = btoa(JSON.stringify({ exp: 42 })).replace(/=+$/, "");
 * console.assert(jwtExpiry(`e30.${payload}.sig`) === 42);
 * ```
 */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const claims: unknown = JSON.parse(new TextDecoder().decode(fromBase64(parts[1])));
    if (claims && typeof claims === "object" && "exp" in claims) {
      const exp = (claims as { exp: unknown }).exp;
      if (typeof exp === "number" && Number.isFinite(exp)) return exp;
    }
  } catch {
    // Not a JWT after all: the lifetime stays unknown.
  }
  return undefined;
}

function describeProviderError(status: number, error: string, description?: string): string {
  const detail = description ? `: ${description}` : "";
  return `Token endpoint refused the request with HTTP ${status}, error "${error}"${detail}`;
}

/** Maps whatever oauth4webapi or fetch threw onto a {@linkcode TokenError}, keeping secrets out. */
function toTokenError(
  err: unknown,
  status: number | undefined,
  retryAfterMs: number | undefined,
  proxy?: ProxyRoute,
) {
  if (err instanceof TokenError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    return new TokenError(describeProviderError(err.status, err.error, err.error_description), {
      code: "TOKEN_PROVIDER_ERROR",
      status: err.status,
      providerError: err.error,
      providerDescription: err.error_description,
      retryAfterMs,
    });
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    const challenge = err.cause[0];
    const error = challenge?.parameters.error;
    const description = challenge?.parameters.error_description;
    return new TokenError(
      error
        ? describeProviderError(err.status, error, description)
        : `Token endpoint refused the request with HTTP ${err.status} (${
          challenge?.scheme ?? "unknown"
        } challenge)`,
      {
        code: "TOKEN_PROVIDER_ERROR",
        status: err.status,
        providerError: error,
        providerDescription: description,
        retryAfterMs,
      },
    );
  }
  if (err instanceof oauth.OperationProcessingError) {
    if (status !== undefined && (status < 200 || status > 299)) {
      return new TokenError(`Token endpoint answered with HTTP ${status}`, {
        code: "TOKEN_HTTP_ERROR",
        status,
        retryAfterMs,
      });
    }
    // The library's message names the problem ("access_token" missing, not JSON, ...); its
    // cause may hold the response body, which can carry a token, so it is not kept.
    return new TokenError(`Token endpoint gave an invalid token response: ${err.message}`, {
      code: "TOKEN_INVALID_RESPONSE",
      status,
    });
  }
  if (err instanceof DOMException && err.name === "TimeoutError") {
    return new TokenError("Token endpoint did not answer in time", { code: "TOKEN_TIMEOUT" });
  }
  if (err instanceof DOMException && err.name === "AbortError") {
    return new TokenError("Token request aborted", { code: "TOKEN_ABORTED" });
  }
  return new TokenError(`Token endpoint could not be reached: ${describeSendFailure(err, proxy)}`, {
    code: "TOKEN_UNREACHABLE",
  });
}

/** The fetch of oauth4webapi's `customFetch` option, for GET (discovery) and POST (token). */
type CustomFetch = (url: string, init: RequestInit) => Promise<Response>;

/** What a request's answer said beyond its body, for error mapping. */
interface Answer {
  /** HTTP status of the last answer, if one came. */
  readonly status?: number;
  /** `Retry-After` of a 429 or 503 answer, in ms. */
  readonly retryAfterMs?: number;
}

/** A fetch for oauth4webapi, and what its last answer said. */
interface BoundedFetch extends Answer {
  /** The fetch, reading the whole body under the size limit. */
  readonly fetch: CustomFetch;
}

/** Makes a {@linkcode BoundedFetch} for one request to the endpoint named by `what`. */
type BoundedFetchFactory = (what: string) => BoundedFetch;

/**
 * Runs `work` under its own timeout and the caller's signal, and settles as soon as either
 * fires even if `work` ignores its signal.
 */
async function withDeadline<T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  using deadline = startDeadline(timeoutMs, signal);
  try {
    return await deadline.settle(work(deadline.signal));
  } catch (err) {
    if (deadline.expired && !signal?.aborted) {
      throw new TokenError(`${what} did not answer within ${timeoutMs} ms`, {
        code: "TOKEN_TIMEOUT",
      });
    }
    if (signal?.aborted) throw new TokenError("Token request aborted", { code: "TOKEN_ABORTED" });
    throw err;
  }
}

/** Failures after which the metadata may be stale: the provider may have moved its endpoint. */
function suggestsStaleMetadata(err: TokenError): boolean {
  if (err.code === "TOKEN_UNREACHABLE" || err.code === "TOKEN_TIMEOUT") return true;
  return err.status !== undefined && (err.status === 404 || err.status >= 500);
}

/** `http:` is accepted only where configuration would accept it: loopback. */
function isSecureEnough(url: URL): boolean {
  return url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname));
}

/**
 * Fetches the issuer's metadata: OpenID Connect discovery first, then RFC 8414 (the
 * `oauth-authorization-server` document) when the first is missing or unusable.
 */
async function discover(
  issuer: URL,
  boundedFetch: BoundedFetchFactory,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  proxyEnv: Readonly<Record<string, string | undefined>>,
): Promise<oauth.AuthorizationServer> {
  const what = `Discovery endpoint of issuer ${JSON.stringify(issuer.href)}`;
  const problems: string[] = [];
  // A server error says nothing about the issuer being right; it is reported as what it is.
  let serverError: Answer | undefined;
  for (const algorithm of ["oidc", "oauth2"] as const) {
    let url = "";
    const record = boundedFetch(what);
    let metadata: oauth.AuthorizationServer;
    try {
      metadata = await withDeadline(
        what,
        timeoutMs,
        signal,
        async (bounded) => {
          const response = await oauth.discoveryRequest(issuer, {
            algorithm,
            signal: bounded,
            [oauth.allowInsecureRequests]: issuer.protocol === "http:",
            [oauth.customFetch]: (input, init) => {
              url = input;
              return record.fetch(input, init);
            },
          });
          return await oauth.processDiscoveryResponse(issuer, response);
        },
      );
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (err instanceof oauth.OperationProcessingError) {
        if (err.code === oauth.JSON_ATTRIBUTE_COMPARISON) {
          const named = (err.cause as { body?: { issuer?: unknown } } | undefined)?.body?.issuer;
          throw new TokenError(
            `Metadata at ${url} names the issuer ${JSON.stringify(String(named))}, not ${
              JSON.stringify(issuer.href)
            }: set oidc.issuer to exactly the provider's issuer`,
            { code: "TOKEN_DISCOVERY" },
          );
        }
        problems.push(
          record.status !== undefined && record.status !== 200
            ? `${url} answered HTTP ${record.status}`
            : `${url} gave no usable metadata (${err.message.replaceAll('"', "")})`,
        );
        if (record.status !== undefined && (record.status >= 500 || record.status === 429)) {
          serverError ??= { status: record.status, retryAfterMs: record.retryAfterMs };
        }
        continue;
      }
      throw new TokenError(
        `Discovery endpoint ${url || issuer.href} could not be reached: ${
          describeSendFailure(err, proxyFor(url || issuer.href, proxyEnv))
        }`,
        { code: "TOKEN_UNREACHABLE" },
      );
    }
    if (typeof metadata.token_endpoint !== "string" || !URL.canParse(metadata.token_endpoint)) {
      throw new TokenError(`Metadata at ${url} names no token_endpoint`, {
        code: "TOKEN_DISCOVERY",
      });
    }
    if (!isSecureEnough(new URL(metadata.token_endpoint))) {
      // The client secret goes there: plain http: is refused as it is in oidc.tokenurl.
      throw new TokenError(
        `Metadata at ${url} names the token endpoint ${
          JSON.stringify(metadata.token_endpoint)
        }, which is neither https: nor on a loopback host`,
        { code: "TOKEN_DISCOVERY" },
      );
    }
    return metadata;
  }
  if (serverError !== undefined) {
    throw new TokenError(
      `Metadata of issuer ${JSON.stringify(issuer.href)} unavailable: ${problems.join("; ")}`,
      {
        code: "TOKEN_HTTP_ERROR",
        status: serverError.status,
        retryAfterMs: serverError.retryAfterMs,
      },
    );
  }
  throw new TokenError(
    `No metadata found for issuer ${JSON.stringify(issuer.href)}: ${
      problems.join("; ")
    }; check oidc.issuer, or set oidc.tokenurl instead`,
    { code: "TOKEN_DISCOVERY" },
  );
}

/** A value, or what a function-valued option returns now. */
async function resolveValue<T>(value: T | (() => T | Promise<T>)): Promise<T> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : value;
}

/**
 * Creates a token source that uses the client credentials grant. By default the client
 * authenticates with `client_secret_post` (client id and secret in the form body, as the
 * original tool did).
 *
 * @param options Endpoint or issuer, credentials, request parameters, limits and test hooks.
 * @returns The token source.
 * @throws {TypeError} When neither or both of `tokenUrl` and `issuer` are given, or the
 *   credential the auth method needs is missing.
 *
 * @example
 * ```ts ignore
 * import { createClientCredentialsSource } from "./source.ts";
 * const source = createClientCredentialsSource({
 *   issuer: "https://auth.example.com", clientId: "my-client", clientSecret: "s3cr3t",
 *   authMethod: "client_secret_basic", scope: "api.read",
 * });
 * const token = await source.fetchToken();
 * ```
 */
export function createClientCredentialsSource(options: ClientCredentialsOptions): TokenSource {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const method = options.authMethod ?? "client_secret_post";
  const log = getLogger([LOG_CATEGORY, "oidc"]);
  if ((options.tokenUrl === undefined) === (options.issuer === undefined)) {
    throw new TypeError("Exactly one of tokenUrl and issuer must be given");
  }
  const { clientSecret, privateKey, serviceAccountToken } = options;
  const grant = options.grant ?? "client_credentials";
  const needs = method === "private_key_jwt"
    ? privateKey === undefined ? "privateKey" : undefined
    : method === "client_secret_post" || method === "client_secret_basic"
    ? clientSecret === undefined ? "clientSecret" : undefined
    : undefined;
  if (needs !== undefined) throw new TypeError(`The auth method ${method} needs ${needs}`);
  const federated = method === "workload_identity" || grant !== "client_credentials";
  if (federated && serviceAccountToken === undefined) {
    throw new TypeError(`The auth method ${method} with grant ${grant} needs serviceAccountToken`);
  }
  if (options.clientId === undefined && method !== "workload_identity") {
    throw new TypeError(`The auth method ${method} needs clientId`);
  }
  const issuer = options.issuer === undefined ? undefined : new URL(options.issuer);
  // Without an issuer, the token URL's origin stands in for it; only assertions would show it,
  // and their audience defaults to the token endpoint instead.
  const configured: oauth.AuthorizationServer | undefined = options.tokenUrl === undefined
    ? undefined
    : { issuer: new URL(options.tokenUrl).origin, token_endpoint: new URL(options.tokenUrl).href };
  let discovered: oauth.AuthorizationServer | undefined;
  // oauth4webapi wants a client id; workload_identity without one never sends it (see its auth).
  const client: oauth.Client = { client_id: options.clientId ?? "unset" };
  const parameters = new URLSearchParams();
  if (options.scope !== undefined) parameters.set("scope", options.scope);
  if (options.audience !== undefined) parameters.set("audience", options.audience);
  for (const resource of options.resource ?? []) parameters.append("resource", resource);
  appendFormParameters(parameters, options.extraParameters ?? []);

  /** Reads the credentials now, so a rotated file counts, and builds the client authentication. */
  const authentication = async (
    assertion: string | undefined,
  ): Promise<(as: oauth.AuthorizationServer) => oauth.ClientAuth> => {
    if (method === "workload_identity") {
      return () => workloadIdentityAuth(assertion!, options.clientId);
    }
    if (method === "none") return () => oauth.None();
    let secret: string | undefined;
    let key: ClientPrivateKey | undefined;
    try {
      if (method === "private_key_jwt") key = await resolveValue(privateKey!);
      else secret = await resolveValue(clientSecret!);
    } catch (err) {
      if (err instanceof TokenError) throw err;
      // The text of a foreign error might hold what it was reading, so it is only the cause.
      throw new TokenError("The client credentials could not be read", {
        code: "TOKEN_CREDENTIALS",
        cause: err,
      });
    }
    switch (method) {
      case "client_secret_post":
        return () => oauth.ClientSecretPost(secret!);
      case "client_secret_basic":
        return () => oauth.ClientSecretBasic(secret!);
      case "private_key_jwt":
        return (as) =>
          oauth.PrivateKeyJwt({ key: key!.key, kid: key!.kid }, {
            [oauth.modifyAssertion]: (header, payload) => {
              // oauth4webapi derives alg from the key and calls Ed25519 keys "Ed25519"; the
              // configured name (e.g. "EdDSA") is the one the provider knows.
              header.alg = key!.alg;
              // RFC 7523 names the token endpoint as the audience; the providers that want
              // the issuer instead are served by oidc.assertionaudience.
              payload.aud = options.assertionAudience ?? as.token_endpoint;
            },
          });
    }
  };

  /** A fetch for oauth4webapi that uses `httpClient` and reads the whole body under the limit. */
  const boundedFetch = (httpClient: Deno.HttpClient | undefined): BoundedFetchFactory => (what) => {
    let answer: Answer = {};
    return {
      get status() {
        return answer.status;
      },
      get retryAfterMs() {
        return answer.retryAfterMs;
      },
      fetch: async (input, init) => {
        // Reading the whole body under the request's signal and size bound means a provider
        // that stalls mid-body or sends megabytes cannot hang or bloat the process.
        const raw = await doFetch(
          input,
          httpClient === undefined ? init : { ...init, client: httpClient },
        );
        answer = {
          status: raw.status,
          retryAfterMs: raw.status === 429 || raw.status === 503
            ? parseRetryAfter(raw.headers.get("retry-after"), now())
            : undefined,
        };
        const body = await readBoundedBody(raw, maxBytes, (declared) =>
          new TokenError(
            declared === undefined
              ? `${what} answered with more than the ${maxBytes} bytes accepted`
              : `${what} answered with ${declared} bytes, more than the ${maxBytes} accepted`,
            { code: "TOKEN_RESPONSE_TOO_LARGE", status: raw.status },
          ));
        return new Response(raw.status === 204 || raw.status === 304 ? null : body, {
          status: raw.status,
          statusText: raw.statusText,
          headers: raw.headers,
        });
      },
    };
  };

  const metadata = async (
    fetcher: BoundedFetchFactory,
    signal: AbortSignal | undefined,
  ): Promise<oauth.AuthorizationServer> => {
    if (configured !== undefined) return configured;
    if (discovered === undefined) {
      discovered = await discover(issuer!, fetcher, timeoutMs, signal, options.proxyEnv ?? {});
      log.info("Found token endpoint {tokenEndpoint} in the metadata of issuer {issuer}", {
        tokenEndpoint: discovered.token_endpoint,
        issuer: issuer!.href,
      });
    }
    return discovered;
  };

  return {
    async fetchToken(signal?: AbortSignal): Promise<Token> {
      // Local files first: a missing secret is reported without a round trip to the provider.
      const assertion = federated ? await serviceAccountToken!.token(signal) : undefined;
      const authenticate = await authentication(assertion);
      const httpClient = await options.httpClient?.();
      try {
        const fetcher = boundedFetch(httpClient);
        const as = await metadata(fetcher, signal);
        const record = fetcher("Token endpoint");
        try {
          // The lifetime counts from when the request was sent: the provider starts its clock no
          // earlier than that, so an expiry computed from the answer's arrival would be late.
          const requestedAt = now();
          return await withDeadline("Token endpoint", timeoutMs, signal, async (bounded) => {
            const requestOptions = {
              signal: bounded,
              [oauth.allowInsecureRequests]: new URL(as.token_endpoint!).protocol === "http:",
              [oauth.customFetch]: record.fetch,
            };
            let result: oauth.TokenEndpointResponse;
            let response: Response;
            if (grant === "client_credentials") {
              response = await oauth.clientCredentialsGrantRequest(
                as,
                client,
                authenticate(as),
                parameters,
                requestOptions,
              );
              result = await oauth.processClientCredentialsResponse(as, client, response);
            } else {
              const request = federatedGrant(
                grant,
                assertion!,
                parameters,
                options.subjectTokenType,
              );
              response = await oauth.genericTokenEndpointRequest(
                as,
                client,
                authenticate(as),
                request.grantType,
                request.parameters,
                requestOptions,
              );
              result = await oauth.processGenericTokenEndpointResponse(as, client, response);
            }
            checkAccessToken(result.access_token, response.status);
            const token = withLifetime(result.access_token, result.expires_in, requestedAt);
            // The library lowercases token_type; templates want the scheme as RFC 6750 spells it.
            const type = typeof result.token_type === "string" ? result.token_type : undefined;
            return type === undefined
              ? token
              : { ...token, tokenType: type.toLowerCase() === "bearer" ? "Bearer" : type };
          });
        } catch (err) {
          const error = toTokenError(
            err,
            record.status,
            record.retryAfterMs,
            proxyFor(as.token_endpoint!, options.proxyEnv ?? {}),
          );
          if (discovered !== undefined && suggestsStaleMetadata(error)) {
            log.debug("Token endpoint failed; the issuer's metadata will be fetched again", {
              code: error.code,
              status: error.status,
            });
            discovered = undefined;
          }
          throw error;
        }
      } finally {
        httpClient?.close();
      }
    },
  };
}

/** RFC 6749, Appendix A.12: `access-token = 1*VSCHAR`, VSCHAR being %x20-7E. */
const VSCHAR_TOKEN = /^[\x20-\x7E]+$/;

/**
 * Refuses an access token outside RFC 6749's grammar. Consumers paste the token into an
 * `Authorization` header: a CR or LF in it would inject headers into every consumer's requests.
 * The message names the rule and where it broke, never the value.
 */
function checkAccessToken(value: string, status: number): void {
  if (VSCHAR_TOKEN.test(value)) return;
  const bad = [...value].findIndex((c) => !VSCHAR_TOKEN.test(c));
  const code = value.codePointAt(bad) ?? 0;
  throw new TokenError(
    `Token endpoint gave an invalid token response: "access_token" must be 1*VSCHAR (printable ASCII %x20-7E, RFC 6749 Appendix A.12), but character ${
      bad + 1
    } is U+${
      code.toString(16).toUpperCase().padStart(4, "0")
    }; the token was refused and is not shown`,
    { code: "TOKEN_INVALID_RESPONSE", status },
  );
}

/**
 * How far a JWT `exp` may fall before the `expires_in` expiry and still be believed. JWT times are
 * whole seconds and providers round `iat` down, so `exp` can be up to a second early; a larger
 * gap means the provider's clock is off, and then the relative `expires_in` is the safer guide.
 */
const EXP_ROUNDING_MS = 2000;

function withLifetime(value: string, expiresIn: number | undefined, obtainedAt: number): Token {
  const exp = jwtExpiry(value);
  const fromJwt = exp === undefined ? undefined : exp * 1000;
  if (expiresIn !== undefined && expiresIn > 0) {
    let expiresAt = obtainedAt + expiresIn * 1000;
    // Consumers check `exp`: when it is a little earlier than expires_in says, it is the truth.
    if (fromJwt !== undefined && fromJwt < expiresAt && expiresAt - fromJwt <= EXP_ROUNDING_MS) {
      expiresAt = fromJwt;
    }
    return {
      value,
      obtainedAt,
      lifetimeSeconds: (expiresAt - obtainedAt) / 1000,
      expiresAt,
      lifetimeSource: "expires_in",
    };
  }
  if (fromJwt !== undefined) {
    return {
      value,
      obtainedAt,
      lifetimeSeconds: Math.max(0, (fromJwt - obtainedAt) / 1000),
      expiresAt: fromJwt,
      lifetimeSource: "jwt",
    };
  }
  return { value, obtainedAt, lifetimeSource: "unknown" };
}

/** Options of {@linkcode tokenSourceFromConfig}: the test hooks of the token source. */
export interface TokenSourceOptions {
  /** The service-account token source, when the configuration federates (see federation.ts). */
  serviceAccountToken?: ServiceAccountTokenSource;
  /** Reads the secret, key and CA files; defaults to `Deno.readTextFile`. */
  readTextFile?: (path: string) => Promise<string>;
  /** The fetch to use. */
  fetch?: typeof fetch;
  /** The clock, ms since the epoch. */
  now?: () => number;
  /** Timeout in milliseconds of each request. Default 10 000. */
  timeoutMs?: number;
  /** The proxy variables, to tell a failing proxy from a failing endpoint. */
  proxyEnv?: Readonly<Record<string, string | undefined>>;
}

/**
 * Builds the token source the configuration asks for. Nothing is read or
 * fetched yet: the secret, key and CA files are read, and the issuer's
 * metadata fetched, when the first token is requested, so a provider outage
 * at start-up is a failed refresh that is retried, not a crash.
 *
 * @param oidc The `oidc.*` section of the configuration.
 * @param options Test hooks.
 * @returns The token source.
 *
 * @example
 * ```ts ignore
 * import { tokenSourceFromConfig } from "./source.ts";
 * const source = tokenSourceFromConfig(config.oidc);
 * ```
 */
export function tokenSourceFromConfig(
  oidc: Config["oidc"],
  options: TokenSourceOptions = {},
): TokenSource {
  const { readTextFile } = options;
  const { clientSecretFile, privateKeyFile, caFile } = oidc;
  return createClientCredentialsSource({
    tokenUrl: oidc.tokenUrl,
    issuer: oidc.issuer,
    clientId: oidc.clientId,
    authMethod: oidc.authMethod,
    grant: oidc.grant,
    serviceAccountToken: options.serviceAccountToken,
    subjectTokenType: oidc.federation?.tokenType,
    extraParameters: oidc.federation?.params,
    clientSecret: clientSecretFile === undefined
      ? oidc.clientSecret
      : () => readSecretFile(clientSecretFile, { readTextFile }),
    privateKey: privateKeyFile === undefined
      ? undefined
      : () =>
        readPrivateKeyFile(privateKeyFile, { alg: oidc.keyAlg, kid: oidc.keyId, readTextFile }),
    assertionAudience: oidc.assertionAudience,
    scope: oidc.scope,
    audience: oidc.audience,
    resource: oidc.resource,
    httpClient: caFile === undefined
      ? undefined
      : () => createTrustingClient(caFile, { readTextFile }),
    fetch: options.fetch,
    now: options.now,
    timeoutMs: options.timeoutMs,
    proxyEnv: options.proxyEnv,
  });
}
