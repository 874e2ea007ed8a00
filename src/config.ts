/**
 * Configuration: one schema table of keys, three sources over built-in
 * defaults (YAML file < `KTR_` environment variables < command-line flags),
 * and validation into a deeply frozen {@linkcode Config}.
 *
 * Every key maps to the three sources the same way: YAML nesting at the dots
 * (`oidc.tokenurl` is `tokenurl` under `oidc`), the environment variable
 * `KTR_` + key in capitals with `.` and `-` turned into `_`
 * (`KTR_OIDC_TOKENURL`), and the flag `--` + key (`--oidc.tokenurl`). Adding
 * a key means adding one entry to {@linkcode KEYS} (and its field to
 * {@linkcode Config}; the compiler insists on both).
 *
 * Nothing here reads `Deno.env` or `Deno.args`: callers pass them in, so the
 * merge is a pure function that tests drive directly.
 *
 * @module
 */

import type { YAMLError } from "yaml";

/** Where a configuration value came from, lowest precedence first. */
export type ConfigSource = "default" | "file" | "env" | "flag";

/** Log levels, named as LogTape names them (`warn` is accepted as input too). */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Log output formats: human-readable text, or one JSON object per line. */
export type LogFormat = "text" | "json";

/**
 * How the client authenticates at the token endpoint (the registered names of
 * RFC 7591): the secret in the form body, the secret in an HTTP Basic header,
 * or a JWT signed with the client's private key (RFC 7523).
 */
export type ClientAuthMethod =
  | "client_secret_post"
  | "client_secret_basic"
  | "private_key_jwt"
  | "workload_identity"
  | "none";

/**
 * The grant of the token request: client credentials (RFC 6749 §4.4), the JWT-bearer grant
 * (RFC 7523 §2.1: the service-account token is the assertion), or token exchange (RFC 8693: the
 * service-account token is the subject token).
 */
export type GrantType = "client_credentials" | "jwt_bearer" | "token_exchange";

/**
 * JWS algorithms a `private_key_jwt` client assertion can be signed with.
 * `EdDSA` and `Ed25519` both sign with an Ed25519 key; they differ only in the
 * `alg` header, since providers know one name or the other.
 */
export type SigningAlgorithm =
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "PS384"
  | "PS512"
  | "ES256"
  | "ES384"
  | "ES512"
  | "EdDSA"
  | "Ed25519";

/**
 * The validated configuration. Field names are camelCase; the external key
 * names (YAML, environment, flags) stay as the contract spells them, so
 * `oidc.tokenurl` becomes `oidc.tokenUrl`.
 *
 * Values are deeply frozen. `JSON.stringify()` and `Deno.inspect()` of the
 * config or of a section show secrets as `[redacted]`, so logging a config by
 * accident does not leak the client secret.
 */
export interface Config {
  /** The Secret that receives the token. */
  readonly secret: {
    /** Name of the Secret (`secret.name`, a DNS-1123 subdomain). */
    readonly name: string;
    /** Namespace of the Secret (`secret.namespace`, a DNS-1123 label). */
    readonly namespace: string;
    /** Key inside the Secret's data that receives the token (`secret.key`). */
    readonly key: string;
  };
  /** Seconds between two refreshes (`interval`). */
  readonly interval: number;
  /** Logging (`log.level`, `log.format`). */
  readonly log: {
    /** Lowest level that is logged. */
    readonly level: LogLevel;
    /** Output format. */
    readonly format: LogFormat;
  };
  /**
   * The OAuth 2.0 client credentials grant. Exactly one of `tokenUrl` and
   * `issuer` is set; with a secret method exactly one of `clientSecret` and
   * `clientSecretFile`, with `private_key_jwt` `privateKeyFile` and neither
   * of those.
   */
  readonly oidc: {
    /** Absolute URL of the token endpoint (`oidc.tokenurl`). */
    readonly tokenUrl?: string;
    /** Issuer whose metadata names the token endpoint (`oidc.issuer`). */
    readonly issuer?: string;
    /**
     * OAuth client id (`oidc.clientid`); only `workload_identity` may leave it unset, when the
     * provider finds the client from the service-account token's issuer and subject.
     */
    readonly clientId?: string;
    /** How the client authenticates (`oidc.authmethod`). */
    readonly authMethod: ClientAuthMethod;
    /** The grant of the token request (`oidc.grant`). */
    readonly grant: GrantType;
    /** OAuth client secret (`oidc.clientsecret`); never print it. */
    readonly clientSecret?: string;
    /** File holding the client secret, read before every request (`oidc.clientsecretfile`). */
    readonly clientSecretFile?: string;
    /** File holding the private key for `private_key_jwt`, PEM or JWK (`oidc.privatekeyfile`). */
    readonly privateKeyFile?: string;
    /** `kid` header of the client assertion (`oidc.keyid`); default: the JWK's `kid`, if any. */
    readonly keyId?: string;
    /** Algorithm of the client assertion (`oidc.keyalg`); default: derived from the key. */
    readonly keyAlg?: SigningAlgorithm;
    /** `aud` claim of the client assertion (`oidc.assertionaudience`); default: the token endpoint. */
    readonly assertionAudience?: string;
    /** Space-separated scopes to request (`oidc.scope`). */
    readonly scope?: string;
    /** `audience` parameter, as Auth0 wants it (`oidc.audience`). */
    readonly audience?: string;
    /** RFC 8707 resource indicators, one `resource` parameter each (`oidc.resource`). */
    readonly resource?: readonly string[];
    /** PEM file of further CA certificates to trust for the provider (`oidc.cafile`). */
    readonly caFile?: string;
    /**
     * The Kubernetes service-account token sent instead of a client secret (`oidc.federation.*`):
     * set when `authMethod` is `workload_identity` or `grant` is not `client_credentials`, with
     * exactly one of `tokenFile` and `audience`.
     */
    readonly federation?: {
      /** Projected token file, read before every request (`oidc.federation.tokenfile`). */
      readonly tokenFile?: string;
      /** Audience of the tokens minted with TokenRequest (`oidc.federation.audience`). */
      readonly audience?: string;
      /** Lifetime of a minted token in seconds, 600 to 3600 (`oidc.federation.expiration`). */
      readonly expiration?: number;
      /** `subject_token_type` of token exchange (`oidc.federation.tokentype`). */
      readonly tokenType?: string;
      /** Further form parameters, `name=value` each (`oidc.federation.params`). */
      readonly params?: readonly string[];
    };
  };
  /** When to renew a token (`renew.percent`): this percentage of its lifetime after it was issued. */
  readonly renew: {
    /** 1 to 99; default 67, two thirds of the lifetime, as cert-manager does. */
    readonly percent: number;
  };
  /** The health and metrics server (`http.address`). */
  readonly http: {
    /** `host:port` or `:port` to listen on, or `off`. */
    readonly address: string;
  };
  /** Refresh once, then exit (`once`). */
  readonly once: boolean;
  /** Check everything, write nothing (`dry-run`). */
  readonly dryRun: boolean;
  /** Kubernetes access. */
  readonly kube: {
    /** Folder holding the in-cluster service account `token`, `ca.crt` and `namespace`. */
    readonly serviceAccountDir: string;
  };
  /** Path of the YAML file that was read, if `--config` was given. */
  readonly configFile?: string;
}

/** Dotted paths of the leaf fields of `T`, e.g. `"oidc.tokenUrl"`. */
type LeafPaths<T, Prefix extends string = ""> = {
  [K in keyof T & string]-?: NonNullable<T[K]> extends Record<string, unknown>
    ? LeafPaths<NonNullable<T[K]>, `${Prefix}${K}.`>
    : `${Prefix}${K}`;
}[keyof T & string];

/** A {@linkcode Config} field that a key of the schema fills. */
export type ConfigField = Exclude<LeafPaths<Config>, "configFile">;

/**
 * How a raw value is read: `string` as written, `integer` as decimal digits,
 * `boolean` as `true`, `false`, `1` or `0`, `list` as items separated by
 * whitespace (in the file also as a YAML list of strings).
 */
