/**
 * The one error of configuration: every problem with a key, a flag or the `--config` file, with
 * a code to branch on. Every ConfigError means exit code 2.
 *
 * @module
 */
import { CodedError } from "../errors.ts";
import type { ConfigSource } from "./types.ts";

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
 * import { ConfigError, resolveConfig } from "./mod.ts";
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
export class ConfigError extends CodedError<ConfigErrorCode> {
  override name = "ConfigError";
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
    super(message, options.code, { cause: options.cause });
    this.key = options.key;
    this.source = options.source;
    this.line = options.line;
    this.column = options.column;
    this.others = options.others ?? [];
  }
}
