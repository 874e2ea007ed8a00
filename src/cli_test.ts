import {
  assert,
  assertEquals,
  assertMatch,
  assertNotMatch,
  assertStringIncludes,
  fail,
} from "../tests/assert.ts";
import { REQUIRED_ENV, SECRET } from "../tests/fixtures/config_input.ts";
import denoJson from "../deno.json" with { type: "json" };
import {
  type CommandLine,
  parseCommandLine,
  type ParseCommandLineOptions,
  VERSION,
} from "./cli.ts";
import {
  type Config,
  ConfigError,
  envName,
  flagName,
  type KeyDefinition,
  KEYS,
} from "./config/mod.ts";

/** The same required keys as flags. */
const REQUIRED_FLAGS = [
  "--secret.name=my-token",
  "--secret.namespace=my-namespace",
  "--oidc.tokenurl=https://auth.example.com/token",
  "--oidc.clientid=my-client",
  `--oidc.clientsecret=${SECRET}`,
];

/** The environment of private_key_jwt, where REQUIRED_ENV has a client secret. */
const PRIVATE_KEY_JWT: Readonly<Record<string, string | undefined>> = {
  KTR_OIDC_CLIENTSECRET: undefined,
  KTR_OIDC_AUTHMETHOD: "private_key_jwt",
  KTR_OIDC_PRIVATEKEYFILE: "/run/key.pem",
};

/**
 * A valid value for each key, different from its default, and the changes to
 * REQUIRED_ENV that the value needs to be valid (undefined removes a variable).
 */
/** The environment changes of a secretless client: the service-account token authenticates it. */
const FEDERATED = {
  KTR_OIDC_CLIENTSECRET: undefined,
  KTR_OIDC_AUTHMETHOD: "workload_identity",
  KTR_OIDC_FEDERATION_TOKENFILE: "/run/token",
};

const VALID: Readonly<
  Record<
    string,
    [text: string, value: unknown, env?: Readonly<Record<string, string | undefined>>]
  >
> = {
  "secret.name": ["other-token", "other-token"],
  "secret.namespace": ["other-namespace", "other-namespace"],
  "secret.key": ["access_token", "access_token"],
  "secret.watch": ["false", false],
  "interval": ["60", 60],
  "log.level": ["warn", "warning"],
  "log.format": ["json", "json"],
  "oidc.tokenurl": ["http://127.0.0.1:8080/token", "http://127.0.0.1:8080/token"],
  "oidc.issuer": ["https://auth.example.com/realms/x", "https://auth.example.com/realms/x", {
    KTR_OIDC_TOKENURL: undefined,
  }],
  "oidc.clientid": ["other-client", "other-client"],
  "oidc.authmethod": ["client_secret_basic", "client_secret_basic"],
  "oidc.clientsecret": ["other-secret", "other-secret"],
  "oidc.clientsecretfile": ["/run/secret", "/run/secret", { KTR_OIDC_CLIENTSECRET: undefined }],
  "oidc.privatekeyfile": ["/run/other.pem", "/run/other.pem", PRIVATE_KEY_JWT],
  "oidc.keyid": ["key-1", "key-1", PRIVATE_KEY_JWT],
  "oidc.keyalg": ["ps256", "PS256", PRIVATE_KEY_JWT],
  "oidc.assertionaudience": [
    "https://auth.example.com/",
    "https://auth.example.com/",
    PRIVATE_KEY_JWT,
  ],
  "oidc.scope": ["api.read api.write", "api.read api.write"],
  "oidc.audience": ["https://api.example.com", "https://api.example.com"],
  "oidc.resource": ["https://a.example/ urn:example:b", ["https://a.example/", "urn:example:b"]],
  "oidc.cafile": ["/etc/ssl/ca.pem", "/etc/ssl/ca.pem"],
  "oidc.grant": ["jwt_bearer", "jwt_bearer", { ...FEDERATED, KTR_OIDC_AUTHMETHOD: "none" }],
  "oidc.federation.tokenfile": ["/run/token", "/run/token", FEDERATED],
  "oidc.federation.audience": ["api://AzureADTokenExchange", "api://AzureADTokenExchange", {
    ...FEDERATED,
    KTR_OIDC_FEDERATION_TOKENFILE: undefined,
  }],
  "oidc.federation.expiration": ["900", 900, {
    ...FEDERATED,
    KTR_OIDC_FEDERATION_TOKENFILE: undefined,
    KTR_OIDC_FEDERATION_AUDIENCE: "api://AzureADTokenExchange",
  }],
  "oidc.federation.tokentype": [
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:id_token",
    { ...FEDERATED, KTR_OIDC_AUTHMETHOD: "none", KTR_OIDC_GRANT: "token_exchange" },
  ],
  "oidc.federation.params": ["connector_id=k8s a=b", ["connector_id=k8s", "a=b"], FEDERATED],
  "renew.percent": ["50", 50],
  "leader.elect": ["true", true],
  "leader.lease": ["my-lease", "my-lease"],
  "leader.namespace": ["tools", "tools"],
  "leader.duration": ["30", 30],
  "leader.renewdeadline": ["5", 5],
  "leader.retryperiod": ["1", 1],
  "http.address": ["127.0.0.1:9090", "127.0.0.1:9090"],
  "once": ["true", true],
  "dry-run": ["1", true],
  "kube.serviceaccountdir": ["/tmp/sa", "/tmp/sa"],
};