export type ValueKind = "string" | "integer" | "boolean" | "list";

/** One configuration key: everything the sources, validation and `--help` need. */
export interface KeyDefinition {
  /** External name, lowercase and dotted: YAML path, flag and environment name derive from it. */
  readonly key: string;
  /** The {@linkcode Config} field that receives the value. */
  readonly field: ConfigField;
  /** How raw strings are read. */
  readonly kind: ValueKind;
  /** One line for `--help`. */
  readonly description: string;
  /** Placeholder for the value in `--help`, e.g. `seconds`. */
  readonly valueName?: string;
  /** Built-in default, written as a user would write it; without one the key is required. */
  readonly default?: string | number | boolean;
  /** Without a default, the key may still be left unset: its field is then `undefined`. */
  readonly optional?: boolean;
  /** The value must never appear in output: not in `--help`, not in error messages. */
  readonly secret?: boolean;
  /** What is allowed, phrased to follow "expected" in error messages. */
  readonly allowed: string;
  /** For enumerations: accepted spellings (matched ignoring case) and the value each one gives. */
  readonly choices?: Readonly<Record<string, string>>;
  /**
   * For enumerations: values a user may well try that are refused on purpose (matched
   * ignoring case), each with the reason, which follows the list of allowed values.
   */
  readonly refused?: Readonly<Record<string, string>>;
  /** Smallest allowed `integer`. */
  readonly min?: number;
  /** Largest allowed `integer`. */
  readonly max?: number;
  /**
   * Further check of a non-empty `string` (of each item of a `list`): `undefined` when the
   * value is fine, else the expectation to report (`""` reports {@linkcode KeyDefinition.allowed}).
   */
  readonly check?: (value: string) => string | undefined;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_DATA_KEY = /^[-._a-zA-Z0-9]+$/;

/** The Kubernetes rule for Secret names (`IsDNS1123Subdomain`). */
function checkSubdomain(value: string): string | undefined {
  return value.length <= 253 && DNS1123_SUBDOMAIN.test(value) ? undefined : "";
}

/** The Kubernetes rule for namespaces (`IsDNS1123Label`). */
function checkLabel(value: string): string | undefined {
  return value.length <= 63 && DNS1123_LABEL.test(value) ? undefined : "";
}

/** The Kubernetes rule for keys of a Secret's data (`IsConfigMapKey`). */
function checkDataKey(value: string): string | undefined {
  const ok = value.length <= 253 && SECRET_DATA_KEY.test(value) && value !== "." &&
    !value.startsWith("..");
  return ok ? undefined : "";
}

/**
 * Loopback hosts, the only ones plain `http:` may reach: nothing else can read the secret on the
 * way. The token source applies the same rule to a token endpoint named by discovery.
 *
 * @param hostname The `hostname` of a parsed URL.
 * @returns True for `localhost`, `127.0.0.0/8` and `[::1]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopbackHost } from "./config.ts";
 *
 * assert.ok(isLoopbackHost(new URL("http://127.0.0.1:8080/token").hostname));
 * assert.ok(!isLoopbackHost(new URL("http://auth.example.com/token").hostname));
 * ```
 */
export function isLoopbackHost(hostname: string): boolean {
  // URL has already normalised the host: IPv4 in dotted decimal, IPv6 in brackets and compressed.
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** The rules of `oidc.tokenurl`, which `oidc.issuer` shares: the client secret goes there. */
function checkEndpointUrl(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "";
  }
  if (url.username !== "" || url.password !== "") {
    return "a URL without a user name or password; set oidc.clientid and oidc.clientsecret instead";
  }
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:") {
    return isLoopbackHost(url.hostname)
      ? undefined
      : "https:, since http: is only allowed to localhost, 127.0.0.0/8 or [::1]";
  }
  return "";
}

/** An issuer identifier has no query and no fragment (RFC 8414, section 2). */
function checkIssuer(value: string): string | undefined {
  const problem = checkEndpointUrl(value);
  if (problem !== undefined) return problem;
  const url = new URL(value);
  return url.search === "" && url.hash === "" && !value.includes("?") && !value.includes("#")
    ? undefined
    : "an issuer URL without a query (?) or fragment (#), exactly as the provider's metadata names it";
}

/** RFC 6749, appendix A.4: scope tokens of printable ASCII except `"` and `\`, one space apart. */
function checkScope(value: string): string | undefined {
  return /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/.test(value) ? undefined : "";
}

/** RFC 8707, section 2: a resource indicator is an absolute URI without a fragment. */
function checkResource(value: string): string | undefined {
  return URL.canParse(value) && !value.includes("#") ? undefined : "";
}

/** An absolute URI, for the `aud` claim of a client assertion. */
function checkAbsoluteUri(value: string): string | undefined {
  return URL.canParse(value) ? undefined : "";
}

/** `host:port`, `[v6]:port` or `:port`; `off` turns the server off. */
/** The `subject_token_type` of token exchange when `oidc.federation.tokentype` is unset. */
export const DEFAULT_SUBJECT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";

/** The lifetime of minted service-account tokens when `oidc.federation.expiration` is unset. */
export const DEFAULT_FEDERATION_EXPIRATION = 600;

function checkFederationAudience(value: string): string | undefined {
  return /\s/.test(value) ? "" : undefined;
}

/** Form parameters the token request sets itself, or that have keys of their own. */
const RESERVED_PARAMETERS = new Set([
  "grant_type",
  "client_id",
  "client_secret",
  "client_assertion",
  "client_assertion_type",
  "assertion",
  "subject_token",
  "subject_token_type",
  "actor_token",
  "actor_token_type",
  "scope",
  "audience",
  "resource",
]);

function checkFormParameter(value: string): string | undefined {
  const match = /^([A-Za-z0-9_.-]+)=(.*)$/.exec(value);
  if (match === null) return "";
  if (RESERVED_PARAMETERS.has(match[1])) {
    return `name=value with a name the tool does not set itself (${
      JSON.stringify(match[1])
    } comes from the other oidc keys)`;
  }
  return undefined;
}

function checkListenAddress(value: string): string | undefined {
  if (value === "off") return undefined;
  const match = value.match(/^(.*):(\d{1,5})$/);
  if (!match || Number(match[2]) > 65535) return "";
  const host = match[1];
  if (host === "" || /^[A-Za-z0-9.-]+$/.test(host) || /^\[[0-9A-Fa-f:.]+\]$/.test(host)) {
    return undefined;
  }
  return "";
}

/**
 * The schema: every configuration key, in `--help` order.
 *
 * @example Look up the environment variable of every key
 * ```ts
 * import assert from "node:assert/strict";
 * import { envName, KEYS } from "./config.ts";
 *
 * assert.ok(KEYS.map((d) => envName(d.key)).includes("KTR_OIDC_TOKENURL"));
 * ```
 */
