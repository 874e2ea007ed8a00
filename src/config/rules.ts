/**
 * The rules that span keys, written as data: where tokens come from (`oidc.tokenurl` or
 * `oidc.issuer`) and what authenticates the client (a secret, a secret file or a private key,
 * as `oidc.authmethod` asks). A rule is a line of {@linkcode RULES}; one function applies them.
 *
 * A rule is skipped when one of its keys, or the key its condition reads, is invalid: that error
 * is reported already, and a guess about the intended value would only add noise.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { envName, flagName } from "./schema.ts";
import type { ConfigSource, KeyDefinition } from "./types.ts";
import { describeSource, quote } from "./values.ts";

/** A key's valid value and where it came from. */
export interface Setting {
  /** The key. */
  readonly definition: KeyDefinition;
  /** Where the value came from. */
  readonly source: ConfigSource;
  /** The typed value. */
  readonly value: string | number | boolean | readonly string[];
}

/**
 * When a rule applies: a key has (`is`), has one of (`in`) or has not (`isNot`) a value; with
 * none of the three, when the key is set at all.
 */
export interface Condition {
  /** The key whose value decides. */
  readonly key: string;
  /** The rule applies when the key has this value. */
  readonly is?: string;
  /** The rule applies when the key has one of these values. */
  readonly in?: readonly string[];
  /** The rule applies when the key has another value, or none. */
  readonly isNot?: string;
}

/** A rule applies when any of several conditions holds. */
export interface AnyCondition {
  /** The conditions. */
  readonly anyOf: readonly Condition[];
  /** What they mean together, to follow "when" in messages. */
  readonly means: string;
  /** How to make them hold, for messages. */
  readonly fix: string;
}

/** The condition of a rule. */
export type When = Condition | AnyCondition;

/** One rule across keys. */
export type Rule =
  | {
    /** Exactly one of two keys is set. */
    readonly kind: "exactlyOne";
    readonly keys: readonly [string, string];
    readonly when?: When;
    /** Why not both, for the conflict message. */
    readonly why: string;
    /** What each key gives, for the message when neither is set ("the secret", ...). */
    readonly gives: readonly [string, string];
    /** A further way out when neither is set. */
    readonly orElse?: string;
  }
  | {
    /** The key is required when the condition holds. */
    readonly kind: "requiredWith";
    readonly key: string;
    readonly when: Condition;
  }
  | {
    /** The keys are only used when the condition's key has its `is` value. */
    readonly kind: "onlyWith";
    readonly keys: readonly string[];
    readonly when: (Condition & { readonly is: string }) | AnyCondition;
  }
  | {
    /** Two settings that do not go together; reported on the first one's key. */
    readonly kind: "notTogether";
    readonly when: Condition;
    readonly with: Condition;
    /** Why, and what to do instead. */
    readonly why: string;
  }
  | {
    /** The keys are not used when the condition holds. */
    readonly kind: "notWith";
    readonly keys: readonly string[];
    readonly when: Condition;
    /** Why they are not used, following the condition. */
    readonly why: string;
    /** What to do instead of removing the key. */
    readonly instead: string;
  };

/**
 * Exactly one of two keys.
 *
 * @param keys The two keys.
 * @param options Why not both, what each gives, a further way out and when the rule applies.
 * @returns The rule.
 */
export function exactlyOne(
  keys: readonly [string, string],
  options: { why: string; gives: readonly [string, string]; orElse?: string; when?: When },
): Rule {
  return { kind: "exactlyOne", keys, ...options };
}

/**
 * Keys that only make sense when another key has one value.
 *
 * @param keys The keys.
 * @param when The key and the value they need.
 * @returns The rule.
 */
export function onlyWith(
  keys: readonly string[],
  when: (Condition & { is: string }) | AnyCondition,
): Rule {
  return { kind: "onlyWith", keys, when };
}

/**
 * Two settings that exclude each other, like a public client with the client credentials grant.
 *
 * @param when The first setting; the error is reported on its key.
 * @param other The second setting.
 * @param why Why they do not go together, and what to do instead.
 * @returns The rule.
 */
export function notTogether(when: Condition, other: Condition, why: string): Rule {
  return { kind: "notTogether", when, with: other, why };
}

/**
 * Keys that are not used when a condition holds.
 *
 * @param keys The keys.
 * @param when The condition.
 * @param options Why they are unused, and what to do instead.
 * @returns The rule.
 */
export function notWith(
  keys: readonly string[],
  when: Condition,
  options: { why: string; instead: string },
): Rule {
  return { kind: "notWith", keys, when, ...options };
}

/**
 * A key required when a condition holds.
 *
 * @param key The key.
 * @param when The condition.
 * @returns The rule.
 */
export function requiredWith(key: string, when: Condition): Rule {
  return { kind: "requiredWith", key, when };
}