/** A file reader that knows one file. */
function files(contents: Record<string, string>): ParseCommandLineOptions {
  return {
    readTextFile: (path) =>
      path in contents
        ? Promise.resolve(contents[path])
        : Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`)),
  };
}

async function run(
  argv: string[],
  env: Record<string, string> = REQUIRED_ENV,
  options: ParseCommandLineOptions = files({}),
): Promise<Extract<CommandLine, { kind: "run" }>> {
  const result = await parseCommandLine(argv, env, options);
  assertEquals(result.kind, "run");
  return result as Extract<CommandLine, { kind: "run" }>;
}

async function failure(
  argv: string[],
  env: Record<string, string> = REQUIRED_ENV,
  options: ParseCommandLineOptions = files({}),
): Promise<ConfigError> {
  try {
    await parseCommandLine(argv, env, options);
  } catch (error) {
    assert(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    assertMatch(error.message, /^[A-Z]/);
    assertNotMatch(error.message, /\.$|\n/);
    return error;
  }
  fail(`expected a ConfigError for ${JSON.stringify(argv)}`);
}

/** Reads a field of the config by its dotted path. */
function field(config: Config, path: string): unknown {
  return path.split(".").reduce<unknown>(
    (node, part) => (node as Record<string, unknown>)[part],
    config,
  );
}

async function helpText(argv = ["--help"]): Promise<string> {
  const result = await parseCommandLine(argv, REQUIRED_ENV);
  assertEquals(result.kind, "help");
  return (result as { text: string }).text;
}

// --- help and version ---------------------------------------------------------------------

Deno.test("parseCommandLine() returns the help text for --help and -h", async () => {
  const long = await helpText(["--help"]);
  assertEquals(await helpText(["-h"]), long);
  assertMatch(long, /^Usage: kube-token-refresher \[flags\]\n/);
  assert(long.endsWith("\n"));
});

Deno.test("--help lists every flag with its environment variable", async () => {
  const text = await helpText();
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const shown = definition.kind === "boolean" ? " [true|false]" : " <";
    assert(
      text.includes(`${flagName(definition.key)}${shown}`),
      `${definition.key} in\n${text}`,
    );
    assert(text.includes(envName(definition.key)), `${envName(definition.key)} in\n${text}`);
  }
  for (const flag of ["-f, --config <path>", "-V, --version", "-h, --help"]) {
    assert(text.includes(flag), flag);
  }
});

Deno.test("--help shows each default, and required or no default for keys without one", async () => {
  // Unwrap the description column so a fact split over two lines still matches.
  const text = (await helpText()).replaceAll(/\n {20,}/g, " ");
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const line = text.split("\n").find((l) => l.includes(`${flagName(definition.key)} `));
    assert(line, definition.key);
    const fact = definition.podDefault !== undefined
      ? "required outside a pod"
      : definition.defaultText !== undefined
      ? `default: ${definition.defaultText.replaceAll("`", "")}`
      : definition.default !== undefined
      ? `default: ${JSON.stringify(definition.default)}`
      : definition.optional
      ? "no default"
      : "required";
    assert(line.includes(fact), `${fact} in ${line}`);
    // One default per key: "default: X" and "no default" never share a line.
    const defaults = line.match(/default: |no default|required/g) ?? [];
    assertEquals(defaults.length, definition.podDefault === undefined ? 1 : 2, line);
  }
});

Deno.test("--help never shows a secret, not even one set in the environment", async () => {
  const result = await parseCommandLine(["--help"], { ...REQUIRED_ENV }, files({}));
  assertEquals(result.kind, "help");
  const text = (result as { text: string }).text.replaceAll(/\n {20,}/g, " ");
  assert(!text.includes(SECRET));
  const line = text.split("\n").find((l) => l.includes("--oidc.clientsecret"));
  assert(line?.includes("secret, never shown"), String(line));
  assert(!line?.includes("default:"), String(line));
});

Deno.test("--help wins over invalid flags and does not read the config file", async () => {
  let reads = 0;
  const result = await parseCommandLine(["--interval=oops", "-f", "ktr.yaml", "--help"], {}, {
    readTextFile: () => {
      reads++;
      return Promise.resolve("");
    },
  });
  assertEquals(result.kind, "help");
  assertEquals(reads, 0);
});

Deno.test("parseCommandLine() returns deno.json's version for --version and -V", async () => {
  for (const flag of ["--version", "-V"]) {
    const result = await parseCommandLine([flag], {});
    assertEquals(result, { kind: "version", text: `${denoJson.version}\n` });
  }
  assertEquals(VERSION, denoJson.version);
});

// --- flags --------------------------------------------------------------------------------

Deno.test("parseCommandLine() accepts --flag value and --flag=value for every key", async () => {
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const [text, value, changes = {}] = VALID[definition.key];
    const env = Object.fromEntries(
      Object.entries({ ...REQUIRED_ENV, ...changes }).filter((entry): entry is [string, string] =>
        entry[1] !== undefined
      ),
    );
    const flag = flagName(definition.key);
    for (const argv of [[flag, text], [`${flag}=${text}`]]) {
      const { config } = await run(argv, env);
      assertEquals(field(config, definition.field), value, argv.join(" "));
    }
  }
});

Deno.test("parseCommandLine() runs from flags alone, without environment", async () => {
  const { config, warnings } = await run(REQUIRED_FLAGS, {});
  assertEquals(config.oidc.clientSecret, SECRET);
  assertEquals(config.secret.key, "token");
  // Only the warning about the secret on the command line (tests/secret_flag_test.ts).
  assertEquals(warnings.map((w) => w.split(",")[0]), [
    "The client secret was given as --oidc.clientsecret",
  ]);
});

Deno.test("parseCommandLine() takes several resource indicators in one --oidc.resource value", async () => {
  const { config } = await run(["--oidc.resource", "https://a.example/ https://b.example/"]);
  assertEquals(config.oidc.resource, ["https://a.example/", "https://b.example/"]);
  // Like every flag, a repeated one keeps its last value rather than adding to a list.
  const repeated = await run(["--oidc.resource=urn:a", "--oidc.resource=urn:b"]);
  assertEquals(repeated.config.oidc.resource, ["urn:b"]);
});

Deno.test("parseCommandLine() runs with an issuer and a secret file instead of URL and secret", async () => {
  const env = { ...REQUIRED_ENV };
  delete (env as Record<string, string>).KTR_OIDC_TOKENURL;
  delete (env as Record<string, string>).KTR_OIDC_CLIENTSECRET;
  const { config } = await run([
    "--oidc.issuer=https://auth.example.com",
    "--oidc.clientsecretfile",
    "/run/secrets/oidc/secret",
  ], env);
  assertEquals(config.oidc.issuer, "https://auth.example.com");
  assertEquals(config.oidc.clientSecretFile, "/run/secrets/oidc/secret");
  const both = await failure(["--oidc.issuer=https://auth.example.com"]);
  assertEquals([both.code, both.key, both.source], ["CONFIG_CONFLICT", "oidc.issuer", "flag"]);
  assert(!both.message.includes(SECRET), both.message);
});

Deno.test("parseCommandLine() lets the last of a repeated flag win", async () => {
  const { config } = await run(["--interval", "10", "--interval=20"]);
  assertEquals(config.interval, 20);
});

Deno.test("parseCommandLine() lets an empty flag value win over the environment, then rejects it", async () => {
  const error = await failure(["--secret.key="], { ...REQUIRED_ENV, KTR_SECRET_KEY: "x" });
  assertEquals([error.code, error.key, error.source], ["CONFIG_INVALID", "secret.key", "flag"]);
  const spaced = await failure(["--secret.key", ""], REQUIRED_ENV);
  assertEquals([spaced.code, spaced.source], ["CONFIG_INVALID", "flag"]);
});

Deno.test("parseCommandLine() takes a negative number as the value, and rejects it", async () => {
  const error = await failure(["--interval", "-5"]);
  assertEquals([error.code, error.key, error.source], ["CONFIG_INVALID", "interval", "flag"]);
  assert(error.message.includes('"-5"'), error.message);
});

Deno.test("parseCommandLine() refuses unknown flags with a hint", async () => {
  const cases = [
    ["--secret.nme", "x", "secret.nme", "--secret.name"],
    ["--secret-name=x", undefined, "secret-name", "--secret.name"],
    ["--secretName", "x", "secretName", "--secret.name"],
    ["--oidc.clientSecret=x", undefined, "oidc.clientSecret", "--oidc.clientsecret"],
    ["--tokenurl", "x", "tokenurl", "--oidc.tokenurl"],
    ["--confg", "x", "confg", "--config"],
  ] as const;
  for (const [flag, value, key, suggestion] of cases) {
    const error = await failure(value === undefined ? [flag] : [flag, value]);
    assertEquals([error.code, error.key, error.source], ["CONFIG_UNKNOWN_KEY", key, "flag"]);
    assert(error.message.includes(`did you mean "${suggestion}"?`), error.message);
  }
  const far = await failure(["--colour"]);
  assertMatch(far.message, /^Unknown flag "--colour": run with --help to list the flags$/);
  const short = await failure(["-x"]);
  assertEquals([short.code, short.key], ["CONFIG_UNKNOWN_KEY", "x"]);
  // A long flag with one dash: named whole, with the two-dash spelling suggested.
  for (
    const [argv, flag, suggestion] of [
      [["-once"], "-once", "--once"],
      [["-dry-run"], "-dry-run", "--dry-run"],
      [["-secret.name=x"], "-secret.name", "--secret.name"],
    ] as const
  ) {
    const error = await failure([...argv]);
    assertEquals([error.code, error.key], ["CONFIG_UNKNOWN_KEY", flag.slice(1)]);
    assertEquals(error.message, `Unknown flag "${flag}": did you mean "${suggestion}"?`);
  }
});

Deno.test("parseCommandLine() refuses --once with --dry-run, from any source", async () => {
  for (
    const [argv, env] of [
      [["--once", "--dry-run"], {}],
      [["--dry-run"], { KTR_ONCE: "true" }],
      [["--once=1"], { KTR_DRY_RUN: "true" }],
    ] as const
  ) {
    const error = await failure([...argv], { ...REQUIRED_ENV, ...env });
    assertEquals([error.code, error.key], ["CONFIG_CONFLICT", "dry-run"]);
    assertMatch(error.message, /dry-run .* is not used with once/);
  }
  // Switched off explicitly, dry-run asks for nothing and does not conflict.
  const result = await parseCommandLine(["--once", "--dry-run=false"], REQUIRED_ENV);
  assertEquals(result.kind, "run");
});

Deno.test("parseCommandLine() never echoes the value of an unknown flag", async () => {
  for (const argv of [[`--oidc.client-secret=${SECRET}`], ["--oidc.client-secret", SECRET]]) {
    const error = await failure(argv);
    assertEquals(error.code, "CONFIG_UNKNOWN_KEY");
    assert(!error.message.includes(SECRET), error.message);
  }
});

Deno.test("parseCommandLine() refuses positional arguments without echoing them", async () => {
  for (const argv of [[SECRET], ["--secret.name=a", SECRET], ["--", "--secret.name"]]) {
    const error = await failure(argv);
    assertEquals([error.code, error.source], ["CONFIG_USAGE", "flag"]);
    assert(!error.message.includes(SECRET), error.message);
    assertMatch(error.message, /takes flags only/);
  }
});

Deno.test("parseCommandLine() names a flag left without its value", async () => {
  const last = await failure(["--secret.name"]);
  assertEquals([last.code, last.key, last.source], ["CONFIG_INVALID", "secret.name", "flag"]);
  assertMatch(last.message, /^Missing value for flag --secret\.name: expected /);

  const swallowed = await failure(["--secret.name", "--secret.namespace", "x"]);
  assertEquals([swallowed.code, swallowed.key], ["CONFIG_INVALID", "secret.name"]);
  assertMatch(swallowed.message, /took the next flag, --secret\.namespace/);

  for (const argv of [["-f"], ["--config"], ["--config="], ["-f", "--interval=5"]]) {
    const config = await failure(argv);
    assertEquals([config.code, config.key, config.source], [
      "CONFIG_INVALID",
      "config",
      "flag",
    ]);
    assertMatch(config.message, /path of a YAML file/);
  }
});

// --- the config file ----------------------------------------------------------------------

Deno.test("parseCommandLine() reads the file given with -f, -fPATH, --config and --config=", async () => {
  const read = files({ "ktr.yaml": "interval: 42\nlog:\n  format: json\n" });
  for (
    const argv of [["-f", "ktr.yaml"], ["-fktr.yaml"], ["--config", "ktr.yaml"], [
      "--config=ktr.yaml",
    ]]
  ) {
    const { config } = await run(argv, REQUIRED_ENV, read);
    assertEquals(config.interval, 42, argv.join(" "));
    assertEquals(config.log.format, "json");
    assertEquals(config.configFile, "ktr.yaml");
  }
});

Deno.test("parseCommandLine() reads no file without --config", async () => {
  let reads = 0;
  const { config } = await run([], REQUIRED_ENV, {
    readTextFile: () => {
      reads++;
      return Promise.resolve("");
    },
  });
  assertEquals(reads, 0);
  assertEquals(config.configFile, undefined);
});

Deno.test("parseCommandLine() applies flags > env > file > defaults", async () => {
  const read = files({
    "ktr.yaml":
      "secret:\n  key: from-file\n  namespace: file-ns\ninterval: 42\nlog:\n  level: debug\n",
  });
  const env = { ...REQUIRED_ENV, KTR_SECRET_KEY: "from-env", KTR_INTERVAL: "43" };
  delete (env as Record<string, string>).KTR_SECRET_NAMESPACE;
  const { config } = await run(["-f", "ktr.yaml", "--secret.key", "from-flag"], env, read);
  assertEquals(config.secret.key, "from-flag");
  assertEquals(config.interval, 43);
  assertEquals(config.log.level, "debug");
  assertEquals(config.secret.namespace, "file-ns");
  assertEquals(config.log.format, "text");
});

Deno.test("parseCommandLine() passes file errors on with their codes", async () => {
  const missing = await failure(["-f", "nope.yaml"]);
  assertEquals([missing.code, missing.source], ["CONFIG_FILE_UNREADABLE", "file"]);
  assertMatch(missing.message, /"nope\.yaml"/);

  const broken = await failure(["-f", "k.yaml"], REQUIRED_ENV, files({ "k.yaml": "secret: [a\n" }));
  assertEquals(broken.code, "CONFIG_FILE_SYNTAX");
  assertEquals(broken.line, 2);

  const unknown = await failure(
    ["-f", "k.yaml"],
    REQUIRED_ENV,
    files({ "k.yaml": "oidc:\n  clientId: x\n" }),
  );
  assertEquals([unknown.code, unknown.key, unknown.source], [
    "CONFIG_UNKNOWN_KEY",
    "oidc.clientId",
    "file",
  ]);
  assertMatch(unknown.message, /did you mean "oidc\.clientid"\?/);
});

// --- environment --------------------------------------------------------------------------

Deno.test("parseCommandLine() warns about unknown KTR_ variables without their values", async () => {
  const { warnings } = await run([], { ...REQUIRED_ENV, KTR_SECRETNAME: SECRET, HOME: "/root" });
  assertEquals(warnings, [
    "Ignoring unknown environment variable KTR_SECRETNAME: did you mean KTR_SECRET_NAME?",
  ]);
});

Deno.test("parseCommandLine() never puts the client secret in an error, whichever flag is wrong", async () => {
  const invalid: Record<string, string> = {
    "secret.name": "Bad_Name",
    "secret.namespace": "a.b",
    "secret.key": "a/b",
    "interval": "0",
    "log.level": "loud",
    "log.format": "xml",
    "oidc.tokenurl": "http://auth.example.com/token",
    "oidc.issuer": "https://auth.example.com/?x",
    "oidc.clientid": "",
    "oidc.authmethod": "none",
    "oidc.clientsecret": `${SECRET} `,
    "oidc.clientsecretfile": "",
    "oidc.privatekeyfile": " /k",
    "oidc.keyid": "",
    "oidc.keyalg": "HS256",
    "oidc.assertionaudience": "aud",
    "oidc.scope": "a  b",
    "oidc.audience": "",
    "oidc.resource": "api",
    "oidc.cafile": "",
    "renew.percent": "100",
    "leader.elect": "maybe",
    "leader.lease": "Not_A_Name",
    "leader.namespace": "a.b",
    "leader.duration": "1",
    "leader.renewdeadline": "0",
    "leader.retryperiod": "0",
    "http.address": "nowhere",
    "once": "maybe",
    "dry-run": "maybe",
    "kube.serviceaccountdir": "",
  };
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const argvs = [[`${flagName(definition.key)}=${invalid[definition.key]}`]];
    // A bare boolean flag is valid (it means true); every other bare flag lacks its value.
    if (definition.kind !== "boolean") argvs.push([flagName(definition.key)]);
    for (const argv of argvs) {
      const error = await failure(argv);
      for (const message of [error.message, ...error.others.map((e) => e.message)]) {
        assert(!message.includes(SECRET), message);
      }
    }
  }
});

// --- permissions --------------------------------------------------------------------------

/** Runs a snippet against cli.ts in a child process with exactly the given permission flags. */
async function runWithPermissions(permissions: string[], code: string) {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      script,
      `import { parseCommandLine } from ${
        JSON.stringify(import.meta.resolve("./cli.ts"))
      };\n${code}`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--config",
        new URL(import.meta.resolve("../deno.json")).pathname,
        ...permissions,
        script,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    await Deno.remove(script);
  }
}

Deno.test("parseCommandLine() needs no permission at all without a config file", async () => {
  const result = await runWithPermissions(
    [],
    `const r = await parseCommandLine(${JSON.stringify(REQUIRED_FLAGS)}, {});
     const h = await parseCommandLine(["--help"], {});
     console.log(r.kind, h.kind);`,
  );
  assertEquals(result.stderr, "");
  assertEquals(result.stdout.trim(), "run help");
});

Deno.test("a config file loads with env access to KTR_* and the yaml package's switches only", async () => {
  const yaml = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(yaml, "interval: 42\n");
    const code = `try {
        const r = await parseCommandLine(["-f", ${JSON.stringify(yaml)}, ...${
      JSON.stringify(REQUIRED_FLAGS)
    }], {});
        console.log(r.kind === "run" ? r.config.interval : r.kind);
      } catch (e) { console.log(e.code, e.message); }`;
    const allowed = await runWithPermissions(
      ["--allow-read", "--allow-env=KTR_*,LOG_TOKENS,LOG_STREAM"],
      code,
    );
    assertEquals(allowed.stdout.trim(), "42", allowed.stderr);

    // Without them the failure is a clean ConfigError that says what to allow.
    const denied = await runWithPermissions(["--allow-read", "--allow-env=KTR_*"], code);
    assertMatch(denied.stdout, /^CONFIG_FILE_UNREADABLE .*LOG_TOKENS/);
  } finally {
    await Deno.remove(yaml);
  }
});

// --- secret.namespace in a pod ------------------------------------------------------------

/** REQUIRED_ENV without secret.namespace, in a pod whose service account is under /sa. */
const { KTR_SECRET_NAMESPACE: _namespace, ...WITHOUT_NAMESPACE } = REQUIRED_ENV;
const IN_POD: Record<string, string> = {
  ...WITHOUT_NAMESPACE,
  KUBERNETES_SERVICE_HOST: "10.0.0.1",
  KUBERNETES_SERVICE_PORT: "443",
  KTR_KUBE_SERVICEACCOUNTDIR: "/sa",
};

/** A reader that knows the pod's namespace file and records what was read. */
function podFiles(namespace = "team-a\n") {
  const read: string[] = [];
  return {
    read,
    options: {
      readTextFile: (path: string) => {
        read.push(path);
        return path === "/sa/namespace"
          ? Promise.resolve(namespace)
          : Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`));
      },
    },
  };
}