export const KEYS = [
  {
    key: "secret.name",
    field: "secret.name",
    kind: "string",
    valueName: "name",
    description: "Name of the Secret that receives the token",
    allowed:
      'a DNS-1123 subdomain: 1 to 253 lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
    check: checkSubdomain,
  },
  {
    key: "secret.namespace",
    field: "secret.namespace",
    kind: "string",
    valueName: "namespace",
    description: "Namespace of that Secret",
    allowed:
      'a DNS-1123 label: 1 to 63 lowercase letters, digits and "-", starting and ending with a letter or digit',
    check: checkLabel,
  },
  {
    key: "secret.key",
    field: "secret.key",
    kind: "string",
    valueName: "key",
    default: "token",
    description: "Key inside the Secret's data that receives the token",
    allowed: '1 to 253 letters, digits, "-", "_" and ".", neither "." nor starting with ".."',
    check: checkDataKey,
  },
  {
    key: "interval",
    field: "interval",
    kind: "integer",
    valueName: "seconds",
    default: 500,
    min: 1,
    max: 86400,
    description: "Seconds between two refreshes",
    allowed:
      'a whole number of seconds from 1 to 86400, in digits without sign, unit or leading zero, like "500"',
  },
  {
    key: "log.level",
    field: "log.level",
    kind: "string",
    valueName: "level",
    default: "info",
    description: "Lowest level that is logged",
    allowed: 'one of "debug", "info", "warn" or "error"',
    choices: { debug: "debug", info: "info", warn: "warning", warning: "warning", error: "error" },
  },
  {
    key: "log.format",
    field: "log.format",
    kind: "string",
    valueName: "format",
    default: "text",
    description: "Log format: text, or json for one JSON object per line",
    allowed: '"text" or "json"',
    choices: { text: "text", json: "json" },
  },
  {
    key: "oidc.tokenurl",
    field: "oidc.tokenUrl",
    kind: "string",
    valueName: "url",
    optional: true,
    description:
      "Token endpoint of the identity provider, like https://auth.example.com/token; set this or oidc.issuer",
    allowed: "an absolute https: URL (http: only to localhost, 127.0.0.0/8 or [::1])",
    check: checkEndpointUrl,
  },
  {
    key: "oidc.issuer",
    field: "oidc.issuer",
    kind: "string",
    valueName: "url",
    optional: true,
    description:
      "Issuer whose metadata (OpenID Connect discovery, else RFC 8414) names the token endpoint; set this or oidc.tokenurl",
    allowed: "an absolute https: URL (http: only to localhost, 127.0.0.0/8 or [::1])",
    check: checkIssuer,
  },
  {
    key: "oidc.clientid",
    field: "oidc.clientId",
    kind: "string",
    valueName: "id",
    optional: true,
    description:
      "OAuth client id; with workload_identity it may be left unset when the provider finds the client from the service-account token",
    allowed: "a non-empty client id without leading or trailing whitespace",
  },
  {
    key: "oidc.authmethod",
    field: "oidc.authMethod",
    kind: "string",
    valueName: "method",
    default: "client_secret_post",
    description:
      "Client authentication: client_secret_post (secret in the form body), client_secret_basic (HTTP Basic), private_key_jwt (signed JWT), workload_identity (the pod's service-account token, no secret) or none (public client, with oidc.grant jwt_bearer or token_exchange)",
    allowed:
      '"client_secret_post", "client_secret_basic", "private_key_jwt", "workload_identity" or "none"',
    choices: {
      client_secret_post: "client_secret_post",
      client_secret_basic: "client_secret_basic",
      private_key_jwt: "private_key_jwt",
      workload_identity: "workload_identity",
      none: "none",
    },
    refused: {
      client_secret_jwt:
        '"client_secret_jwt" is not supported; private_key_jwt keeps the secret off the wire too',
      tls_client_auth: '"tls_client_auth" (mutual TLS) is not supported',
      self_signed_tls_client_auth: '"self_signed_tls_client_auth" (mutual TLS) is not supported',
    },
  },
  {
    key: "oidc.grant",
    field: "oidc.grant",
    kind: "string",
    valueName: "grant",
    default: "client_credentials",
    description:
      "Grant of the token request: client_credentials, jwt_bearer (the service-account token as assertion, RFC 7523) or token_exchange (as subject_token, RFC 8693)",
    allowed: '"client_credentials", "jwt_bearer" or "token_exchange"',
    choices: {
      client_credentials: "client_credentials",
      jwt_bearer: "jwt_bearer",
      token_exchange: "token_exchange",
      "urn:ietf:params:oauth:grant-type:jwt-bearer": "jwt_bearer",
      "urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
    },
    refused: {
      authorization_code: "the tool runs unattended, with no user to sign in",
      password: "the tool runs unattended, with no user and no password",
      refresh_token: "refresh tokens are obtained by a sign-in the tool cannot do",
    },
  },
  {
    key: "oidc.clientsecret",
    field: "oidc.clientSecret",
    kind: "string",
    valueName: "secret",
    optional: true,
    secret: true,
    description: "OAuth client secret; set this or oidc.clientsecretfile",
    allowed:
      "a non-empty client secret without leading or trailing whitespace (a trailing newline from a file is a common cause)",
  },
  {
    key: "oidc.clientsecretfile",
    field: "oidc.clientSecretFile",
    kind: "string",
    valueName: "path",
    optional: true,
    description:
      "File holding the client secret, read before every token request so a rotated secret is used without a restart; a trailing newline is ignored",
    allowed: "a non-empty path without leading or trailing whitespace",
  },
  {
    key: "oidc.privatekeyfile",
    field: "oidc.privateKeyFile",
    kind: "string",
    valueName: "path",
    optional: true,
    description:
      "For private_key_jwt: file holding the private key (PEM PKCS#8 or PKCS#1, or a JWK), read before every token request",
    allowed: "a non-empty path without leading or trailing whitespace",
  },
  {
    key: "oidc.keyid",
    field: "oidc.keyId",
    kind: "string",
    valueName: "kid",
    optional: true,
    description:
      "For private_key_jwt: kid header of the client assertion (default: the JWK's kid, else none)",
    allowed: "a non-empty key id without leading or trailing whitespace",
  },
  {
    key: "oidc.keyalg",
    field: "oidc.keyAlg",
    kind: "string",
    valueName: "alg",
    optional: true,
    description:
      "For private_key_jwt: signing algorithm, RS256/384/512, PS256/384/512, ES256/384/512, EdDSA or Ed25519 (default: the JWK's alg, else RS256, ES256/384/512 or EdDSA by key type)",
    allowed:
      '"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA" or "Ed25519"',
    choices: {
      rs256: "RS256",
      rs384: "RS384",
      rs512: "RS512",
      ps256: "PS256",
      ps384: "PS384",
      ps512: "PS512",
      es256: "ES256",
      es384: "ES384",
      es512: "ES512",
      eddsa: "EdDSA",
      ed25519: "Ed25519",
    },
    refused: {
      hs256: '"HS256" is client_secret_jwt, which is not supported',
      hs384: '"HS384" is client_secret_jwt, which is not supported',
      hs512: '"HS512" is client_secret_jwt, which is not supported',
      none: "an assertion must be signed",
    },
  },
  {
    key: "oidc.assertionaudience",
    field: "oidc.assertionAudience",
    kind: "string",
    valueName: "uri",
    optional: true,
    description:
      "For private_key_jwt: aud claim of the client assertion (default: the token endpoint URL; some providers want the issuer)",
    allowed: "an absolute URI, like https://auth.example.com/",
    check: checkAbsoluteUri,
  },
  {
    key: "oidc.scope",
    field: "oidc.scope",
    kind: "string",
    valueName: "scopes",
    optional: true,
    description: 'Scopes to request, separated by spaces, like "api.read api.write"',
    allowed:
      'scope names separated by single spaces, each of printable ASCII characters other than " and \\, like "api.read api.write"',
    check: checkScope,
  },
  {
    key: "oidc.audience",
    field: "oidc.audience",
    kind: "string",
    valueName: "audience",
    optional: true,
    description: "Audience parameter of the token request, as Auth0 asks for it",
    allowed: "a non-empty audience without leading or trailing whitespace",
  },
  {
    key: "oidc.resource",
    field: "oidc.resource",
    kind: "list",
    valueName: "uris",
    optional: true,
    description:
      "RFC 8707 resource indicators, one resource parameter each: absolute URIs separated by spaces (a YAML list in the file)",
    allowed:
      'absolute URIs without a fragment, separated by spaces (or a YAML list), like "https://api.example.com/"',
    check: checkResource,
  },
  {
    key: "oidc.cafile",
    field: "oidc.caFile",
    kind: "string",
    valueName: "path",
    optional: true,
    description:
      "PEM file of CA certificates to trust for the provider besides the built-in ones, read before every token request",
    allowed: "a non-empty path without leading or trailing whitespace",
  },
  {
    key: "oidc.federation.tokenfile",
    field: "oidc.federation.tokenFile",
    kind: "string",
    valueName: "path",
    optional: true,
    description:
      "Service-account token file of a projected volume with the provider's audience, read before every request (the kubelet rotates it); set this or oidc.federation.audience",
    allowed: "a non-empty path without leading or trailing whitespace",
  },
  {
    key: "oidc.federation.audience",
    field: "oidc.federation.audience",
    kind: "string",
    valueName: "audience",
    optional: true,
    description:
      "Audience of a service-account token minted with the TokenRequest API for every token request; set this or oidc.federation.tokenfile",
    allowed:
      "a non-empty audience without whitespace, like api://AzureADTokenExchange; never the API server's own",
    check: checkFederationAudience,
  },
  {
    key: "oidc.federation.expiration",
    field: "oidc.federation.expiration",
    kind: "integer",
    valueName: "seconds",
    optional: true,
    min: 600,
    max: 3600,
    description:
      "Lifetime in seconds of the tokens minted for oidc.federation.audience; 600 when unset",
    allowed: 'a whole number of seconds from 600 to 3600, like "600"',
  },
  {
    key: "oidc.federation.tokentype",
    field: "oidc.federation.tokenType",
    kind: "string",
    valueName: "uri",
    optional: true,
    description:
      `For token_exchange: subject_token_type of the service-account token; ${DEFAULT_SUBJECT_TOKEN_TYPE} when unset`,
    allowed: "an absolute URI, like urn:ietf:params:oauth:token-type:id_token",
    check: checkAbsoluteUri,
  },
  {
    key: "oidc.federation.params",
    field: "oidc.federation.params",
    kind: "list",
    valueName: "name=value",
    optional: true,
    description:
      "Further form parameters of a token request with the service-account token, like connector_id=kubernetes, separated by spaces (a YAML list in the file)",
    allowed:
      'name=value items separated by spaces (or a YAML list), the name of letters, digits, "_", "-" and ".", not one the tool sets itself',
    check: checkFormParameter,
  },
  {
    key: "renew.percent",
    field: "renew.percent",
    kind: "integer",
    valueName: "percent",
    default: 67,
    min: 1,
    max: 99,
    description:
      "Renew a token when this percentage of its lifetime has passed (expires_in, or the JWT exp claim); interval stays the upper bound",
    allowed: 'a whole number from 1 to 99, like "67"',
  },
  {
    key: "http.address",
    field: "http.address",
    kind: "string",
    valueName: "host:port",
    default: ":8080",
    description:
      "Where to serve /healthz, /readyz and /metrics, as host:port or :port (all interfaces); off disables the server",
    allowed:
      '"off", or host:port or :port with a port from 0 to 65535, like ":8080" or "127.0.0.1:8080"',
    check: checkListenAddress,
  },
  {
    key: "once",
    field: "once",
    kind: "boolean",
    default: false,
    description:
      "Refresh once, then exit: 0 on success, 1 on failure (for CronJobs and init containers)",
    allowed: '"true", "false", "1" or "0"',
  },
  {
    key: "dry-run",
    field: "dryRun",
    kind: "boolean",
    default: false,
    description:
      "Validate the configuration, obtain a token, check the Kubernetes permissions, write nothing, then exit",
    allowed: '"true", "false", "1" or "0"',
  },
  {
    key: "kube.serviceaccountdir",
    field: "kube.serviceAccountDir",
    kind: "string",
    valueName: "dir",
    default: "/var/run/secrets/kubernetes.io/serviceaccount",
    description: "Folder with the in-cluster service account token, ca.crt and namespace",
    allowed: "a non-empty path without leading or trailing whitespace",
  },
] as const satisfies readonly KeyDefinition[];

