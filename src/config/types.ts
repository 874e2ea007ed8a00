/**
 * The shape of the validated configuration and of the key table that fills it: what every
 * other part of `config/` and the rest of the tool read.
 *
 * @module
 */
import type { TargetSpec } from "../targets/config.ts";

/** Where a configuration value came from, lowest precedence first. */
export type ConfigSource = "default" | "file" | "env" | "flag";

/** Log levels, named as the logger names them (`warn` is accepted as input too). */
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
  /** The Secret that receives the token (with `targets`: name and namespace are empty). */
  readonly secret: {
    /** Name of the Secret (`secret.name`, a DNS-1123 subdomain). */
    readonly name: string;
    /** Namespace of the Secret (`secret.namespace`, a DNS-1123 label). */
    readonly namespace: string;
    /** Key inside the Secret's data that receives the token (`secret.key`). */
    readonly key: string;
    /** Watch the Secret to repair drift and act on refresh-now at once (`secret.watch`). */
    readonly watch: boolean;
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
  /** Leader election over a Lease, for more than one replica (`leader.*`). */
  readonly leader: {
    /** Whether to elect a leader; only the leader refreshes and writes (`leader.elect`). */
    readonly elect: boolean;
    /** Name of the Lease (`leader.lease`); default `kube-token-refresher-<secret.name>`. */
    readonly lease?: string;
    /** Namespace of the Lease (`leader.namespace`); default the pod's, else `secret.namespace`. */
    readonly namespace?: string;
    /** Seconds a Lease not renewed stays its holder's (`leader.duration`). */
    readonly duration: number;
    /** Seconds after its last renewal a leader that cannot renew stops (`leader.renewdeadline`). */
    readonly renewDeadline: number;
    /** Seconds between two tries to acquire or renew (`leader.retryperiod`). */
    readonly retryPeriod: number;
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
  /** The Secrets to write, from the file's `targets` list; instead of `secret.*`. */
  readonly targets?: readonly TargetSpec[];
}

/** Dotted paths of the leaf fields of `T`, e.g. `"oidc.tokenUrl"`. */
type LeafPaths<T, Prefix extends string = ""> = {
  [K in keyof T & string]-?: NonNullable<T[K]> extends Record<string, unknown>
    ? LeafPaths<NonNullable<T[K]>, `${Prefix}${K}.`>
    : `${Prefix}${K}`;
}[keyof T & string];

/** A {@linkcode Config} field that a key of the schema fills. */
export type ConfigField = Exclude<LeafPaths<Config>, "configFile" | "targets">;

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
  /**
   * What the key does, for `--help` and README's key table alike (code in backticks, which
   * `--help` leaves out).
   */
  readonly description: string;
  /** Placeholder for the value in `--help`, e.g. `seconds`. */
  readonly valueName?: string;
  /** Built-in default, written as a user would write it; without one the key is required. */
  readonly default?: string | number | boolean;
  /**
   * For a key whose default is found at run time (from the key file, the token endpoint): what
   * it is, for `--help` and README. The key is optional then.
   */
  readonly defaultText?: string;
  /** Without a default, the key may still be left unset: its field is then `undefined`. */
  readonly optional?: boolean;
  /**
   * Where the default comes from in a pod, for a key that is required elsewhere (`--help` and
   * README say it); the caller finds the value and passes it in `ConfigInput.defaults`.
   */
  readonly podDefault?: string;
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