Deno.test("in a pod, secret.namespace defaults to the service account's namespace file", async () => {
  for (const argv of [[], ["--secret.name=my-token"]]) {
    const { read, options } = podFiles();
    const result = await parseCommandLine(argv, IN_POD, options);
    assert(result.kind === "run");
    assertEquals(result.config.secret.namespace, "team-a");
    assertEquals(result.namespaceFile, "/sa/namespace");
    assertEquals(read, ["/sa/namespace"]);
  }
  // The folder's default location when kube.serviceaccountdir is not set.
  const seen: string[] = [];
  await parseCommandLine([], { ...IN_POD, KTR_KUBE_SERVICEACCOUNTDIR: undefined }, {
    readTextFile: (path) => (seen.push(path), Promise.resolve("team-b")),
  });
  assertEquals(seen, ["/var/run/secrets/kubernetes.io/serviceaccount/namespace"]);
});

Deno.test("in a pod, a set secret.namespace still wins and the namespace file is not read", async () => {
  for (
    const [argv, env] of [
      [["--secret.namespace=other"], IN_POD],
      [[], { ...IN_POD, KTR_SECRET_NAMESPACE: "other" }],
    ] as const
  ) {
    const { read, options } = podFiles();
    const result = await parseCommandLine([...argv], env, options);
    assert(result.kind === "run");
    assertEquals(result.config.secret.namespace, "other");
    assertEquals(result.namespaceFile, undefined);
    assertEquals(read, []);
  }
});