// Fails to compile when a Config field has no key in KEYS.
type UncoveredField = Exclude<ConfigField, (typeof KEYS)[number]["field"]>;
const _everyFieldHasAKey: [UncoveredField] extends [never] ? true : UncoveredField = true;

/**
 * The environment variable of a key: `KTR_` + key in capitals, `.` and `-` as `_`.
 *
 * @param key A key of {@linkcode KEYS}, like `secret.name`.
 * @returns The variable name, like `KTR_SECRET_NAME`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { envName } from "./config.ts";
 *
 * assert.equal(envName("oidc.clientsecret"), "KTR_OIDC_CLIENTSECRET");
 * ```
 */
export function envName(key: string): string {
  return `KTR_${key.toUpperCase().replaceAll(/[.-]/g, "_")}`;
}

/**
 * The command-line flag of a key: `--` + key.
 *
 * @param key A key of {@linkcode KEYS}, like `log.level`.
 * @returns The flag, like `--log.level`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flagName } from "./config.ts";
 *
 * assert.equal(flagName("log.level"), "--log.level");
 * ```
 */
export function flagName(key: string): string {
  return `--${key}`;
}

/** Machine-readable reason of a {@linkcode ConfigError}; branch on this, never on the message. */
export type ConfigErrorCode =
  /** A required key has no value in any source. */
  | "CONFIG_MISSING"
  /** A value is not allowed for its key (including empty and wrongly typed values). */
  | "CONFIG_INVALID"
  /** A YAML key, or a flag, that the tool does not know. */
  | "CONFIG_UNKNOWN_KEY"
  /** The `--config` file cannot be read. */
  | "CONFIG_FILE_UNREADABLE"
  /** The `--config` file is not valid YAML. */
  | "CONFIG_FILE_SYNTAX"
  /** The command line has something that is not a flag, like a positional argument. */
  | "CONFIG_USAGE"
  /**
   * Keys that exclude each other are both set (`oidc.tokenurl` and `oidc.issuer`), or a
   * key is set that the rest of the configuration does not use.
   */
  | "CONFIG_CONFLICT";

/** Options of {@linkcode ConfigError}. */
export interface ConfigErrorOptions extends ErrorOptions {
  /** The reason. */
  code: ConfigErrorCode;
  /** The key concerned, dotted (an unknown key as it was written). */
  key?: string;
  /** The source the offending value came from. */
  source?: ConfigSource;
  /** 1-based line in the config file. */
  line?: number;
  /** 1-based column in the config file. */
  column?: number;
  /** Further problems found in the same pass. */
  others?: readonly ConfigError[];
}

/**
 * A configuration problem. The message is one line that names the key and the
 * source and says what is allowed; it never contains a secret value. Every
 * ConfigError means exit code 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError, resolveConfig } from "./config.ts";
 *
 * try {
 *   resolveConfig({ env: {} });
 *   assert.fail("expected a ConfigError");
 * } catch (error) {
 *   assert.ok(error instanceof ConfigError);
 *   assert.equal(error.code, "CONFIG_MISSING");
 *   assert.equal(error.key, "secret.name");
 * }
 * ```
 */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** The reason. */
  readonly code: ConfigErrorCode;
  /** The key concerned, dotted (an unknown key as it was written). */
  readonly key?: string;
  /** The source the offending value came from. */
  readonly source?: ConfigSource;
  /** 1-based line in the config file. */
  readonly line?: number;
  /** 1-based column in the config file. */
  readonly column?: number;
  /** Further problems found in the same pass, so all of them can be reported at once. */
  readonly others: readonly ConfigError[];

  /**
   * @param message One line: starts with a capital, quotes the value, no trailing period.
   * @param options The code and what the problem is about.
   */
  constructor(message: string, options: ConfigErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    this.key = options.key;
    this.source = options.source;
    this.line = options.line;
    this.column = options.column;
    this.others = options.others ?? [];
  }
}

/** A value read from a source: a typed value, or what is wrong with the raw one. */
export type ParsedValue =
  | { readonly ok: true; readonly value: string | number | boolean | readonly string[] }
  | { readonly ok: false; readonly problem: string };

function describeType(raw: unknown): string {
  if (raw === null) return "null";
  if (Array.isArray(raw)) return "a list";
  if (typeof raw === "object") return "a mapping";
  return `a ${typeof raw}`;
}

/**
 * Reads one raw value as the given key wants it. Strings from the
 * environment and flags are read strictly (`10s`, `-5`, `1e3`, `` are not
 * integers). A `boolean` flag given without a value is `true`.
 *
 * @param definition The key.
 * @param raw The raw value: a string from any source, or a number or boolean
 *   from a parsed file or a bare flag.
 * @returns The typed value, or a problem phrased to follow "expected".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KEYS, parseKeyValue } from "./config.ts";
 *
 * const interval = KEYS.find((d) => d.key === "interval")!;
 * assert.deepEqual(parseKeyValue(interval, "30"), { ok: true, value: 30 });
 * assert.equal(parseKeyValue(interval, "10s").ok, false);
 * ```
 */
