/**
 * The token source: OAuth 2.0 client credentials through oauth4webapi.
 *
 * Where each part lives:
 * - `source.ts`: the grant, discovery of the token endpoint, limits, error mapping;
 * - `auth.ts`: client authentication material (secret file, private key for `private_key_jwt`);
 * - `trust.ts`: the CA file and the HTTP client that trusts it;
 * - `error.ts`: `TokenError` and its codes.
 *
 * The types it produces (`Token`, `TokenSource`) live in `../token.ts`, which this depends on.
 *
 * @module
 */
export {
  type ClientCredentialsOptions,
  createClientCredentialsSource,
  jwtExpiry,
  parseRetryAfter,
  tokenSourceFromConfig,
  type TokenSourceOptions,
} from "./source.ts";
export { TokenError, type TokenErrorCode, type TokenErrorOptions } from "./error.ts";
export {
  type ClientPrivateKey,
  importPrivateKey,
  readPrivateKeyFile,
  readSecretFile,
} from "./auth.ts";
export { createTrustingClient, readCaCertificates } from "./trust.ts";
