/**
 * The sources and their precedence: defaults < `--config` file < `KTR_` environment variables <
 * flags, merged into one validated, deeply frozen `Config` by a pure function.
 *
 * Nothing here reads `Deno.env` or `Deno.args`: callers pass them in, so the
 * merge is a pure function that tests drive directly.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { isMapping, readFileValues, TARGETS_KEY } from "./file.ts";
import { parseTargets, staticConflicts, type TargetSpec } from "../targets/config.ts";
import { freezeConfig } from "./freeze.ts";
import { checkRules, type Setting } from "./rules.ts";
import { checkLeaderTimings, checkLeaderWithTargets } from "./leader.ts";
import { envName, flagName, KEYS } from "./schema.ts";
import { closestMatch } from "./suggest.ts";
import type { Config, ConfigSource, KeyDefinition } from "./types.ts";
import { describeSource, hideUrlPassword, parseKeyValue, quote } from "./values.ts";

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
  /**
   * Defaults found at start-up for keys the table has none for: in a pod, `secret.namespace`
   * from the service account's `namespace` file. They rank as defaults, below every source.
   */
  readonly defaults?: Readonly<Record<string, string>>;
}

/**
 * The value a key was given by a flag, a `KTR_` variable or the `--config` file, highest first,
 * unchecked; `undefined` when none gave it. For the few decisions made before the merge, such as
 * whether a default must be looked for at all.
 *
 * @param input The same input {@linkcode resolveConfig} takes.
 * @param key The key.
 * @returns The raw value, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { givenValue } from "./sources.ts";
 *
 * const input = { env: { KTR_SECRET_NAMESPACE: "team-a" } };
 * assert.equal(givenValue(input, "secret.namespace"), "team-a");
 * assert.equal(givenValue({}, "secret.namespace"), undefined);
 * ```
 */
export function givenValue(input: ConfigInput, key: string): unknown {
  const fileValues = readFileValues(input.file, input.filePath, []);
  return [input.flags?.[key], input.env?.[envName(key)], fileValues.get(key)]
    .find((raw) => raw !== undefined);
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
 * import { resolveConfig } from "./mod.ts";
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
  const where = filePath === undefined ? "the config file" : `config file ${quote(filePath)}`;
  const targetsRaw = isMapping(input.file) ? input.file[TARGETS_KEY] : undefined;
  let targets: TargetSpec[] | undefined;
  if (targetsRaw !== undefined && targetsRaw !== null) {
    const parsed = parseTargets(targetsRaw, where);
    errors.push(...parsed.errors, ...staticConflicts(parsed.targets, where));
    targets = parsed.targets;
  }
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const { key } = definition;
    const candidates: [ConfigSource, unknown][] = [
      ["flag", flags[key]],
      ["env", env[envName(key)]],
      ["file", fileValues.get(key)],
      ["default", definition.default ?? input.defaults?.[key]],
    ];
    const found = candidates.find(([, raw]) => raw !== undefined);
    // With targets, the single Secret's keys are not used; set by a user, they would be ignored,
    // so they are refused. Defaults (the in-pod namespace too) do not count. secret.watch is a
    // switch for every Secret, not a target, and stays.
    if (targets !== undefined && key.startsWith("secret.") && key !== "secret.watch") {
      if (found !== undefined && found[0] !== "default") {
        errors.push(
          new ConfigError(
            `Conflicting keys targets and ${key}: ${key} (from ${
              describeSource(found[0], definition, filePath)
            }) names one Secret, targets in ${where} names the Secrets to write; keep one of them (the multi-namespace component of deploy/ removes the KTR_SECRET_* variables)`,
            { code: "CONFIG_CONFLICT", key, source: found[0] },
          ),
        );
      }
      continue;
    }
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

  errors.push(...checkRules(settings, invalid, filePath));
  errors.push(...checkLeaderTimings(settings, filePath));
  if (targets !== undefined) errors.push(...checkLeaderWithTargets(settings));

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
  if (targets !== undefined) {
    const secret = (root.secret ??= {}) as Record<string, unknown>;
    secret.name = "";
    secret.namespace = "";
    secret.key ??= "token";
    root.targets = targets;
  }
  freezeConfig(root);
  return root as unknown as Config;
}