export function parseKeyValue(definition: KeyDefinition, raw: unknown): ParsedValue {
  const invalid = (detail = ""): ParsedValue => ({
    ok: false,
    problem: detail === "" ? definition.allowed : detail,
  });
  switch (definition.kind) {
    case "boolean": {
      if (typeof raw === "boolean") return { ok: true, value: raw };
      if (raw === "true" || raw === "1") return { ok: true, value: true };
      if (raw === "false" || raw === "0") return { ok: true, value: false };
      return invalid();
    }
    case "integer": {
      let value: number;
      if (typeof raw === "number") {
        value = raw;
      } else if (typeof raw === "string" && /^(0|[1-9][0-9]*)$/.test(raw)) {
        // Leading zeros are refused: some tools read "010" as octal, so it is ambiguous.
        value = Number(raw);
      } else {
        return invalid(
          typeof raw === "string" ? "" : `${definition.allowed}, got ${describeType(raw)}`,
        );
      }
      if (!Number.isSafeInteger(value)) return invalid();
      if (definition.min !== undefined && value < definition.min) return invalid();
      if (definition.max !== undefined && value > definition.max) return invalid();
      return { ok: true, value };
    }
    case "string": {
      if (typeof raw !== "string") {
        if (raw === true) return invalid(`a value, since the flag was given without one`);
        return invalid(`${definition.allowed}, got ${describeType(raw)}`);
      }
      if (definition.choices !== undefined) {
        const choice = Object.entries(definition.choices).find(
          ([spelling]) => spelling === raw.toLowerCase(),
        );
        if (choice !== undefined) return { ok: true, value: choice[1] };
        const reason = definition.refused?.[raw.toLowerCase()];
        return invalid(reason === undefined ? "" : `${definition.allowed}; ${reason}`);
      }
      if (raw === "" || raw.trim() !== raw) return invalid();
      const detail = definition.check?.(raw);
      return detail === undefined ? { ok: true, value: raw } : invalid(detail);
    }
    case "list": {
      let items: readonly unknown[];
      if (typeof raw === "string") {
        if (raw === "" || raw.trim() !== raw) return invalid();
        items = raw.split(/\s+/);
      } else if (Array.isArray(raw) && raw.length > 0) {
        items = raw;
      } else {
        if (raw === true) return invalid(`a value, since the flag was given without one`);
        return invalid(
          `${definition.allowed}, got ${Array.isArray(raw) ? "an empty list" : describeType(raw)}`,
        );
      }
      for (const item of items) {
        if (typeof item !== "string" || item === "" || /\s/.test(item)) {
          return invalid(
            `${definition.allowed}, got the list item ${
              typeof item === "string" ? quote(item) : describeType(item)
            }`,
          );
        }
        const detail = definition.check?.(item);
        if (detail !== undefined) {
          return invalid(`${detail === "" ? definition.allowed : detail}, got ${quote(item)}`);
        }
      }
      return { ok: true, value: Object.freeze([...items as string[]]) };
    }
  }
}

/** A URL's password must not reach a message even when the URL itself is wrong. */
function hideUrlPassword(value: unknown): unknown {
  if (typeof value !== "string" || !URL.canParse(value)) return value;
  const url = new URL(value);
  if (url.password === "") return value;
  url.password = "***";
  return url.href;
}

/** Keeps messages one line and short, whatever the value holds. */
function quote(value: unknown): string {
  const text = JSON.stringify(typeof value === "string" ? value : String(value));
  return text.length > 80 ? `${text.slice(0, 76)}…"` : text;
}

function describeSource(
  source: ConfigSource,
  definition: KeyDefinition,
  filePath: string | undefined,
): string {
  switch (source) {
    case "flag":
      return `flag ${flagName(definition.key)}`;
    case "env":
      return `environment variable ${envName(definition.key)}`;
    case "file":
      return filePath === undefined ? "the config file" : `config file ${quote(filePath)}`;
    case "default":
      return "the built-in default";
  }
}

/** What a caller knows at start-up, before anything is merged. */
export interface ConfigInput {
  /** The parsed YAML of the `--config` file, still unchecked; `undefined` when no file was given. */
  readonly file?: unknown;
  /** Path of that file, for messages and {@linkcode Config.configFile}. */
  readonly filePath?: string;
  /** The process environment; only the `KTR_` names of the keys are read. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Flag values by key (`"secret.name"`), as given on the command line. */
  readonly flags?: Readonly<Record<string, string | boolean | undefined>>;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

/** Every dotted prefix of a key that is a YAML section, like `oidc`. */
function sectionsOf(keys: readonly string[]): Set<string> {
  const sections = new Set<string>();
  for (const key of keys) {
    const parts = key.split(".");
    for (let i = 1; i < parts.length; i++) sections.add(parts.slice(0, i).join("."));
  }
  return sections;
}

/** Reads the values out of the parsed file, checking its shape and naming unknown keys. */
function readFileValues(
  file: unknown,
  filePath: string | undefined,
  errors: ConfigError[],
): Map<string, unknown> {
  const values = new Map<string, unknown>();
  const where = filePath === undefined ? "the config file" : `config file ${quote(filePath)}`;
  const known: string[] = KEYS.map((d) => d.key);
  const sections = sectionsOf(known);
  const childrenOf = (section: string) =>
    [...known, ...sections].filter((name) =>
      name.startsWith(`${section}.`) && !name.slice(section.length + 1).includes(".")
    ).map((name) => name.slice(section.length + 1));

  // An empty or comment-only file is a document without keys, not an error.
  if (file === undefined || file === null) return values;
  if (!isMapping(file)) {
    errors.push(
      new ConfigError(
        `The content of ${where} is ${
          describeType(file)
        }: expected a mapping of keys like "secret:" and "oidc:"`,
        { code: "CONFIG_INVALID", source: "file" },
      ),
    );
    return values;
  }

  const walk = (mapping: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(mapping)) {
      const key = prefix === "" ? name : `${prefix}.${name}`;
      if (name.includes(".")) {
        // One layout only: a flat "secret.name:" next to a nested one would be ambiguous.
        const [section, ...rest] = key.split(".");
        const nested = known.includes(key) || sections.has(key);
        errors.push(
          new ConfigError(
            `Unknown key ${quote(key)} in ${where}: ${
              nested
                ? `nest it instead, as "${rest.join(".")}:" under "${section}:"`
                : "keys are nested mappings, not dotted names"
            }`,
            { code: "CONFIG_UNKNOWN_KEY", key, source: "file" },
          ),
        );
      } else if (known.includes(key)) {
        // An empty YAML value (`key:`, `~`, `null`) sets nothing; `""` is the empty string.
        if (value !== null) values.set(key, value);
      } else if (sections.has(key)) {
        if (value === null) continue;
        if (isMapping(value)) {
          walk(value, key);
        } else {
          errors.push(
            new ConfigError(
              `Invalid value for ${key} in ${where}: expected a mapping with the keys ${
                childrenOf(key).join(", ")
              }, got ${describeType(value)}`,
              { code: "CONFIG_INVALID", key, source: "file" },
            ),
          );
        }
      } else {
        const suggestion = closestMatch(key, [...known, ...sections]);
        const hint = suggestion === undefined
          ? `known keys${prefix === "" ? "" : ` under ${prefix}`} are ${
            (prefix === "" ? [...new Set(known.map((k) => k.split(".")[0]))] : childrenOf(prefix))
              .join(", ")
          }`
          : `did you mean ${quote(suggestion)}?`;
        errors.push(
          new ConfigError(`Unknown key ${quote(key)} in ${where}: ${hint}`, {
            code: "CONFIG_UNKNOWN_KEY",
            key,
            source: "file",
          }),
        );
      }
    }
  };
  walk(file, "");
  return values;
}

const REDACTED = "[redacted]";

