/**
 * The token source: OAuth 2.0 client credentials grant through oauth4webapi.
 *
 * @module
 */
import * as oauth from "oauth4webapi";
import type { Config } from "./config.ts";

/** An access token and what is known of its lifetime. */
export interface Token {
  /** The access token itself. Never log it. */
  readonly value: string;
  /** When the token was obtained (ms since the epoch). */
  readonly obtainedAt: number;
  /** `expires_in` of the response, or the JWT `exp` claim, in seconds from `obtainedAt`; undefined if unknown. */
  readonly lifetimeSeconds?: number;
  /** Absolute expiry (ms since the epoch), if known. */
  readonly expiresAt?: number;
  /** Where the lifetime came from. */
  readonly lifetimeSource: "expires_in" | "jwt" | "unknown";
}

/** Codes of {@linkcode TokenError}; callers branch on these. */
export type TokenErrorCode =
  /** The provider answered with an OAuth error body (`error`, `error_description`). */
  | "TOKEN_PROVIDER_ERROR"
  /** The provider answered with a non-2xx status and no OAuth error body. */
  | "TOKEN_HTTP_ERROR"
  /** A 2xx answer that is not a valid token response (not JSON, no `access_token`, ...). */
  | "TOKEN_INVALID_RESPONSE"
  /** The answer was larger than the tool accepts. */
  | "TOKEN_RESPONSE_TOO_LARGE"
  /** No answer within the timeout. */
  | "TOKEN_TIMEOUT"
  /** The request could not be sent (connection refused, DNS, TLS, ...). */
  | "TOKEN_UNREACHABLE"
  /** The caller aborted the request (shutdown). */
  | "TOKEN_ABORTED";

/** A failed token request. Its message never contains the token or the client secret. */
export class TokenError extends Error {
  /** What kind of failure this is. */
  readonly code: TokenErrorCode;
  /** HTTP status of the provider's answer, if there was one. */
  readonly status?: number;
  /** The provider's `error` code, if given. */
  readonly providerError?: string;
  /** The provider's `error_description`, if given. */
  readonly providerDescription?: string;
  /** Milliseconds the provider asked to wait (`Retry-After` on 429/503), if given. */
  readonly retryAfterMs?: number;

