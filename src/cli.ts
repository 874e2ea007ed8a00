/**
 * The command line: turns argv and the environment into a validated
 * {@linkcode Config}, or into the `--help` / `--version` text to print.
 *
 * Nothing here prints, exits or reads `Deno.args` / `Deno.env`: main.ts
 * passes them in and decides what to do with the result (print the text and
 * exit 0, or exit 2 on a {@linkcode ConfigError}).
 *
 * @module
 */

import type { Command, Option } from "commander";
import denoJson from "../deno.json" with { type: "json" };
import {
  closestMatch,
  type Config,
  ConfigError,
  type ConfigInput,
  envWarnings,
  flagName,
  givenValue,
  helpLine,
  type KeyDefinition,
  KEYS,
  loadConfigFile,
  resolveConfig,
} from "./config/mod.ts";

/**
 * The program's version, from deno.json.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VERSION } from "./cli.ts";
 *
 * assert.match(VERSION, /^\d+\.\d+\.\d+/);
 * ```
 */
export const VERSION: string = denoJson.version;

const PROGRAM = "kube-token-refresher";

/** Where a pod's service account is mounted, unless kube.serviceaccountdir says otherwise. */
const SERVICE_ACCOUNT_DIR = String(
  (KEYS as readonly KeyDefinition[]).find((d) => d.key === "kube.serviceaccountdir")?.default,
);

// A fixed width keeps --help the same in a terminal, a pipe and a test.
const HELP_WIDTH = 100;

/** What the command line asks for. */
export type CommandLine =
  | {
    /** Run with this configuration. */
    readonly kind: "run";
    /** The validated configuration. */
    readonly config: Config;
    /** Problems worth a log line that do not stop the start, like an unknown `KTR_` variable. */
    readonly warnings: readonly string[];
    /**
     * In a pod without `secret.namespace` set: the service account's `namespace` file it was
     * taken from, for the start log and the dry-run report.
     */
    readonly namespaceFile?: string;
  }
  | {
    /** Print `text` to standard output and exit 0. */
    readonly kind: "help" | "version";
    /** The text, ending in a newline. */
    readonly text: string;
  };

/** Options of {@linkcode parseCommandLine}. */
export interface ParseCommandLineOptions {
  /**
   * Reads the `--config` file and, in a pod, the service account's `namespace` file; defaults to
   * `Deno.readTextFile`.
   */
  readTextFile?: (path: string) => Promise<string>;
}

/** The options of every key, so values can be read back by key after parsing. */
type KeyOptions = ReadonlyMap<KeyDefinition, Option>;

/** The commander module, loaded only when there are arguments to parse. */
type Commander = typeof import("commander");

function createProgram(
  commander: Commander,
  output: { text: string },
): { program: Command; keyOptions: KeyOptions } {
  const { Command, Option } = commander;
  const keyOptions = new Map<KeyDefinition, Option>();
  const program = new Command(PROGRAM)
    .description(
      "Fetches an access token with the OAuth 2.0 client credentials grant and keeps it fresh in a key of a Kubernetes Secret.",
    )
    .usage("[flags]")
    // Unknown flags and stray arguments are reported by parseCommandLine, with our own hints.
    .allowUnknownOption()
    .allowExcessArguments()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => output.text += text,
      writeErr: (text) => output.text += text,
      outputError: () => {},
      getOutHelpWidth: () => HELP_WIDTH,
      getErrHelpWidth: () => HELP_WIDTH,
      // The defaults would look at the terminal and at NO_COLOR, i.e. at the environment.
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .addOption(
      new Option(
        "-f, --config <path>",
        "YAML file with the same keys, nested at the dots (default: none, no file is read)",
      ),
    );
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const value = definition.kind === "boolean"
      ? "[true|false]"
      : `<${definition.valueName ?? "value"}>`;
    const option = new Option(`${flagName(definition.key)} ${value}`, helpLine(definition));
    keyOptions.set(definition, option);
    program.addOption(option);
  }
  program
    .version(`${VERSION}`, "-V, --version", "Print the version and exit")
    .helpOption("-h, --help", "Print this help and exit")
    .addHelpText(
      "after",
      `
Every key can also be set by its environment variable or in the --config file.
Precedence: flags > environment > config file > defaults. A value set in a higher
source wins even when it is empty or equals the default.

Many Secrets (many namespaces, templates, .dockerconfigjson): the "targets" list,
set in the --config file only (it has no variable or flag); it replaces secret.name,
secret.namespace and secret.key, which must then be unset. See README, "Many namespaces".

Give the client secret as KTR_OIDC_CLIENTSECRET or in a file (--oidc.clientsecretfile),
not as --oidc.clientsecret: a command line can be read by every user of the machine
(ps, /proc) and \`deno task\` prints it.`,
    );
  return { program, keyOptions };
}