/** A plain copy with secret fields replaced, for JSON and inspection. */
function redactedCopy(node: Record<string, unknown>, prefix: string): Record<string, unknown> {
  const secretFields: readonly string[] = KEYS.filter((d: KeyDefinition) => d.secret).map((d) =>
    d.field
  );
  const copy: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(node)) {
    const field = prefix === "" ? name : `${prefix}.${name}`;
    if (secretFields.includes(field)) copy[name] = REDACTED;
    else if (isMapping(value)) copy[name] = redactedCopy(value, field);
    else copy[name] = value;
  }
  return copy;
}

/** Freezes the tree; every object gets hooks so that printing it hides secrets. */
function freezeConfig(node: Record<string, unknown>, prefix = ""): void {
  for (const [name, value] of Object.entries(node)) {
    if (isMapping(value)) freezeConfig(value, prefix === "" ? name : `${prefix}.${name}`);
  }
  const hidden = { enumerable: false, configurable: false, writable: false };
  Object.defineProperties(node, {
    toJSON: { ...hidden, value: () => redactedCopy(node, prefix) },
    [Symbol.for("Deno.customInspect")]: {
      ...hidden,
      value: (inspect: (value: unknown, options: unknown) => string, options: unknown) =>
        inspect(redactedCopy(node, prefix), options),
    },
    [Symbol.for("nodejs.util.inspect.custom")]: {
      ...hidden,
      value: (
        _depth: number,
        options: unknown,
        inspect: (value: unknown, options: unknown) => string,
      ) => inspect(redactedCopy(node, prefix), options),
    },
  });
  Object.freeze(node);
}

/** A key's valid value and where it came from. */
interface Setting {
  readonly definition: KeyDefinition;
  readonly source: ConfigSource;
  readonly value: string | number | boolean | readonly string[];
}

/** The keys that only `private_key_jwt` uses. */
const PRIVATE_KEY_JWT_KEYS = [
  "oidc.privatekeyfile",
  "oidc.keyid",
  "oidc.keyalg",
  "oidc.assertionaudience",
] as const;

/** The keys of the service-account token source. */
const FEDERATION_KEYS = [
  "oidc.federation.tokenfile",
  "oidc.federation.audience",
  "oidc.federation.expiration",
  "oidc.federation.tokentype",
  "oidc.federation.params",
] as const;

/**
 * The rules of the service-account token (workload identity federation): which grant goes with
 * which client authentication, the client id that only `workload_identity` may leave out, and
 * exactly one place the token comes from (a projected file, or TokenRequest for an audience).
 */
function checkFederation(
  settings: ReadonlyMap<string, Setting>,
  invalid: ReadonlySet<string>,
  describe: (key: string) => string,
  howToSet: (key: string) => string,
): ConfigError[] {
  const errors: ConfigError[] = [];
  const method = invalid.has("oidc.authmethod")
    ? undefined
    : settings.get("oidc.authmethod")?.value;
  const grant = invalid.has("oidc.grant") ? undefined : settings.get("oidc.grant")?.value;
  const conflict = (key: string, message: string) =>
    new ConfigError(message, { code: "CONFIG_CONFLICT", key, source: settings.get(key)!.source });

  if (
    !settings.has("oidc.clientid") && !invalid.has("oidc.clientid") &&
    method !== "workload_identity"
  ) {
    errors.push(
      new ConfigError(
        `Missing required key oidc.clientid: set it with ${
          howToSet("oidc.clientid")
        } in the --config file`,
        { code: "CONFIG_MISSING", key: "oidc.clientid" },
      ),
    );
  }

  if (method !== undefined && grant !== undefined) {
    if (grant === "client_credentials" && method === "none") {
      errors.push(
        conflict(
          "oidc.authmethod",
          `Key ${describe("oidc.authmethod")} does not go with ${
            describe("oidc.grant")
          }: the client credentials grant is only for clients that authenticate; set oidc.authmethod to workload_identity to authenticate with the service-account token, or oidc.grant to jwt_bearer or token_exchange`,
        ),
      );
    }
    if (grant !== "client_credentials" && method === "workload_identity") {
      errors.push(
        conflict(
          "oidc.authmethod",
          `Key ${describe("oidc.authmethod")} does not go with ${
            describe("oidc.grant")
          }: workload_identity is the client authentication of the client_credentials grant, and with ${grant} the service-account token travels in the grant itself; set oidc.authmethod to none for a public client, or to the method the client is registered with`,
        ),
      );
    }
  }

  // Whether a service-account token is sent; undefined while an invalid key leaves it open.
  const federated = method === "workload_identity" ||
      (grant !== undefined && grant !== "client_credentials")
    ? true
    : method === undefined || grant === undefined
    ? undefined
    : false;
  if (federated === undefined) return errors;
  if (!federated) {
    for (const key of FEDERATION_KEYS) {
      if (!settings.has(key)) continue;
      errors.push(
        conflict(
          key,
          `Key ${describe(key)} is only used when a service-account token is sent, not with ${
            describe("oidc.authmethod")
          } and ${
            describe("oidc.grant")
          }: set oidc.authmethod to workload_identity, or oidc.grant to jwt_bearer or token_exchange; or remove ${key}`,
        ),
      );
    }
    return errors;
  }

  const why = method === "workload_identity" ? describe("oidc.authmethod") : describe("oidc.grant");
  const file = "oidc.federation.tokenfile";
  const audience = "oidc.federation.audience";
  if (!invalid.has(file) && !invalid.has(audience)) {
    if (settings.has(file) && settings.has(audience)) {
      errors.push(
        conflict(
          audience,
          `Conflicting keys ${describe(file)} and ${
            describe(audience)
          }: set only one; the first reads a projected service-account token, the second mints one with the TokenRequest API`,
        ),
      );
    } else if (!settings.has(file) && !settings.has(audience)) {
      errors.push(
        new ConfigError(
          `Missing required key oidc.federation.tokenfile or oidc.federation.audience for ${why}: set the path of a projected service-account token with ${
            howToSet(file)
          }, or the audience of tokens to mint with the TokenRequest API with ${
            howToSet(audience)
          }`,
          { code: "CONFIG_MISSING", key: file },
        ),
      );
    }
  }
  if (settings.has("oidc.federation.expiration") && settings.has(file)) {
    errors.push(
      conflict(
        "oidc.federation.expiration",
        `Key ${
          describe("oidc.federation.expiration")
        } is only used with oidc.federation.audience, not with ${
          describe(file)
        }, whose lifetime is the expirationSeconds of the projected volume: remove oidc.federation.expiration`,
      ),
    );
  }
  if (
    settings.has("oidc.federation.tokentype") && grant !== undefined && grant !== "token_exchange"
  ) {
    errors.push(
      conflict(
        "oidc.federation.tokentype",
        `Key ${
          describe("oidc.federation.tokentype")
        } is only used with oidc.grant "token_exchange", not with ${
          describe("oidc.grant")
        }: set oidc.grant to token_exchange, or remove oidc.federation.tokentype`,
      ),
    );
  }
  return errors;
}

/**
 * The rules that span keys: where tokens come from (`oidc.tokenurl` or `oidc.issuer`) and
 * what authenticates the client (a secret, a secret file or a private key, as
 * `oidc.authmethod` asks). A rule is skipped when one of its keys is invalid: that error
 * is reported already, and a guess about the intended value would only add noise.
 */