  /**
   * @param message Human-readable description.
   * @param options Code and details.
   */
  constructor(
    message: string,
    options: {
      code: TokenErrorCode;
      status?: number;
      providerError?: string;
      providerDescription?: string;
      retryAfterMs?: number;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "TokenError";
    this.code = options.code;
    this.status = options.status;
    this.providerError = options.providerError;
    this.providerDescription = options.providerDescription;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Anything that yields fresh access tokens. */
export interface TokenSource {
  /**
   * Obtains a new access token.
   *
   * @param signal Aborts the request (shutdown).
   * @returns The token.
   * @throws {TokenError} On any failure.
   */
  fetchToken(signal?: AbortSignal): Promise<Token>;
}

/** Options of {@linkcode createClientCredentialsSource}. */
export interface ClientCredentialsOptions {
  /** The provider's token endpoint. `http:` is only for loopback (config validation enforces it). */
  tokenUrl: string;
  /** OAuth client id. */
  clientId: string;
  /** OAuth client secret, or a function returning it (read again for every request). */
  clientSecret: string | (() => string | Promise<string>);
  /** Whole-request timeout in milliseconds, body included. Default 10 000. */
  timeoutMs?: number;
  /** Largest response body accepted, in bytes. Default 1 MiB. */
  maxResponseBytes?: number;
  /** The fetch to use; tests pass their own. */
  fetch?: typeof fetch;
  /** The clock, ms since the epoch. */
  now?: () => number;
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
 * import { parseRetryAfter } from "./oidc.ts";
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
 * import { jwtExpiry } from "./oidc.ts";
 * const payload = btoa(JSON.stringify({ exp: 42 })).replace(/=+$/, "");
 * console.assert(jwtExpiry(`e30.${payload}.sig`) === 42);
 * ```
 */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const claims: unknown = JSON.parse(atob(padded));
    if (claims && typeof claims === "object" && "exp" in claims) {
      const exp = (claims as { exp: unknown }).exp;
      if (typeof exp === "number" && Number.isFinite(exp)) return exp;
    }
  } catch {
    // Not a JWT after all: the lifetime stays unknown.
  }
  return undefined;
}

/** Reads at most `limit` bytes of a body; more is an error, so a huge answer cannot exhaust memory. */
async function readBounded(response: Response, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel();
    throw new TokenError(
      `Token endpoint answered with ${declared} bytes, more than the ${limit} accepted`,
      { code: "TOKEN_RESPONSE_TOO_LARGE", status: response.status },
    );
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body) {
    for await (const chunk of response.body) {
      size += chunk.byteLength;
      if (size > limit) {
        throw new TokenError(
          `Token endpoint answered with more than the ${limit} bytes accepted`,
          { code: "TOKEN_RESPONSE_TOO_LARGE", status: response.status },
        );
      }
      chunks.push(chunk);
    }
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function describeProviderError(status: number, error: string, description?: string): string {
  const detail = description ? `: ${description}` : "";
  return `Token endpoint refused the request with HTTP ${status}, error "${error}"${detail}`;
}

/** Maps whatever oauth4webapi or fetch threw onto a {@linkcode TokenError}, keeping secrets out. */
function toTokenError(err: unknown, status: number | undefined, retryAfterMs: number | undefined) {
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
  const reason = err instanceof Error ? err.message : String(err);
  return new TokenError(`Token endpoint could not be reached: ${reason}`, {
    code: "TOKEN_UNREACHABLE",
  });
}

/**
 * Creates a token source that uses the client credentials grant with `client_secret_post`
 * (client id and secret in the form body, as the original tool did).
 *
 * @param options Endpoint, credentials, limits and test hooks.
 * @returns The token source.
 *
 * @example
 * ```ts ignore
 * import { createClientCredentialsSource } from "./oidc.ts";
 * const source = createClientCredentialsSource({
 *   tokenUrl: "https://auth.example.com/token", clientId: "my-client", clientSecret: "s3cr3t",
 * });
 * const token = await source.fetchToken();
 * ```
 */
export function createClientCredentialsSource(options: ClientCredentialsOptions): TokenSource {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const url = new URL(options.tokenUrl);
  const as: oauth.AuthorizationServer = { issuer: url.origin, token_endpoint: url.href };
  const client: oauth.Client = { client_id: options.clientId };

  return {
    async fetchToken(signal?: AbortSignal): Promise<Token> {
      const timeout = AbortSignal.timeout(timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let status: number | undefined;
      let retryAfterMs: number | undefined;
      const attempt = async () => {
        const secret = typeof options.clientSecret === "function"
          ? await options.clientSecret()
          : options.clientSecret;
        const response = await oauth.clientCredentialsGrantRequest(
          as,
          client,
          oauth.ClientSecretPost(secret),
          new URLSearchParams(),
          {
            signal: combined,
            [oauth.allowInsecureRequests]: url.protocol === "http:",
            // Reads the whole body under the same signal and size bound, so a provider that
            // stalls mid-body or sends megabytes cannot hang or bloat the process.
            [oauth.customFetch]: async (input, init) => {
              const raw = await doFetch(input, init);
              status = raw.status;
              if (raw.status === 429 || raw.status === 503) {
                retryAfterMs = parseRetryAfter(raw.headers.get("retry-after"), now());
              }
              const body = await readBounded(raw, maxBytes);
              return new Response(raw.status === 204 || raw.status === 304 ? null : body, {
                status: raw.status,
                statusText: raw.statusText,
                headers: raw.headers,
              });
            },
          },
        );
        const obtainedAt = now();
        const result = await oauth.processClientCredentialsResponse(as, client, response);
        return withLifetime(result.access_token, result.expires_in, obtainedAt);
      };
      try {
        return await untilAborted(attempt(), combined);
      } catch (err) {
        if (timeout.aborted && !signal?.aborted) {
          throw new TokenError(`Token endpoint did not answer within ${timeoutMs} ms`, {
            code: "TOKEN_TIMEOUT",
          });
        }
        if (signal?.aborted) {
          throw new TokenError("Token request aborted", { code: "TOKEN_ABORTED" });
        }
        throw toTokenError(err, status, retryAfterMs);
      }
    },
  };
}

/** Settles with `work`, or rejects as soon as `signal` aborts, whichever comes first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function withLifetime(value: string, expiresIn: number | undefined, obtainedAt: number): Token {
  if (expiresIn !== undefined && expiresIn > 0) {
    return {
      value,
      obtainedAt,
      lifetimeSeconds: expiresIn,
      expiresAt: obtainedAt + expiresIn * 1000,
      lifetimeSource: "expires_in",
    };
  }
  const exp = jwtExpiry(value);
  if (exp !== undefined) {
    const expiresAt = exp * 1000;
    return {
      value,
      obtainedAt,
      lifetimeSeconds: Math.max(0, (expiresAt - obtainedAt) / 1000),
      expiresAt,
      lifetimeSource: "jwt",
    };
  }
  return { value, obtainedAt, lifetimeSource: "unknown" };
}

/**
 * Builds the token source the configuration asks for.
 *
 * @param oidc The `oidc.*` section of the configuration.
 * @returns The token source.
 *
 * @example
 * ```ts ignore
 * import { tokenSourceFromConfig } from "./oidc.ts";
 * const source = tokenSourceFromConfig(config.oidc);
 * ```
 */
export function tokenSourceFromConfig(oidc: Config["oidc"]): TokenSource {
  return createClientCredentialsSource({
    tokenUrl: oidc.tokenUrl,
    clientId: oidc.clientId,
    clientSecret: oidc.clientSecret,
  });
}
