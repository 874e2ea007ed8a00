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

/** When a rule applies: a key has (`is`) or has not (`isNot`) a value. */
export interface Condition {
  /** The key whose value decides. */
  readonly key: string;
  /** The rule applies when the key has this value. */
  readonly is?: string;
  /** The rule applies when the key has another value, or none. */
  readonly isNot?: string;
}

/** One rule across keys. */
export type Rule =
  | {
    /** Exactly one of two keys is set. */
    readonly kind: "exactlyOne";
    readonly keys: readonly [string, string];
    readonly when?: Condition;
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
    readonly when: Condition & { readonly is: string };
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
  options: { why: string; gives: readonly [string, string]; orElse?: string; when?: Condition },
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
export function onlyWith(keys: readonly string[], when: Condition & { is: string }): Rule {
  return { kind: "onlyWith", keys, when };
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
const SECRET_METHOD = { key: "oidc.authmethod", isNot: "private_key_jwt" } as const;

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
  onlyWith(
    ["oidc.privatekeyfile", "oidc.keyid", "oidc.keyalg", "oidc.assertionaudience"],
    PRIVATE_KEY_JWT,
  ),
  exactlyOne(["oidc.clientsecret", "oidc.clientsecretfile"], {
    when: SECRET_METHOD,
    why: "both give the client secret (the file is read again before every token request)",
    gives: ["the secret", "the path of a file holding it"],
    orElse: "set oidc.authmethod to private_key_jwt to sign with a private key instead",
  }),
];

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
  const holds = (when: Condition | undefined) => {
    if (when === undefined) return true;
    const value = settings.get(when.key)?.value;
    return when.is !== undefined ? value === when.is : value !== when.isNot;
  };

  for (const rule of rules) {
    if (rule.when !== undefined && invalid.has(rule.when.key)) continue;
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
          const condition = rule.when === undefined ? "" : ` for ${describe(rule.when.key)}`;
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
        for (const key of rule.keys.filter((key) => settings.has(key))) {
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
      case "onlyWith":
        for (const key of rule.keys.filter((key) => settings.has(key))) {
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