function checkCombinations(
  settings: ReadonlyMap<string, Setting>,
  invalid: ReadonlySet<string>,
  filePath: string | undefined,
): ConfigError[] {
  const errors: ConfigError[] = [];
  const describe = (key: string) => {
    const { definition, source, value } = settings.get(key)!;
    // Secrets are never shown; lists are shown as they are written in the environment.
    const shown = definition.secret
      ? ""
      : ` ${quote(Array.isArray(value) ? value.join(" ") : value)}`;
    return `${key}${shown} from ${describeSource(source, definition, filePath)}`;
  };
  const howToSet = (key: string) => `${flagName(key)}, ${envName(key)} or ${quote(key)}`;
  const conflict = (first: string, second: string, reason: string) =>
    new ConfigError(
      `Conflicting keys ${describe(first)} and ${describe(second)}: set only one; ${reason}`,
      { code: "CONFIG_CONFLICT", key: second, source: settings.get(second)!.source },
    );

  if (!invalid.has("oidc.tokenurl") && !invalid.has("oidc.issuer")) {
    if (settings.has("oidc.tokenurl") && settings.has("oidc.issuer")) {
      errors.push(
        conflict(
          "oidc.tokenurl",
          "oidc.issuer",
          "oidc.issuer finds the token endpoint in the issuer's metadata, oidc.tokenurl names it directly",
        ),
      );
    } else if (!settings.has("oidc.tokenurl") && !settings.has("oidc.issuer")) {
      errors.push(
        new ConfigError(
          `Missing required key oidc.tokenurl or oidc.issuer: set the token endpoint with ${
            howToSet("oidc.tokenurl")
          } in the --config file, or the issuer whose metadata names it with ${
            howToSet("oidc.issuer")
          }`,
          { code: "CONFIG_MISSING", key: "oidc.tokenurl" },
        ),
      );
    }
  }

  errors.push(...checkFederation(settings, invalid, describe, howToSet));

  if (invalid.has("oidc.authmethod")) return errors;
  const method = settings.get("oidc.authmethod")?.value;
  const secretKeys = ["oidc.clientsecret", "oidc.clientsecretfile"] as const;
  if (method === "workload_identity" || method === "none") {
    // Neither has a credential of its own: a secret or key set anyway is a leftover that would
    // otherwise lie unused next to a configuration that looks secretless.
    for (const key of [...secretKeys, ...PRIVATE_KEY_JWT_KEYS]) {
      if (!settings.has(key)) continue;
      errors.push(
        new ConfigError(
          `Key ${describe(key)} is not used with ${describe("oidc.authmethod")}, which ${
            method === "none"
              ? "sends only the client id (a public client)"
              : "authenticates with the service-account token"
          }: remove ${key}`,
          { code: "CONFIG_CONFLICT", key, source: settings.get(key)!.source },
        ),
      );
    }
    return errors;
  }
  if (method === "private_key_jwt") {
    for (const key of secretKeys) {
      if (!settings.has(key)) continue;
      errors.push(
        new ConfigError(
          `Key ${describe(key)} is not used with ${
            describe("oidc.authmethod")
          }, which signs with oidc.privatekeyfile instead: remove ${key}, or set oidc.authmethod to client_secret_post or client_secret_basic`,
          { code: "CONFIG_CONFLICT", key, source: settings.get(key)!.source },
        ),
      );
    }
    if (!settings.has("oidc.privatekeyfile") && !invalid.has("oidc.privatekeyfile")) {
      errors.push(
        new ConfigError(
          `Missing required key oidc.privatekeyfile for ${
            describe("oidc.authmethod")
          }: set it with ${howToSet("oidc.privatekeyfile")} in the --config file`,
          { code: "CONFIG_MISSING", key: "oidc.privatekeyfile" },
        ),
      );
    }
    return errors;
  }

  for (const key of PRIVATE_KEY_JWT_KEYS) {
    if (!settings.has(key)) continue;
    errors.push(
      new ConfigError(
        `Key ${describe(key)} is only used with oidc.authmethod "private_key_jwt", not with ${
          describe("oidc.authmethod")
        }: set oidc.authmethod to private_key_jwt, or remove ${key}`,
        { code: "CONFIG_CONFLICT", key, source: settings.get(key)!.source },
      ),
    );
  }
  if (secretKeys.some((key) => invalid.has(key))) return errors;
  if (settings.has("oidc.clientsecret") && settings.has("oidc.clientsecretfile")) {
    errors.push(
      conflict(
        "oidc.clientsecret",
        "oidc.clientsecretfile",
        "both give the client secret (the file is read again before every token request)",
      ),
    );
  } else if (!settings.has("oidc.clientsecret") && !settings.has("oidc.clientsecretfile")) {
    errors.push(
      new ConfigError(
        `Missing required key oidc.clientsecret or oidc.clientsecretfile for ${
          describe("oidc.authmethod")
        }: set the secret with ${
          howToSet("oidc.clientsecret")
        } in the --config file, or the path of a file holding it with ${
          howToSet("oidc.clientsecretfile")
        }; or set oidc.authmethod to private_key_jwt to sign with a private key instead`,
        { code: "CONFIG_MISSING", key: "oidc.clientsecret" },
      ),
    );
  }
  return errors;
}

/**
 * Merges defaults < file < environment < flags and validates the result.
 * A value set in a higher source wins even when it is empty or equals the
 * default; an empty string is then checked like any other value, and every
 * key of the schema refuses it, so the error names the source that set it.
 *
 * @param input The parsed file (if any), the environment and the flags.
 * @returns The validated, deeply frozen configuration.
 * @throws {ConfigError} On the first problem, in schema order, with the rest
 *   in {@linkcode ConfigError.others}: unknown or misplaced file keys first,
 *   then missing (`CONFIG_MISSING`), invalid (`CONFIG_INVALID`) and
 *   conflicting (`CONFIG_CONFLICT`) values. Exactly one of `oidc.tokenurl` and
 *   `oidc.issuer` must be set; with a secret method exactly one of
 *   `oidc.clientsecret` and `oidc.clientsecretfile`; with `private_key_jwt`
 *   `oidc.privatekeyfile` and neither of those; the other `private_key_jwt`
 *   keys only with it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 *
 * const config = resolveConfig({
 *   file: { secret: { name: "my-token", namespace: "default" }, interval: "60" },
 *   env: { KTR_OIDC_TOKENURL: "https://auth.example.com/token", KTR_OIDC_CLIENTID: "app" },
 *   flags: { "oidc.clientsecret": "s3cr3t", interval: "30" },
 * });
 * assert.equal(config.interval, 30);
 * assert.equal(config.secret.key, "token");
 * assert.equal(config.oidc.tokenUrl, "https://auth.example.com/token");
 * ```
 */
export function resolveConfig(input: ConfigInput): Config {
  const { filePath, env = {}, flags = {} } = input;
  const errors: ConfigError[] = [];
  const fileValues = readFileValues(input.file, filePath, errors);

  const knownFlags: readonly string[] = KEYS.map((d) => d.key);
  for (const name of Object.keys(flags)) {
    if (!knownFlags.includes(name)) {
      const suggestion = closestMatch(name, knownFlags);
      errors.push(
        new ConfigError(
          `Unknown flag ${quote(flagName(name))}: ${
            suggestion === undefined
              ? "run with --help to list the flags"
              : `did you mean ${quote(flagName(suggestion))}?`
          }`,
          { code: "CONFIG_UNKNOWN_KEY", key: name, source: "flag" },
        ),
      );
    }
  }

  const root: Record<string, unknown> = {};
  const settings = new Map<string, Setting>();
  const invalid = new Set<string>();
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const { key } = definition;
    const candidates: [ConfigSource, unknown][] = [
      ["flag", flags[key]],
      ["env", env[envName(key)]],
      ["file", fileValues.get(key)],
      ["default", definition.default],
    ];
    const found = candidates.find(([, raw]) => raw !== undefined);
    if (found === undefined) {
      if (definition.optional) continue;
      errors.push(
        new ConfigError(
          `Missing required key ${key}: set it with ${flagName(key)}, ${envName(key)} or ${
            quote(key)
          } in the --config file`,
          { code: "CONFIG_MISSING", key },
        ),
      );
      continue;
    }
    const [source, raw] = found;
    const parsed = parseKeyValue(definition, raw);
    if (!parsed.ok) {
      // Secrets, and values too big or too odd to quote usefully, are described instead.
      const value = definition.secret || typeof raw === "object" || typeof raw === "boolean"
        ? ""
        : ` ${quote(hideUrlPassword(raw))}`;
      errors.push(
        new ConfigError(
          `Invalid value${value} for ${key} from ${
            describeSource(source, definition, filePath)
          }: expected ${parsed.problem}`,
          { code: "CONFIG_INVALID", key, source },
        ),
      );
      invalid.add(key);
      continue;
    }
    settings.set(key, { definition, source, value: parsed.value });
    const path = definition.field.split(".");
    let node = root;
    for (const part of path.slice(0, -1)) {
      node = (node[part] ??= {}) as Record<string, unknown>;
    }
    node[path[path.length - 1]] = parsed.value;
  }

  errors.push(...checkCombinations(settings, invalid, filePath));

  if (errors.length > 0) {
    // Problems with a key of the schema are reported in schema order, whichever check found
    // them; unknown keys and a malformed file come first, as they may explain the rest.
    const order: readonly string[] = KEYS.map((d) => d.key);
    const rank = (error: ConfigError) =>
      error.code === "CONFIG_UNKNOWN_KEY" || error.key === undefined || !order.includes(error.key)
        ? -1
        : order.indexOf(error.key);
    errors.sort((a, b) => rank(a) - rank(b));
    const [first, ...others] = errors;
    throw new ConfigError(first.message, {
      code: first.code,
      key: first.key,
      source: first.source,
      others,
    });
  }
  if (filePath !== undefined) root.configFile = filePath;
  freezeConfig(root);
  return root as unknown as Config;
}