/** Flags by name, as they can be written on the command line, for "did you mean" hints. */
function knownFlags(program: Command): string[] {
  return program.options.flatMap((option) =>
    [option.long, option.short].filter((flag): flag is string => flag !== undefined)
  );
}

/** The flag part of an argument: `--a.b=value` gives `--a.b`, `-xvalue` gives `-x`. */
function flagOf(argument: string): string {
  if (argument.startsWith("--")) return argument.split("=", 1)[0];
  return argument.slice(0, 2);
}

function usageError(program: Command, args: readonly string[]): ConfigError {
  const flags = knownFlags(program);
  // A known flag among the leftovers came after "--", which ends the flags: it is an argument.
  const position = args.findIndex((arg) =>
    arg.length > 1 && arg.startsWith("-") && !flags.includes(flagOf(arg))
  );
  if (position >= 0) {
    const argument = args[position];
    // "-once" is a long flag with one dash too few, not "-o" followed by "nce": short flags are
    // single letters, and none of ours starts it.
    const oneDashShort = /^-[^-]/.test(argument) && argument.length > 2;
    const flag = oneDashShort ? argument.split("=", 1)[0] : flagOf(argument);
    const suggestion = closestMatch(
      oneDashShort ? `-${flag}` : flag,
      flags.filter((f) => f.startsWith("--")),
    );
    return new ConfigError(
      `Unknown flag "${flag}": ${
        suggestion === undefined
          ? "run with --help to list the flags"
          : `did you mean "${suggestion}"?`
      }`,
      { code: "CONFIG_UNKNOWN_KEY", key: flag.replace(/^-+/, ""), source: "flag" },
    );
  }
  // The argument itself is not shown: it may be a secret that lost its flag.
  return new ConfigError(
    `Unexpected argument: ${PROGRAM} takes flags only, like --secret.name NAME or --secret.name=NAME; run with --help to list them`,
    { code: "CONFIG_USAGE", source: "flag" },
  );
}

function missingValueError(key: string, allowed: string, detail = ""): ConfigError {
  return new ConfigError(`Missing value for flag ${flagName(key)}${detail}: expected ${allowed}`, {
    code: "CONFIG_INVALID",
    key,
    source: "flag",
  });
}

/** A secret on the command line is readable in the process list and echoed by `deno task`. */
function secretFlagWarning(flags: Record<string, string | boolean>): string[] {
  if (!("oidc.clientsecret" in flags)) return [];
  return [
    "The client secret was given as --oidc.clientsecret, which every user of this machine can read in the process list: set KTR_OIDC_CLIENTSECRET or --oidc.clientsecretfile instead",
  ];
}

/**
 * Parses the command line and builds the configuration from the flags, the
 * environment and the `--config` file. `--help` and `--version` win over
 * everything else and skip validation. Both `--flag value` and
 * `--flag=value` work; a flag given twice keeps its last value.
 *
 * @param argv The arguments after the program name (`Deno.args`).
 * @param env The environment (`Deno.env.toObject()`); only `KTR_` names matter.
 * @param options How to read the `--config` file.
 * @returns What to do: run with a config (plus warnings), or print help or version text.
 * @throws {ConfigError} For an unknown flag (`CONFIG_UNKNOWN_KEY`), a flag
 *   without its value (`CONFIG_INVALID`), a stray argument (`CONFIG_USAGE`), and
 *   everything {@linkcode loadConfigFile} and {@linkcode resolveConfig} throw.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./cli.ts";
 *
 * const result = await parseCommandLine(
 *   ["--secret.name", "my-token", "--secret.namespace=default", "--interval", "60"],
 *   {
 *     KTR_OIDC_TOKENURL: "https://auth.example.com/token",
 *     KTR_OIDC_CLIENTID: "app",
 *     KTR_OIDC_CLIENTSECRET: "s3cr3t",
 *   },
 * );
 * assert.equal(result.kind, "run");
 * if (result.kind === "run") assert.equal(result.config.interval, 60);
 *
 * const help = await parseCommandLine(["--help"], {});
 * assert.equal(help.kind, "help");
 * ```
 */