const PRIVATE_KEY_JWT = { key: "oidc.authmethod", is: "private_key_jwt" } as const;
const SECRET_METHOD = {
  key: "oidc.authmethod",
  in: ["client_secret_post", "client_secret_basic"],
} as const;
const WORKLOAD_IDENTITY = { key: "oidc.authmethod", is: "workload_identity" } as const;
const PUBLIC_CLIENT = { key: "oidc.authmethod", is: "none" } as const;
const GRANT_WITH_TOKEN = { key: "oidc.grant", in: ["jwt_bearer", "token_exchange"] } as const;
/** A service-account token is sent: as the client assertion, or in the grant. */
const FEDERATED: AnyCondition = {
  anyOf: [WORKLOAD_IDENTITY, GRANT_WITH_TOKEN],
  means: "a service-account token is sent",
  fix: "set oidc.authmethod to workload_identity, or oidc.grant to jwt_bearer or token_exchange",
};

/** Every rule across keys, in the order their errors are found. */
export const RULES: readonly Rule[] = [
  exactlyOne(["oidc.tokenurl", "oidc.issuer"], {
    why:
      "oidc.issuer finds the token endpoint in the issuer's metadata, oidc.tokenurl names it directly",
    gives: ["the token endpoint", "the issuer whose metadata names it"],
  }),
  notWith(["oidc.clientsecret", "oidc.clientsecretfile"], PRIVATE_KEY_JWT, {
    why: "which signs with oidc.privatekeyfile instead",
    instead: "set oidc.authmethod to client_secret_post or client_secret_basic",
  }),
  requiredWith("oidc.privatekeyfile", PRIVATE_KEY_JWT),
  notWith(["dry-run"], { key: "once", is: "true" }, {
    why: "which writes the Secret, while a dry run writes nothing",
    instead: "run with --dry-run first and with --once after it",
  }),
  onlyWith(
    ["oidc.privatekeyfile", "oidc.keyid", "oidc.keyalg", "oidc.assertionaudience"],
    PRIVATE_KEY_JWT,
  ),
  requiredWith("oidc.clientid", { key: "oidc.authmethod", isNot: "workload_identity" }),
  notTogether(
    PUBLIC_CLIENT,
    { key: "oidc.grant", is: "client_credentials" },
    "the client credentials grant is only for clients that authenticate; set oidc.authmethod to workload_identity to authenticate with the service-account token, or oidc.grant to jwt_bearer or token_exchange",
  ),
  notTogether(
    WORKLOAD_IDENTITY,
    GRANT_WITH_TOKEN,
    "workload_identity is the client authentication of the client_credentials grant, and with the other grants the service-account token travels in the grant itself; set oidc.authmethod to none for a public client, or to the method the client is registered with",
  ),
  notWith(["oidc.clientsecret", "oidc.clientsecretfile"], WORKLOAD_IDENTITY, {
    why: "which authenticates with the service-account token",
    instead: "set oidc.authmethod to the secret method the client is registered with",
  }),
  notWith(["oidc.clientsecret", "oidc.clientsecretfile"], PUBLIC_CLIENT, {
    why: "which sends only the client id (a public client)",
    instead: "set oidc.authmethod to the secret method the client is registered with",
  }),
  onlyWith(
    [
      "oidc.federation.tokenfile",
      "oidc.federation.audience",
      "oidc.federation.expiration",
      "oidc.federation.params",
    ],
    FEDERATED,
  ),
  exactlyOne(["oidc.federation.tokenfile", "oidc.federation.audience"], {
    when: FEDERATED,
    why:
      "the first reads a projected service-account token, the second mints one with the TokenRequest API",
    gives: [
      "the path of a projected service-account token",
      "the audience of tokens to mint with the TokenRequest API",
    ],
  }),
  notWith(["oidc.federation.expiration"], { key: "oidc.federation.tokenfile" }, {
    why: "whose lifetime is the expirationSeconds of the projected volume",
    instead: "set oidc.federation.audience instead of oidc.federation.tokenfile",
  }),
  onlyWith(["oidc.federation.tokentype"], { key: "oidc.grant", is: "token_exchange" }),
  exactlyOne(["oidc.clientsecret", "oidc.clientsecretfile"], {
    when: SECRET_METHOD,
    why: "both give the client secret (the file is read again before every token request)",
    gives: ["the secret", "the path of a file holding it"],
    orElse: "set oidc.authmethod to private_key_jwt to sign with a private key instead",
  }),
];

/** Whether a key is set, and, for a switch, switched on. */
function isOn(setting: Setting | undefined): boolean {
  return setting !== undefined && setting.value !== false;
}

/**
 * Applies the rules to the valid settings.
 *
 * @param settings The valid values by key.
 * @param invalid Keys whose value was refused (their rules are skipped).
 * @param filePath The `--config` file, for messages.
 * @param rules The rules; default {@linkcode RULES}.
 * @returns One error per broken rule and key; never a secret value.
 */
