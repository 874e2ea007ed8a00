/**
 * The schema: one table of keys ({@linkcode KEYS}), the checks of single values it names, and
 * how a key's environment variable and flag are spelt. Adding a key means adding one entry here
 * (and its field to `Config` in `types.ts`; the compiler insists on both).
 *
 * @module
 */
import { isLoopbackHost } from "../http.ts";
import type { ConfigField, KeyDefinition } from "./types.ts";

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

/** `host:port`, `[v6]:port` or `:port`; `off` turns the server off. */
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
 * import { envName, KEYS } from "./mod.ts";
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
    description: "Name of the Secret that receives the token (a DNS-1123 subdomain)",
    allowed:
      'a DNS-1123 subdomain: 1 to 253 lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
    check: checkSubdomain,
  },
  {
    key: "secret.namespace",
    field: "secret.namespace",
    kind: "string",
    valueName: "namespace",
    description: "Namespace of that Secret (a DNS-1123 label)",
    podDefault: "the pod's own namespace, from the `namespace` file in `kube.serviceaccountdir`",
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
    description: "Key inside the Secret's data that receives the token (`[-._a-zA-Z0-9]+`)",
    allowed: '1 to 253 letters, digits, "-", "_" and ".", neither "." nor starting with ".."',
    check: checkDataKey,
  },
  {
    key: "secret.watch",
    field: "secret.watch",
    kind: "boolean",
    default: true,
    description:
      "Watch the Secret: write it back within a second when it is deleted or its key overwritten, and act on the `ktr.appuio.ch/refresh-now` annotation at once; `false` where `list` and `watch` cannot be granted",
    allowed: '"true", "false", "1" or "0"',
  },
  {
    key: "interval",
    field: "interval",
    kind: "integer",
    valueName: "seconds",
    default: 500,
    min: 1,
    max: 86400,
    description:
      "Longest time between two refreshes, in whole seconds (1 to 86400); a token is renewed sooner at `renew.percent` of its lifetime",
    allowed:
      'a whole number of seconds from 1 to 86400, in digits without sign, unit or leading zero, like "500"',
  },
  {
    key: "log.level",
    field: "log.level",
    kind: "string",
    valueName: "level",
    default: "info",
    description: "Lowest level that is logged: `debug`, `info`, `warn` or `error`",
    allowed: 'one of "debug", "info", "warn" or "error"',
    choices: { debug: "debug", info: "info", warn: "warning", warning: "warning", error: "error" },
  },
  {
    key: "log.format",
    field: "log.format",
    kind: "string",
    valueName: "format",
    default: "text",
    description: "Log format: `text`, or `json` for one JSON object per line",
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
      "Token endpoint of the identity provider, like `https://auth.example.com/token`: `https:`, plain `http:` only to a loopback host; set this or `oidc.issuer`",
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
      "Issuer whose metadata (OpenID Connect discovery, else RFC 8414) names the token endpoint, fetched at the first refresh and again after the token endpoint fails (unreachable, 404, 5xx); the URL rules of `oidc.tokenurl`, no `?` or `#`; set this or `oidc.tokenurl`",
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
      "Client authentication: `client_secret_post` (secret in the form body), `client_secret_basic` (HTTP Basic), `private_key_jwt` (JWT signed with `oidc.privatekeyfile`), `workload_identity` (the pod's service-account token, no secret) or `none` (public client, only with `oidc.grant` `jwt_bearer` or `token_exchange`)",
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
      "File holding the client secret, read before every token request so a rotated mounted Secret is used without a restart; line breaks at the end are ignored",
    allowed: "a non-empty path without leading or trailing whitespace",
  },
  {
    key: "oidc.privatekeyfile",
    field: "oidc.privateKeyFile",
    kind: "string",
    valueName: "path",
    optional: true,
    description:
      "For `private_key_jwt`, which requires it: file holding the private key, PEM PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`), a JWK or a JWK Set; RSA, EC P-256/384/521 or Ed25519, unencrypted; read before every token request",
    allowed: "a non-empty path without leading or trailing whitespace",
  },
  {
    key: "oidc.keyid",
    field: "oidc.keyId",
    kind: "string",
    valueName: "kid",
    optional: true,
    description:
      "For `private_key_jwt`: `kid` header of the client assertion; also picks the key out of a JWK Set",
    defaultText: "the JWK's `kid`, else none",
    allowed: "a non-empty key id without leading or trailing whitespace",
  },
  {
    key: "oidc.keyalg",
    field: "oidc.keyAlg",
    kind: "string",
    valueName: "alg",
    optional: true,
    description:
      "For `private_key_jwt`: signing algorithm, `RS256`…`RS512`, `PS256`…`PS512`, `ES256`…`ES512`, `EdDSA` or `Ed25519`",
    defaultText: "the JWK's `alg`, else by key type: `RS256`, `ES256`, `ES384`, `ES512` or `EdDSA`",
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
      "For `private_key_jwt`: `aud` claim of the client assertion; set it to the issuer for providers that want that (Auth0, Zitadel)",
    defaultText: "the token endpoint URL",
    allowed: "an absolute URI, like https://auth.example.com/",
    check: checkAbsoluteUri,
  },
  {
    key: "oidc.scope",
    field: "oidc.scope",
    kind: "string",
    valueName: "scopes",
    optional: true,
    description: 'Scopes to request, separated by single spaces, like "api.read api.write"',
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
    description: "The `audience` parameter of the token request, as Auth0 wants it",
    allowed: "a non-empty audience without leading or trailing whitespace",
  },
  {
    key: "oidc.resource",
    field: "oidc.resource",
    kind: "list",
    valueName: "uris",
    optional: true,
    description:
      "RFC 8707 resource indicators, one `resource` parameter each: absolute URIs separated by spaces (in the YAML file a string or a list); a repeated flag keeps its last value",
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
      "PEM file of CA certificates to trust for the provider besides the built-in ones; read before every token request",
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
      "Renew a token when this percentage of its lifetime has passed (1 to 99), the lifetime from `expires_in` or else the JWT `exp` claim; `interval` stays the upper bound",
    allowed: 'a whole number from 1 to 99, like "67"',
  },
  {
    key: "leader.elect",
    field: "leader.elect",
    kind: "boolean",
    default: false,
    description:
      "Elect a leader over a Lease so that two or more replicas can run: only the leader refreshes and writes, the others stand by",
    allowed: '"true", "false", "1" or "0"',
  },
  {
    key: "leader.lease",
    field: "leader.lease",
    kind: "string",
    valueName: "name",
    optional: true,
    defaultText: "`kube-token-refresher-<secret.name>`",
    description:
      "Name of the Lease the replicas elect their leader on; to be set with `targets`, which have no `secret.name`",
    allowed: "a Kubernetes object name (lowercase letters, digits, '-' and '.')",
    check: checkSubdomain,
  },
  {
    key: "leader.namespace",
    field: "leader.namespace",
    kind: "string",
    valueName: "namespace",
    optional: true,
    defaultText: "the pod's own namespace, else `secret.namespace`",
    description:
      "Namespace of the Lease; to be set with `targets` outside a pod, where there is no pod namespace",
    allowed: "a Kubernetes namespace name (lowercase letters, digits and '-')",
    check: checkLabel,
  },
  {
    key: "leader.duration",
    field: "leader.duration",
    kind: "integer",
    valueName: "seconds",
    default: 15,
    min: 2,
    max: 3600,
    description:
      "Seconds a Lease that is not renewed stays its holder's before another replica takes over; more than `leader.renewdeadline`",
    allowed: 'a whole number of seconds from 2 to 3600, like "15"',
  },
  {
    key: "leader.renewdeadline",
    field: "leader.renewDeadline",
    kind: "integer",
    valueName: "seconds",
    default: 10,
    min: 1,
    max: 3600,
    description:
      "Seconds after its last renewal a leader that cannot renew stops writing; less than `leader.duration`, more than 1.2 times `leader.retryperiod`",
    allowed: 'a whole number of seconds from 1 to 3600, like "10"',
  },
  {
    key: "leader.retryperiod",
    field: "leader.retryPeriod",
    kind: "integer",
    valueName: "seconds",
    default: 2,
    min: 1,
    max: 3600,
    description:
      "Seconds between two tries to acquire (candidates) or renew (the leader) the Lease",
    allowed: 'a whole number of seconds from 1 to 3600, like "2"',
  },
  {
    key: "http.address",
    field: "http.address",
    kind: "string",
    valueName: "host:port",
    default: ":8080",
    description:
      "Where to serve `/healthz`, `/readyz` and `/metrics`: `:port` is every IPv4 and IPv6 interface (IPv4 alone where the system has no IPv6), `host:port` or `[ipv6]:port` one address; `off` disables the server",
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
      "Refresh once, then exit: 0 on success, 1 on failure (for CronJobs and init containers); not together with `dry-run`",
    allowed: '"true", "false", "1" or "0"',
  },
  {
    key: "dry-run",
    field: "dryRun",
    kind: "boolean",
    default: false,
    description:
      "Validate the configuration, obtain a token, check the Kubernetes permissions and the namespace, write nothing, then exit",
    allowed: '"true", "false", "1" or "0"',
  },
  {
    key: "kube.serviceaccountdir",
    field: "kube.serviceAccountDir",
    kind: "string",
    valueName: "dir",
    default: "/var/run/secrets/kubernetes.io/serviceaccount",
    description: "Folder with the in-cluster service account `token`, `ca.crt` and `namespace`",
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
 * import { envName } from "./mod.ts";
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
 * import { flagName } from "./mod.ts";
 *
 * assert.equal(flagName("log.level"), "--log.level");
 * ```
 */
export function flagName(key: string): string {
  return `--${key}`;
}
