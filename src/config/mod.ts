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
 * Where each part lives:
 * - `types.ts`: the `Config` shape and what a key definition holds;
 * - `schema.ts`: the key table, the checks of single values, env and flag names;
 * - `values.ts`: reading one raw value, and the wording messages share;
 * - `sources.ts`: the merge of the sources and its precedence;
 * - `file.ts`: the `--config` YAML file, read, parsed and walked;
 * - `rules.ts`: rules across keys, as data (`exactlyOne`, `onlyWith`, ...);
 * - `suggest.ts`: "did you mean" for keys, flags and variables;
 * - `freeze.ts`: freezing with secrets redacted;
 * - `errors.ts`: `ConfigError` and its codes.
 *
 * Nothing here reads `Deno.env` or `Deno.args`: callers pass them in, so the
 * merge is a pure function that tests drive directly.
 *
 * @module
 */
export type {
  ClientAuthMethod,
  Config,
  ConfigField,
  ConfigSource,
  GrantType,
  KeyDefinition,
  LogFormat,
  LogLevel,
  SigningAlgorithm,
  ValueKind,
} from "./types.ts";
export {
  DEFAULT_FEDERATION_EXPIRATION,
  DEFAULT_SUBJECT_TOKEN_TYPE,
  envName,
  flagName,
  KEYS,
} from "./schema.ts";
export { ConfigError, type ConfigErrorCode, type ConfigErrorOptions } from "./errors.ts";
export { type ParsedValue, parseKeyValue } from "./values.ts";
export { type ConfigInput, givenValue, resolveConfig } from "./sources.ts";
export { loadConfigFile, type LoadConfigFileOptions, YAML_PARSER_ENV } from "./file.ts";
export { closestMatch, envWarnings, probedEnvNames } from "./suggest.ts";
export { type DefaultFact, defaultFact, helpLine, type KeyTableRow, keyTableRows } from "./doc.ts";
export { exactlyOne, notWith, onlyWith, requiredWith, type Rule, RULES } from "./rules.ts";