export function checkRules(
  settings: ReadonlyMap<string, Setting>,
  invalid: ReadonlySet<string>,
  filePath: string | undefined,
  rules: readonly Rule[] = RULES,
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
  const sourceOf = (key: string) => settings.get(key)!.source;
  const holds = (when: When | undefined): boolean => {
    if (when === undefined) return true;
    if ("anyOf" in when) return when.anyOf.some(holds);
    const value = settings.get(when.key)?.value;
    // Switches are compared in their written form: `is: "true"`.
    const written = typeof value === "boolean" ? String(value) : value;
    if (when.is !== undefined) return written === when.is;
    if (when.in !== undefined) return when.in.some((choice) => choice === written);
    return written !== when.isNot;
  };
  const keysOf = (when: When | undefined): string[] =>
    when === undefined ? [] : "anyOf" in when ? when.anyOf.map((c) => c.key) : [when.key];
  /** The condition as it stands, for messages: "for oidc.authmethod "x" from ...". */
  const describeWhen = (when: When) =>
    "anyOf" in when ? `when ${when.means}` : `for ${describe(when.key)}`;

  for (const rule of rules) {
    if (
      [...keysOf(rule.when), ...keysOf(rule.kind === "notTogether" ? rule.with : undefined)].some((
        key,
      ) => invalid.has(key))
    ) continue;
    // onlyWith reports where its condition does not hold; every other rule where it does.
    if (holds(rule.when) === (rule.kind === "onlyWith")) continue;
    switch (rule.kind) {
      case "exactlyOne": {
        const [first, second] = rule.keys;
        if (invalid.has(first) || invalid.has(second)) break;
        if (settings.has(first) && settings.has(second)) {
          errors.push(
            new ConfigError(
              `Conflicting keys ${describe(first)} and ${
                describe(second)
              }: set only one; ${rule.why}`,
              { code: "CONFIG_CONFLICT", key: second, source: sourceOf(second) },
            ),
          );
        } else if (!settings.has(first) && !settings.has(second)) {
          const condition = rule.when === undefined ? "" : ` ${describeWhen(rule.when)}`;
          const orElse = rule.orElse === undefined ? "" : `; or ${rule.orElse}`;
          errors.push(
            new ConfigError(
              `Missing required key ${first} or ${second}${condition}: set ${rule.gives[0]} with ${
                howToSet(first)
              } in the --config file, or ${rule.gives[1]} with ${howToSet(second)}${orElse}`,
              { code: "CONFIG_MISSING", key: first },
            ),
          );
        }
        break;
      }
      case "requiredWith":
        if (settings.has(rule.key) || invalid.has(rule.key)) break;
        errors.push(
          new ConfigError(
            `Missing required key ${rule.key} for ${describe(rule.when.key)}: set it with ${
              howToSet(rule.key)
            } in the --config file`,
            { code: "CONFIG_MISSING", key: rule.key },
          ),
        );
        break;
      case "notWith":
        // A switch set to false asks for nothing, so it conflicts with nothing.
        for (const key of rule.keys.filter((key) => isOn(settings.get(key)))) {
          errors.push(
            new ConfigError(
              `Key ${describe(key)} is not used with ${
                describe(rule.when.key)
              }, ${rule.why}: remove ${key}, or ${rule.instead}`,
              { code: "CONFIG_CONFLICT", key, source: sourceOf(key) },
            ),
          );
        }
        break;
      case "notTogether":
        if (!holds(rule.with)) break;
        errors.push(
          new ConfigError(
            `Key ${describe(rule.when.key)} does not go with ${
              describe(rule.with.key)
            }: ${rule.why}`,
            { code: "CONFIG_CONFLICT", key: rule.when.key, source: sourceOf(rule.when.key) },
          ),
        );
        break;
      case "onlyWith":
        for (const key of rule.keys.filter((key) => settings.has(key))) {
          if ("anyOf" in rule.when) {
            const { anyOf, means, fix } = rule.when;
            errors.push(
              new ConfigError(
                `Key ${describe(key)} is only used when ${means}, not with ${
                  anyOf.map((c) => describe(c.key)).join(" and ")
                }: ${fix}; or remove ${key}`,
                { code: "CONFIG_CONFLICT", key, source: sourceOf(key) },
              ),
            );
            continue;
          }
          errors.push(
            new ConfigError(
              `Key ${describe(key)} is only used with ${rule.when.key} ${
                JSON.stringify(rule.when.is)
              }, not with ${
                describe(rule.when.key)
              }: set ${rule.when.key} to ${rule.when.is}, or remove ${key}`,
              { code: "CONFIG_CONFLICT", key, source: sourceOf(key) },
            ),
          );
        }
        break;
    }
  }
  return errors;
}
