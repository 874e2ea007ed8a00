/**
 * The error of the token source, in a module of its own so that the modules
 * which read credentials, trust anchors and metadata for it can throw it too.
 *
 * @module
 */
import { CodedError } from "../errors.ts";

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
  | "TOKEN_ABORTED"
  /**
   * The client secret file or the private key file cannot be read, is empty, or holds no
   * usable key (wrong format, public key only, a key that cannot sign with the algorithm);
   * or the service-account token cannot be had (file unreadable or expired, TokenRequest
   * refused) or is for the API server's own audience. Nothing was sent to the provider.
   */
  | "TOKEN_CREDENTIALS"
  /** The CA file cannot be read or holds no usable certificate. Nothing was sent. */
  | "TOKEN_TRUST"
  /**
   * The issuer's metadata could not be used: neither discovery document was found, or it
   * is malformed, names another issuer, or names no usable token endpoint.
   */
  | "TOKEN_DISCOVERY";

/** Options of {@linkcode TokenError}. */
export interface TokenErrorOptions {
  /** What kind of failure this is. */
  code: TokenErrorCode;
  /** HTTP status of the provider's answer, if there was one. */
  status?: number;
  /** The provider's `error` code, if given. */
  providerError?: string;
  /** The provider's `error_description`, if given. */
  providerDescription?: string;
  /** Milliseconds the provider asked to wait (`Retry-After` on 429/503), if given. */
  retryAfterMs?: number;
  /** The underlying error; never one whose text could hold a secret or a token. */
  cause?: unknown;
}

/**
 * A failed token request. Its message never contains the token, the client
 * secret or the private key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TokenError } from "./error.ts";
 *
 * const error = new TokenError("Client secret file \"/run/secret\" is empty", {
 *   code: "TOKEN_CREDENTIALS",
 * });
 * assert.equal(error.code, "TOKEN_CREDENTIALS");
 * ```
 */
export class TokenError extends CodedError<TokenErrorCode> {
  override name = "TokenError";
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
  constructor(message: string, options: TokenErrorOptions) {
    super(message, options.code, { cause: options.cause });
    this.status = options.status;
    this.providerError = options.providerError;
    this.providerDescription = options.providerDescription;
    this.retryAfterMs = options.retryAfterMs;
  }
}