/**
 * Warnings for `KTR_` environment variables that no key reads, each naming
 * the closest valid name: a misspelt variable must not go unnoticed, yet it
 * is no reason to refuse to start.
 *
 * @param env The process environment.
 * @returns One message per unknown variable, sorted; never a value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { envWarnings } from "./config.ts";
 *
 * assert.deepEqual(envWarnings({ KTR_SECRETNAME: "x", HOME: "/root" }), [
 *   'Ignoring unknown environment variable KTR_SECRETNAME: did you mean KTR_SECRET_NAME?',
 * ]);
 * ```
 */
export function envWarnings(env: Readonly<Record<string, string | undefined>>): string[] {
  const known: readonly string[] = KEYS.map((d) => envName(d.key));
  return Object.keys(env)
    .filter((name) => name.startsWith("KTR_") && !known.includes(name))
    .sort()
    .map((name) => {
      const suggestion = closestMatch(name, known);
      return `Ignoring unknown environment variable ${name}: ${
        suggestion === undefined
          ? "no configuration key reads it (run with --help to list them)"
          : `did you mean ${suggestion}?`
      }`;
    });
}

/** Optimal string alignment distance: edits, with a swap of neighbours counting as one. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate a misspelt name most likely meant, for "did you mean" hints:
 * the same name ignoring case and separators (`clientId`, `KTR_SECRETNAME`),
 * else one within a few typing errors, else the only one ending in the same
 * word (`tokenurl` for `oidc.tokenurl`).
 *
 * @param name The unknown name.
 * @param candidates The valid names.
 * @returns The best candidate, or `undefined` when none is close.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closestMatch } from "./config.ts";
 *
 * assert.equal(closestMatch("oidc.clientId", ["oidc.clientid", "oidc.tokenurl"]), "oidc.clientid");
 * assert.equal(closestMatch("colour", ["oidc.clientid"]), undefined);
 * ```
 */
export function closestMatch(name: string, candidates: readonly string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replaceAll(/[^a-z0-9]/g, "");
  const same = candidates.find((c) => squash(c) === squash(name));
  if (same !== undefined) return same;

  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 4))) return best;

  const lastWord = (s: string) => squash(s.split(/[._-]/).filter(Boolean).at(-1) ?? "");
  const sameEnding = candidates.filter((c) => lastWord(c) === lastWord(name));
  return sameEnding.length === 1 ? sameEnding[0] : undefined;
}

/**
 * Environment variables that the `yaml` package reads while parsing (its
 * debug switches). A process whose env permission does not cover them cannot
 * load a `--config` file; add them to the allowed variables.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { YAML_PARSER_ENV } from "./config.ts";
 *
 * assert.ok(YAML_PARSER_ENV.includes("LOG_TOKENS"));
 * ```
 */
export const YAML_PARSER_ENV: readonly string[] = ["LOG_TOKENS", "LOG_STREAM"];

/** Options of {@linkcode loadConfigFile}. */
export interface LoadConfigFileOptions {
  /** Reads a whole file as UTF-8; defaults to `Deno.readTextFile`. */
  readTextFile?: (path: string) => Promise<string>;
}

/**
 * Why a file could not be read, in words that fit after a colon: "no such
 * file", "permission denied", ... The error's own text is used only for
 * unusual failures; it names the path at most, never the content.
 *
 * @param error What `Deno.readTextFile` (or a stand-in) threw.
 * @returns A short reason without a trailing period.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeReadError } from "./config.ts";
 *
 * assert.equal(describeReadError(new Deno.errors.NotFound("x")), "no such file");
 * ```
 */
export function describeReadError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) {
    return "read access was not granted (run with --allow-read)";
  }
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\.$/, "");
}

/**
 * Reads and parses the `--config` YAML file. Every scalar is kept as the
 * string it is written as (`0123` stays `"0123"`, `1e3` stays `"1e3"`), so
 * file values are read exactly like environment values; empty values, `~`
 * and `null` become `null`, which means "not set". The shape is checked
 * later, by {@linkcode resolveConfig}.
 *
 * @param path The file path, as given.
 * @param options How to read the file.
 * @returns The parsed document: `null` when empty, else whatever the YAML holds.
 * @throws {ConfigError} `CONFIG_FILE_UNREADABLE` when the file cannot be read;
 *   `CONFIG_FILE_SYNTAX` with `line` and `column` when it is not valid YAML.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadConfigFile } from "./config.ts";
 *
 * const file = await loadConfigFile("ktr.yaml", {
 *   readTextFile: () => Promise.resolve("interval: 60\nsecret:\n  name: my-token\n"),
 * });
 * assert.deepEqual(file, { interval: "60", secret: { name: "my-token" } });
 * ```
 */
export async function loadConfigFile(
  path: string,
  options: LoadConfigFileOptions = {},
): Promise<unknown> {
  const { readTextFile = Deno.readTextFile } = options;
  let text: string;
  try {
    text = await readTextFile(path);
  } catch (error) {
    throw new ConfigError(`Cannot read config file ${quote(path)}: ${describeReadError(error)}`, {
      code: "CONFIG_FILE_UNREADABLE",
      source: "file",
      cause: error,
    });
  }

  // Loaded on demand: most deployments configure through the environment alone.
  const { LineCounter, parseDocument } = await import("yaml");
  const lineCounter = new LineCounter();
  let document;
  try {
    document = parseDocument(text, {
      // "failsafe" keeps scalars as written; only YAML's null spellings are resolved.
      schema: "failsafe",
      customTags: ["null"],
      lineCounter,
      prettyErrors: false,
      // "silent" would also drop the error for a second document; "error" only mutes warnings.
      logLevel: "error",
    });
  } catch (error) {
    // The parser looks at its debug switches in the environment while it runs.
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    throw new ConfigError(
      `Cannot parse config file ${quote(path)}: the YAML parser reads the environment variables ${
        YAML_PARSER_ENV.join(" and ")
      }, so allow them with --allow-env`,
      { code: "CONFIG_FILE_UNREADABLE", source: "file", cause: error },
    );
  }
  const syntaxError = (
    message: string,
    error: YAMLError | unknown,
    line?: number,
    column?: number,
  ) =>
    new ConfigError(
      `Invalid YAML in config file ${quote(path)}${
        line === undefined ? "" : ` at line ${line}, column ${column}`
      }: ${message.replace(/\.$/, "")}`,
      { code: "CONFIG_FILE_SYNTAX", source: "file", line, column, cause: error },
    );
  if (document.errors.length > 0) {
    const [error] = document.errors;
    const { line, col } = lineCounter.linePos(error.pos[0]);
    // The parser's own text for this one points at its JavaScript API.
    const message = error.code === "MULTIPLE_DOCS"
      ? 'the file holds more than one YAML document (a "---" line); keep all keys in one'
      : error.message;
    throw syntaxError(message, error, line, col);
  }
  try {
    return document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // Alias problems only show while building values, and carry no position.
    throw syntaxError(error instanceof Error ? error.message : String(error), error);
  }
}