export async function parseCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  options: ParseCommandLineOptions = {},
): Promise<CommandLine> {
  if (argv.length === 0) {
    // Nothing to parse (the deployment configures by environment): commander, a CommonJS
    // package that brings Node built-ins along, is not loaded at all, which saves memory and
    // start-up time in every pod. With no flags, parsing would give exactly this.
    const pod = await podDefaults({ env }, options.readTextFile);
    return {
      kind: "run",
      config: resolveConfig({ env, flags: {}, defaults: pod.defaults }),
      warnings: envWarnings(env),
      ...pod.found,
    };
  }
  const commander = await import("commander");
  const output = { text: "" };
  const { program, keyOptions } = createProgram(commander, output);
  try {
    program.parse(argv, { from: "user" });
  } catch (error) {
    if (!(error instanceof commander.CommanderError)) throw error;
    switch (error.code) {
      case "commander.helpDisplayed":
        return { kind: "help", text: output.text };
      case "commander.version":
        return { kind: "version", text: `${VERSION}\n` };
      case "commander.optionMissingArgument": {
        // Commander raises this only for a value flag that ends the command line.
        const last = argv[argv.length - 1];
        const option = program.options.find((o) => o.long === last || o.short === last);
        const definition = [...keyOptions].find(([, o]) => o === option)?.[0];
        if (definition !== undefined) throw missingValueError(definition.key, definition.allowed);
        if (option?.long === "--config") {
          throw missingValueError("config", "the path of a YAML file");
        }
        break;
      }
    }
    throw new ConfigError(
      error.message.replace(/^error: /, "").replace(/^./, (c) => c.toUpperCase()),
      {
        code: "CONFIG_USAGE",
        source: "flag",
        cause: error,
      },
    );
  }
  const flags: Record<string, string | boolean> = {};
  const flagNames = knownFlags(program);
  for (const [definition, option] of keyOptions) {
    const name = option.attributeName();
    if (program.getOptionValueSource(name) !== "cli") continue;
    const value: unknown = program.getOptionValue(name);
    if (typeof value === "string" && flagNames.includes(flagOf(value))) {
      // `--secret.name --secret.namespace x` took the next flag as its value: say so.
      throw missingValueError(
        definition.key,
        definition.allowed,
        ` (it took the next flag, ${flagOf(value)}, as its value)`,
      );
    }
    if (typeof value === "string" || typeof value === "boolean") flags[definition.key] = value;
  }
  if (program.args.length > 0) throw usageError(program, program.args);

  let file: unknown;
  let filePath: string | undefined;
  if (program.getOptionValueSource("config") === "cli") {
    filePath = String(program.getOptionValue("config"));
    if (filePath === "" || flagNames.includes(flagOf(filePath))) {
      throw missingValueError("config", "the path of a YAML file");
    }
    file = await loadConfigFile(filePath, { readTextFile: options.readTextFile });
  }

  const pod = await podDefaults({ file, filePath, env, flags }, options.readTextFile);
  const config = resolveConfig({ file, filePath, env, flags, defaults: pod.defaults });
  return {
    kind: "run",
    config,
    warnings: [...secretFlagWarning(flags), ...envWarnings(env)],
    ...pod.found,
  };
}

/**
 * In a pod (`KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` set, as for the in-cluster
 * connection), `secret.namespace` defaults to the service account's `namespace` file: the
 * namespace the pod runs in. Read only when no source sets the key; a file that cannot be read
 * gives no default, so the usual "missing" error follows.
 */
async function podDefaults(
  input: ConfigInput,
  readTextFile: ((path: string) => Promise<string>) | undefined,
): Promise<{ defaults?: Record<string, string>; found: { namespaceFile?: string } }> {
  const env = input.env ?? {};
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) return { found: {} };
  if (givenValue(input, "secret.namespace") !== undefined) return { found: {} };
  const dir = givenValue(input, "kube.serviceaccountdir");
  const folder = typeof dir === "string" && dir.trim() !== "" ? dir : SERVICE_ACCOUNT_DIR;
  const namespaceFile = `${folder.replace(/\/+$/, "")}/namespace`;
  let namespace: string;
  try {
    namespace = (await (readTextFile ?? Deno.readTextFile)(namespaceFile)).trim();
  } catch {
    return { found: {} };
  }
  if (namespace === "") return { found: {} };
  return { defaults: { "secret.namespace": namespace }, found: { namespaceFile } };
}