Deno.test("secret.namespace stays required outside a pod, and in a pod without a namespace file", async () => {
  const { KUBERNETES_SERVICE_HOST: _host, ...outside } = IN_POD;
  const { read, options } = podFiles();
  const error = await failure([], outside, options);
  assertEquals([error.code, error.key], ["CONFIG_MISSING", "secret.namespace"]);
  assertEquals(read, []);
  for (const namespace of ["", "  \n"]) {
    const empty = await failure([], IN_POD, podFiles(namespace).options);
    assertEquals([empty.code, empty.key], ["CONFIG_MISSING", "secret.namespace"]);
  }
  const none = await failure([], { ...IN_POD, KTR_KUBE_SERVICEACCOUNTDIR: "/elsewhere" }, options);
  assertEquals([none.code, none.key], ["CONFIG_MISSING", "secret.namespace"]);
});

Deno.test("--help says where secret.namespace comes from in a pod and that it is required outside", async () => {
  const help = (await helpText()).replaceAll(/\s+/g, " ");
  assertStringIncludes(
    help,
    "Namespace of that Secret (a DNS-1123 label) (env: KTR_SECRET_NAMESPACE, in a pod default: the pod's own namespace, from the namespace file in kube.serviceaccountdir; required outside a pod)",
  );
});
