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
    description: "OAuth client id",
    allowed: "a non-empty client id without leading or trailing whitespace",
  },
  {
    key: "oidc.authmethod",
    field: "oidc.authMethod",
    kind: "string",
    valueName: "method",
    default: "client_secret_post",
    description:
      "Client authentication: client_secret_post (secret in the form body), client_secret_basic (HTTP Basic) or private_key_jwt (signed JWT)",
    allowed: '"client_secret_post", "client_secret_basic" or "private_key_jwt"',
    choices: {
      client_secret_post: "client_secret_post",
      client_secret_basic: "client_secret_basic",
      private_key_jwt: "private_key_jwt",
    },
    refused: {
      none:
        '"none" is for public clients, and the client credentials grant is only for clients that can authenticate',
      client_secret_jwt:
        '"client_secret_jwt" is not supported; private_key_jwt keeps the secret off the wire too',
      tls_client_auth: '"tls_client_auth" (mutual TLS) is not supported',
      self_signed_tls_client_auth: '"self_signed_tls_client_auth" (mutual TLS) is not supported',
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
