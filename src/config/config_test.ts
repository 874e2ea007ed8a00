import {
  assert,
  assertEquals,
  assertMatch,
  assertNotMatch,
  assertStringIncludes,
  assertThrows,
  fail,
} from "../../tests/assert.ts";
import { REQUIRED_ENV, SECRET } from "../../tests/fixtures/config_input.ts";
import {
  closestMatch,
  type Config,
  ConfigError,
  type ConfigInput,
  type ConfigSource,
  envName,
  envWarnings,
  flagName,
  type KeyDefinition,
  KEYS,
  loadConfigFile,
  parseKeyValue,
  resolveConfig,
  YAML_PARSER_ENV,
} from "./mod.ts";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  fail("expected a ConfigError");
}

async function configErrorAsync(fn: () => Promise<unknown>): Promise<ConfigError> {
  try {
    await fn();
  } catch (error) {
    assert(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  fail("expected a ConfigError");
}

/** Every message an error carries, its own and those of the other problems. */
function allMessages(error: ConfigError): string[] {
  return [error.message, ...error.others.map((other) => other.message)];
}

/** The checks every message must pass: one line, capital first, no trailing period. */
function assertMessageStyle(message: string) {
  assertMatch(message, /^[A-Z]/, `starts with a capital: ${message}`);
  assertNotMatch(message, /\.$/, `no trailing period: ${message}`);
  assertNotMatch(message, /\n/, `one line: ${message}`);
}

function withEnv(overrides: Record<string, string>): Record<string, string> {
  return { ...REQUIRED_ENV, ...overrides };
}

function without(name: string): Record<string, string> {
  const env = { ...REQUIRED_ENV };
  delete env[name];
  return env;
}

function definitionOf(key: string): KeyDefinition {
  const definition = (KEYS as readonly KeyDefinition[]).find((d) => d.key === key);
  assert(definition, `no key ${key}`);
  return definition;
}

// --- the schema and its three mappings ---------------------------------------------------

Deno.test("KEYS holds every key of the contract, with its defaults", () => {
  assertEquals(
    KEYS.map((d) => [d.key, (d as KeyDefinition).default]),
    [
      ["secret.name", undefined],
      ["secret.namespace", undefined],
      ["secret.key", "token"],
      ["secret.watch", true],
      ["interval", 500],
      ["log.level", "info"],
      ["log.format", "text"],
      ["oidc.tokenurl", undefined],
      ["oidc.issuer", undefined],
      ["oidc.clientid", undefined],
      ["oidc.authmethod", "client_secret_post"],
      ["oidc.grant", "client_credentials"],
      ["oidc.clientsecret", undefined],
      ["oidc.clientsecretfile", undefined],
      ["oidc.privatekeyfile", undefined],
      ["oidc.keyid", undefined],
      ["oidc.keyalg", undefined],
      ["oidc.assertionaudience", undefined],
      ["oidc.scope", undefined],
      ["oidc.audience", undefined],
      ["oidc.resource", undefined],
      ["oidc.cafile", undefined],
      ["oidc.federation.tokenfile", undefined],
      ["oidc.federation.audience", undefined],
      ["oidc.federation.expiration", undefined],
      ["oidc.federation.tokentype", undefined],
      ["oidc.federation.params", undefined],
      ["renew.percent", 67],
      ["leader.elect", false],
      ["leader.lease", undefined],
      ["leader.namespace", undefined],
      ["leader.duration", 15],
      ["leader.renewdeadline", 10],
      ["leader.retryperiod", 2],
      ["http.address", ":8080"],
      ["once", false],
      ["dry-run", false],
      ["kube.serviceaccountdir", "/var/run/secrets/kubernetes.io/serviceaccount"],
    ],
  );
});

Deno.test("envName() gives the contract's variable names", () => {
  assertEquals(KEYS.map((d) => envName(d.key)), [
    "KTR_SECRET_NAME",
    "KTR_SECRET_NAMESPACE",
    "KTR_SECRET_KEY",
    "KTR_SECRET_WATCH",
    "KTR_INTERVAL",
    "KTR_LOG_LEVEL",
    "KTR_LOG_FORMAT",
    "KTR_OIDC_TOKENURL",
    "KTR_OIDC_ISSUER",
    "KTR_OIDC_CLIENTID",
    "KTR_OIDC_AUTHMETHOD",
    "KTR_OIDC_GRANT",
    "KTR_OIDC_CLIENTSECRET",
    "KTR_OIDC_CLIENTSECRETFILE",
    "KTR_OIDC_PRIVATEKEYFILE",
    "KTR_OIDC_KEYID",
    "KTR_OIDC_KEYALG",
    "KTR_OIDC_ASSERTIONAUDIENCE",
    "KTR_OIDC_SCOPE",
    "KTR_OIDC_AUDIENCE",
    "KTR_OIDC_RESOURCE",
    "KTR_OIDC_CAFILE",
    "KTR_OIDC_FEDERATION_TOKENFILE",
    "KTR_OIDC_FEDERATION_AUDIENCE",
    "KTR_OIDC_FEDERATION_EXPIRATION",
    "KTR_OIDC_FEDERATION_TOKENTYPE",
    "KTR_OIDC_FEDERATION_PARAMS",
    "KTR_RENEW_PERCENT",
    "KTR_LEADER_ELECT",
    "KTR_LEADER_LEASE",
    "KTR_LEADER_NAMESPACE",
    "KTR_LEADER_DURATION",
    "KTR_LEADER_RENEWDEADLINE",
    "KTR_LEADER_RETRYPERIOD",
    "KTR_HTTP_ADDRESS",
    "KTR_ONCE",
    "KTR_DRY_RUN",
    "KTR_KUBE_SERVICEACCOUNTDIR",
  ]);
  assertEquals(envName("dry-run"), "KTR_DRY_RUN");
});

Deno.test("flagName() is -- plus the key", () => {
  assertEquals(flagName("oidc.tokenurl"), "--oidc.tokenurl");
  assertEquals(flagName("interval"), "--interval");
});

Deno.test("KEYS names are lowercase and dotted, and only oidc.clientsecret is secret", () => {
  for (const definition of KEYS as readonly KeyDefinition[]) {
    assertMatch(definition.key, /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/);
    assertEquals(definition.field.toLowerCase(), definition.key.replaceAll("-", ""));
  }
  assertEquals(
    (KEYS as readonly KeyDefinition[]).filter((d) => d.secret).map((d) => d.key),
    ["oidc.clientsecret"],
  );
});

Deno.test("every default passes its own validation", () => {
  for (const definition of KEYS as readonly KeyDefinition[]) {
    if (definition.default === undefined) continue;
    assertEquals(parseKeyValue(definition, definition.default).ok, true, definition.key);
  }
});

// --- defaults and the shape of Config -----------------------------------------------------

Deno.test("resolveConfig() fills defaults and maps keys to camelCase fields", () => {
  const config = resolveConfig({ env: REQUIRED_ENV });
  const expected: Config = {
    secret: { name: "my-token", namespace: "my-namespace", key: "token", watch: true },
    interval: 500,
    log: { level: "info", format: "text" },
    oidc: {
      tokenUrl: "https://auth.example.com/token",
      clientId: "my-client",
      authMethod: "client_secret_post",
      grant: "client_credentials",
      clientSecret: SECRET,
    },
    renew: { percent: 67 },
    leader: { elect: false, duration: 15, renewDeadline: 10, retryPeriod: 2 },
    http: { address: ":8080" },
    once: false,
    dryRun: false,
    kube: { serviceAccountDir: "/var/run/secrets/kubernetes.io/serviceaccount" },
  };
  assertEquals(config, expected);
  assertEquals("configFile" in config, false);
});

Deno.test("resolveConfig() records the config file path", () => {
  const config = resolveConfig({ env: REQUIRED_ENV, file: {}, filePath: "/etc/ktr.yaml" });
  assertEquals(config.configFile, "/etc/ktr.yaml");
});

Deno.test("resolveConfig() returns a deeply frozen config", () => {
  const config = resolveConfig({ env: REQUIRED_ENV });
  for (const node of [config, config.secret, config.log, config.oidc, config.kube]) {
    assert(Object.isFrozen(node));
  }
  assertThrows(() => {
    (config as { interval: number }).interval = 1;
  }, TypeError);
  assertThrows(() => {
    (config.secret as { name: string }).name = "other";
  }, TypeError);
});

Deno.test("resolveConfig() keeps the client secret out of JSON and inspection", () => {
  const config = resolveConfig({ env: REQUIRED_ENV });
  assertEquals(config.oidc.clientSecret, SECRET);
  for (
    const text of [
      JSON.stringify(config),
      JSON.stringify(config.oidc),
      JSON.stringify({ wrapped: config }),
      Deno.inspect(config),
      Deno.inspect(config.oidc),
      Deno.inspect({ wrapped: config }, { depth: 10 }),
    ]
  ) {
    assert(!text.includes(SECRET), text);
    assert(text.includes("[redacted]"), text);
  }
  assertEquals(JSON.parse(JSON.stringify(config)).oidc.clientId, "my-client");
});

// --- precedence ---------------------------------------------------------------------------

/** Sets secret.key (which has a default) in the given sources, each to its own value. */
function secretKeyFrom(sources: readonly ConfigSource[]): ConfigInput {
  return {
    env: sources.includes("env") ? withEnv({ KTR_SECRET_KEY: "from-env" }) : REQUIRED_ENV,
    file: sources.includes("file") ? { secret: { key: "from-file" } } : undefined,
    flags: sources.includes("flag") ? { "secret.key": "from-flag" } : {},
  };
}

const PRECEDENCE: readonly [lower: ConfigSource, higher: ConfigSource, winner: string][] = [
  ["default", "file", "from-file"],
  ["default", "env", "from-env"],
  ["default", "flag", "from-flag"],
  ["file", "env", "from-env"],
  ["file", "flag", "from-flag"],
  ["env", "flag", "from-flag"],
];

for (const [lower, higher, winner] of PRECEDENCE) {
  Deno.test(`resolveConfig() lets ${higher} win over ${lower}`, () => {
    const config = resolveConfig(secretKeyFrom([lower, higher]));
    assertEquals(config.secret.key, winner);
  });
}

Deno.test("resolveConfig() takes flags over env over file when all three are set", () => {
  assertEquals(resolveConfig(secretKeyFrom(["file", "env", "flag"])).secret.key, "from-flag");
  assertEquals(resolveConfig(secretKeyFrom(["file", "env"])).secret.key, "from-env");
});

Deno.test("resolveConfig() applies precedence to required keys too", () => {
  const config = resolveConfig({
    file: { secret: { name: "file-name" } },
    env: withEnv({ KTR_SECRET_NAME: "env-name" }),
    flags: { "secret.name": "flag-name" },
  });
  assertEquals(config.secret.name, "flag-name");
});

Deno.test("resolveConfig() lets a higher source win with a value equal to the default", () => {
  const config = resolveConfig({ file: { interval: "30" }, env: withEnv({ KTR_INTERVAL: "500" }) });
  assertEquals(config.interval, 500);
});

Deno.test("resolveConfig() lets an empty env value win over the file, then rejects it naming the variable", () => {
  const error = configError(() =>
    resolveConfig({ file: { secret: { key: "x" } }, env: withEnv({ KTR_SECRET_KEY: "" }) })
  );
  assertEquals(error.code, "CONFIG_INVALID");
  assertEquals(error.key, "secret.key");
  assertEquals(error.source, "env");
  assertMatch(error.message, /KTR_SECRET_KEY/);
  assertMatch(error.message, /""/);
});

Deno.test("resolveConfig() lets an empty flag win over the environment, then rejects it", () => {
  const error = configError(() =>
    resolveConfig({ env: withEnv({ KTR_SECRET_KEY: "x" }), flags: { "secret.key": "" } })
  );
  assertEquals([error.code, error.key, error.source], ["CONFIG_INVALID", "secret.key", "flag"]);
  assertMatch(error.message, /--secret\.key/);
});

Deno.test('resolveConfig() takes a file value of "" as set, and rejects it', () => {
  const error = configError(() =>
    resolveConfig({ env: REQUIRED_ENV, file: { secret: { key: "" } }, filePath: "ktr.yaml" })
  );
  assertEquals([error.code, error.key, error.source], ["CONFIG_INVALID", "secret.key", "file"]);
  assertMatch(error.message, /ktr\.yaml/);
});

Deno.test("resolveConfig() rejects an empty value for every key", () => {
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const error = configError(() =>
      resolveConfig({ env: withEnv({ [envName(definition.key)]: "" }) })
    );
    assertEquals([error.code, error.key, error.source], [
      "CONFIG_INVALID",
      definition.key,
      "env",
    ]);
  }
});

Deno.test("resolveConfig() treats a YAML null (empty value, ~, null) as not set", () => {
  const config = resolveConfig({
    env: REQUIRED_ENV,
    file: { secret: { key: null }, log: null, interval: null },
  });
  assertEquals(config.secret.key, "token");
  assertEquals(config.log.level, "info");
  assertEquals(config.interval, 500);
});

Deno.test("resolveConfig() ignores environment variables without the KTR_ names", () => {
  const config = resolveConfig({ env: { ...REQUIRED_ENV, SECRET_KEY: "x", ktr_secret_key: "y" } });
  assertEquals(config.secret.key, "token");
});

// --- missing keys -------------------------------------------------------------------------

Deno.test("resolveConfig() names each missing required key, with its flag and variable", () => {
  const required = (KEYS as readonly KeyDefinition[]).filter((d) =>
    d.default === undefined && !d.optional
  );
  assertEquals(required.map((d) => d.key), ["secret.name", "secret.namespace"]);
  // oidc.clientid is required by a cross-key rule: only workload_identity may leave it out.
  const clientId = (KEYS as readonly KeyDefinition[]).find((d) => d.key === "oidc.clientid")!;
  for (const definition of [...required, clientId]) {
    const error = configError(() => resolveConfig({ env: without(envName(definition.key)) }));
    assertEquals(error.code, "CONFIG_MISSING");
    assertEquals(error.key, definition.key);
    assertEquals(error.source, undefined);
    assert(error.message.includes(definition.key), error.message);
    assert(error.message.includes(flagName(definition.key)), error.message);
    assert(error.message.includes(envName(definition.key)), error.message);
    assertMessageStyle(error.message);
  }
});

Deno.test("resolveConfig() reports every problem of one pass, first in schema order", () => {
  const error = configError(() => resolveConfig({ env: { KTR_INTERVAL: "0" } }));
  assertEquals(error.key, "secret.name");
  assertEquals(error.others.map((e) => [e.code, e.key]), [
    ["CONFIG_MISSING", "secret.namespace"],
    ["CONFIG_INVALID", "interval"],
    ["CONFIG_MISSING", "oidc.tokenurl"],
    ["CONFIG_MISSING", "oidc.clientid"],
    ["CONFIG_MISSING", "oidc.clientsecret"],
  ]);
});

// --- validation of each key ---------------------------------------------------------------

/** Resolves with one env variable changed and returns the error, asserting code, key and source. */
function invalidEnv(name: string, value: string): ConfigError {
  const error = configError(() => resolveConfig({ env: withEnv({ [name]: value }) }));
  assertEquals(error.code, "CONFIG_INVALID", error.message);
  assertEquals(error.source, "env");
  assert(error.message.includes(name), error.message);
  assertMessageStyle(error.message);
  return error;
}

/**
 * The values of one key set through its env var `name`: each `accepted` value resolves to itself
 * as `read` finds it in the config; each `refused` one is an error for `key`, whose message
 * matches `pattern` when given and quotes the value (its first 40 characters) when `quoted`.
 */
function assertEnvValues(
  name: string,
  values: {
    key: string;
    accepted?: readonly string[];
    read?: (config: Config) => unknown;
    refused: readonly string[];
    pattern?: RegExp;
    quoted?: boolean;
  },
): void {
  for (const value of values.accepted ?? []) {
    assertEquals(values.read?.(resolveConfig({ env: withEnv({ [name]: value }) })), value);
  }
  for (const value of values.refused) {
    const error = invalidEnv(name, value);
    assertEquals(error.key, values.key);
    if (values.quoted) {
      assert(error.message.includes(JSON.stringify(value).slice(0, 40)), error.message);
    }
    if (values.pattern) assertMatch(error.message, values.pattern);
  }
}

Deno.test("secret.name must be a DNS-1123 subdomain", () => {
  assertEnvValues("KTR_SECRET_NAME", {
    key: "secret.name",
    accepted: ["a", "my-token", "my.token-1", "0", "a".repeat(253)],
    read: (config) => config.secret.name,
    refused: ["My-Token", "-a", "a-", "a_b", "a..b", ".a", "a.", "a b", " a", "a".repeat(254)],
    quoted: true,
    pattern: /DNS-1123 subdomain/,
  });
});

Deno.test("secret.namespace must be a DNS-1123 label", () => {
  assertEnvValues("KTR_SECRET_NAMESPACE", {
    key: "secret.namespace",
    accepted: ["a", "kube-system", "a".repeat(63)],
    read: (config) => config.secret.namespace,
    refused: ["a.b", "Default", "-a", "a-", "a_b", "a".repeat(64)],
    pattern: /DNS-1123 label/,
  });
});

Deno.test("secret.key must match [-._a-zA-Z0-9]+ and not be . or start with ..", () => {
  assertEnvValues("KTR_SECRET_KEY", {
    key: "secret.key",
    accepted: ["token", "TOKEN", ".dotfile", "a_b-c.d", "a".repeat(253)],
    read: (config) => config.secret.key,
    refused: ["a/b", "a b", ".", "..", "..a", "tök", "a".repeat(254)],
    quoted: true,
  });
});

Deno.test("interval accepts positive whole seconds written as plain digits", () => {
  for (const [raw, seconds] of [["30", 30], ["1", 1], ["86400", 86400]] as const) {
    assertEquals(resolveConfig({ env: withEnv({ KTR_INTERVAL: raw }) }).interval, seconds);
    assertEquals(resolveConfig({ env: REQUIRED_ENV, flags: { interval: raw } }).interval, seconds);
  }
});

Deno.test("interval strings are parsed strictly", () => {
  for (
    const raw of [
      "10s",
      "-5",
      "1e3",
      "",
      "0",
      "1.5",
      "+5",
      " 30",
      "30 ",
      "030",
      "0x1F",
      "86401",
      "5m",
    ]
  ) {
    const error = invalidEnv("KTR_INTERVAL", raw);
    assertEquals(error.key, "interval");
    assert(error.message.includes(JSON.stringify(raw)), error.message);
    assertMatch(error.message, /whole number of seconds/);
    const fromFlag = configError(() =>
      resolveConfig({ env: REQUIRED_ENV, flags: { interval: raw } })
    );
    assertEquals([fromFlag.code, fromFlag.key, fromFlag.source], [
      "CONFIG_INVALID",
      "interval",
      "flag",
    ]);
  }
});

Deno.test("interval from a file may be a YAML string or a number, and is checked the same way", () => {
  assertEquals(resolveConfig({ env: REQUIRED_ENV, file: { interval: "30" } }).interval, 30);
  assertEquals(resolveConfig({ env: REQUIRED_ENV, file: { interval: 30 } }).interval, 30);
  for (const raw of [0, -1, 1.5, 86401, "1e3", "10s", true, { seconds: 30 }, ["30"]]) {
    const error = configError(() => resolveConfig({ env: REQUIRED_ENV, file: { interval: raw } }));
    assertEquals([error.code, error.key, error.source], ["CONFIG_INVALID", "interval", "file"]);
    assertMessageStyle(error.message);
  }
});

Deno.test("log.level accepts debug, info, warn (or warning) and error, ignoring case", () => {
  const levels = [
    ["debug", "debug"],
    ["info", "info"],
    ["warn", "warning"],
    ["warning", "warning"],
    ["error", "error"],
    ["INFO", "info"],
    ["Warn", "warning"],
  ] as const;
  for (const [raw, level] of levels) {
    assertEquals(resolveConfig({ env: withEnv({ KTR_LOG_LEVEL: raw }) }).log.level, level);
  }
});

Deno.test("log.level refuses unknown levels instead of falling back", () => {
  for (const raw of ["trace", "verbose", "fatal", "", "info "]) {
    const error = invalidEnv("KTR_LOG_LEVEL", raw);
    assertEquals(error.key, "log.level");
    assertMatch(error.message, /"debug", "info", "warn" or "error"/);
  }
});

Deno.test("log.format is text or json", () => {
  assertEquals(resolveConfig({ env: withEnv({ KTR_LOG_FORMAT: "json" }) }).log.format, "json");
  assertEquals(resolveConfig({ env: withEnv({ KTR_LOG_FORMAT: "text" }) }).log.format, "text");
  const error = invalidEnv("KTR_LOG_FORMAT", "yaml");
  assertEquals(error.key, "log.format");
  assertMatch(error.message, /"text" or "json"/);
});

Deno.test("oidc.tokenurl must be an absolute https: URL", () => {
  assertEnvValues("KTR_OIDC_TOKENURL", {
    key: "oidc.tokenurl",
    accepted: [
      "https://auth.example.com/token",
      "https://auth.example.com:8443/realms/x/protocol/openid-connect/token",
    ],
    read: (config) => config.oidc.tokenUrl,
    refused: ["auth.example.com/token", "/token", "token", "ftp://auth.example.com/t", "https//x"],
    pattern: /absolute https: URL/,
  });
});

Deno.test("oidc.tokenurl allows http: only to a loopback host", () => {
  assertEnvValues("KTR_OIDC_TOKENURL", {
    key: "oidc.tokenurl",
    accepted: [
      "http://localhost/token",
      "http://localhost:8080/token",
      "http://127.0.0.1:9000/token",
      "http://127.45.6.7/token",
      "http://[::1]:8080/token",
    ],
    read: (config) => config.oidc.tokenUrl,
    refused: [
      "http://auth.example.com/token",
      "http://10.0.0.1/token",
      "http://128.0.0.1/token",
      "http://localhost.example.com/token",
      "http://[::2]/token",
    ],
    pattern: /http: is only allowed to localhost, 127\.0\.0\.0\/8 or \[::1\]/,
  });
});

Deno.test("oidc.tokenurl refuses credentials in the URL without printing the password", () => {
  const error = invalidEnv("KTR_OIDC_TOKENURL", `https://client:${SECRET}@auth.example.com/token`);
  assertEquals(error.key, "oidc.tokenurl");
  assert(!error.message.includes(SECRET), error.message);
  assertMatch(error.message, /user name or password/);
});

Deno.test("client id, client secret and the service account folder refuse surrounding whitespace", () => {
  for (const name of ["KTR_OIDC_CLIENTID", "KTR_OIDC_CLIENTSECRET", "KTR_KUBE_SERVICEACCOUNTDIR"]) {
    for (const value of ["x\n", " x", "\tx"]) invalidEnv(name, value);
  }
  const config = resolveConfig({ env: withEnv({ KTR_KUBE_SERVICEACCOUNTDIR: "/tmp/sa" }) });
  assertEquals(config.kube.serviceAccountDir, "/tmp/sa");
});

// --- where tokens come from, client authentication, request parameters -------------------

/** REQUIRED_ENV with some variables changed, and those set to undefined removed. */
function envWith(changes: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string | undefined> = { ...REQUIRED_ENV, ...changes };
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

/** The smallest environment for private_key_jwt. */
const PRIVATE_KEY_ENV = envWith({
  KTR_OIDC_CLIENTSECRET: undefined,
  KTR_OIDC_AUTHMETHOD: "private_key_jwt",
  KTR_OIDC_PRIVATEKEYFILE: "/run/key.pem",
});

Deno.test("oidc.issuer replaces oidc.tokenurl", () => {
  const config = resolveConfig({
    env: envWith({ KTR_OIDC_TOKENURL: undefined, KTR_OIDC_ISSUER: "https://auth.example.com/t/x" }),
  });
  assertEquals(config.oidc.issuer, "https://auth.example.com/t/x");
  assertEquals(config.oidc.tokenUrl, undefined);
  assertEquals("tokenUrl" in config.oidc, false);
});

Deno.test("resolveConfig() refuses oidc.tokenurl and oidc.issuer together, naming both sources", () => {
  const error = configError(() =>
    resolveConfig({
      env: REQUIRED_ENV,
      file: { oidc: { issuer: "https://auth.example.com" } },
      filePath: "ktr.yaml",
    })
  );
  assertEquals([error.code, error.key, error.source], [
    "CONFIG_CONFLICT",
    "oidc.issuer",
    "file",
  ]);
  assertEquals(error.others.length, 0);
  assertMatch(
    error.message,
    /^Conflicting keys oidc\.tokenurl "https:\/\/auth\.example\.com\/token"/,
  );
  assert(error.message.includes("environment variable KTR_OIDC_TOKENURL"), error.message);
  assert(error.message.includes('oidc.issuer "https://auth.example.com"'), error.message);
  assert(error.message.includes('config file "ktr.yaml"'), error.message);
  assertMatch(error.message, /set only one/);
  assertMessageStyle(error.message);
});

Deno.test("resolveConfig() asks for oidc.tokenurl or oidc.issuer when neither is set", () => {
  const error = configError(() => resolveConfig({ env: without("KTR_OIDC_TOKENURL") }));
  assertEquals([error.code, error.key, error.source], [
    "CONFIG_MISSING",
    "oidc.tokenurl",
    undefined,
  ]);
  for (const name of ["--oidc.tokenurl", "KTR_OIDC_TOKENURL", "--oidc.issuer", "KTR_OIDC_ISSUER"]) {
    assert(error.message.includes(name), error.message);
  }
  assertMessageStyle(error.message);
});

Deno.test("oidc.issuer follows the token URL's rules and has no query or fragment", () => {
  const issuer = (value: string) =>
    resolveConfig({ env: envWith({ KTR_OIDC_TOKENURL: undefined, KTR_OIDC_ISSUER: value }) });
  for (const url of ["https://a.example/", "https://a.example/realms/x", "http://127.0.0.1:8080"]) {
    assertEquals(issuer(url).oidc.issuer, url);
  }
  for (
    const [url, expected] of [
      ["http://a.example", /http: is only allowed to localhost/],
      ["https://a.example/?tenant=x", /without a query \(\?\) or fragment/],
      ["https://a.example/#x", /without a query \(\?\) or fragment/],
      ["https://a.example/?", /without a query/],
      [`https://c:${SECRET}@a.example`, /user name or password/],
      ["a.example", /absolute https: URL/],
    ] as const
  ) {
    const error = configError(() => issuer(url));
    assertEquals([error.code, error.key], ["CONFIG_INVALID", "oidc.issuer"]);
    assertMatch(error.message, expected);
    assert(!error.message.includes(SECRET), error.message);
  }
});

Deno.test("oidc.authmethod takes the three supported methods, ignoring case", () => {
  for (const method of ["client_secret_post", "client_secret_basic", "CLIENT_SECRET_BASIC"]) {
    const config = resolveConfig({ env: withEnv({ KTR_OIDC_AUTHMETHOD: method }) });
    assertEquals(config.oidc.authMethod, method.toLowerCase());
  }
  const jwt = resolveConfig({ env: PRIVATE_KEY_ENV });
  assertEquals(jwt.oidc.authMethod, "private_key_jwt");
  assertEquals(jwt.oidc.privateKeyFile, "/run/key.pem");
  assertEquals(jwt.oidc.clientSecret, undefined);
});

Deno.test("oidc.authmethod refuses none with client_credentials, and methods it does not support", () => {
  const none = configError(() => resolveConfig({ env: withEnv({ KTR_OIDC_AUTHMETHOD: "None" }) }));
  assertEquals([none.code, none.key], ["CONFIG_CONFLICT", "oidc.authmethod"]);
  assertMatch(none.message, /oidc\.grant "client_credentials" from the built-in default/);
  assertMatch(none.message, /only for clients that authenticate/);
  assertMatch(
    invalidEnv("KTR_OIDC_AUTHMETHOD", "basic").message,
    /expected "client_secret_post", "client_secret_basic", "private_key_jwt", "workload_identity" or "none"/,
  );
  for (const method of ["client_secret_jwt", "tls_client_auth"]) {
    assertMatch(invalidEnv("KTR_OIDC_AUTHMETHOD", method).message, /not supported/);
  }
  assertNotMatch(invalidEnv("KTR_OIDC_AUTHMETHOD", "basic").message, /;/);
});

Deno.test("oidc.clientsecretfile replaces oidc.clientsecret", () => {
  const config = resolveConfig({
    env: envWith({ KTR_OIDC_CLIENTSECRET: undefined }),
    flags: { "oidc.clientsecretfile": "/run/secrets/oidc/secret" },
  });
  assertEquals(config.oidc.clientSecretFile, "/run/secrets/oidc/secret");
  assertEquals(config.oidc.clientSecret, undefined);
});

Deno.test("resolveConfig() refuses oidc.clientsecret with oidc.clientsecretfile, without the secret", () => {
  const error = configError(() =>
    resolveConfig({ env: REQUIRED_ENV, flags: { "oidc.clientsecretfile": "/run/secret" } })
  );
  assertEquals([error.code, error.key, error.source], [
    "CONFIG_CONFLICT",
    "oidc.clientsecretfile",
    "flag",
  ]);
  assert(!error.message.includes(SECRET), error.message);
  assert(
    error.message.includes("oidc.clientsecret from environment variable KTR_OIDC_CLIENTSECRET"),
    error.message,
  );
  assert(
    error.message.includes('oidc.clientsecretfile "/run/secret" from flag --oidc.clientsecretfile'),
    error.message,
  );
  assertMessageStyle(error.message);
});

Deno.test("resolveConfig() asks for a secret or secret file for the secret methods", () => {
  for (const method of [undefined, "client_secret_basic"]) {
    const error = configError(() =>
      resolveConfig({
        env: envWith({ KTR_OIDC_CLIENTSECRET: undefined, KTR_OIDC_AUTHMETHOD: method }),
      })
    );
    assertEquals([error.code, error.key], ["CONFIG_MISSING", "oidc.clientsecret"]);
    for (const name of ["KTR_OIDC_CLIENTSECRET", "--oidc.clientsecretfile", "private_key_jwt"]) {
      assert(error.message.includes(name), error.message);
    }
    assert(error.message.includes(`"${method ?? "client_secret_post"}"`), error.message);
    assertMessageStyle(error.message);
  }
});

Deno.test("private_key_jwt needs oidc.privatekeyfile", () => {
  const error = configError(() =>
    resolveConfig({
      env: envWith({ KTR_OIDC_CLIENTSECRET: undefined, KTR_OIDC_AUTHMETHOD: "private_key_jwt" }),
    })
  );
  assertEquals([error.code, error.key], ["CONFIG_MISSING", "oidc.privatekeyfile"]);
  assertMatch(
    error.message,
    /^Missing required key oidc\.privatekeyfile for oidc\.authmethod "private_key_jwt" from environment variable KTR_OIDC_AUTHMETHOD: set it with --oidc\.privatekeyfile, KTR_OIDC_PRIVATEKEYFILE/,
  );
  assertMessageStyle(error.message);
});

Deno.test("private_key_jwt refuses a client secret or secret file, which it would not use", () => {
  for (
    const [name, key] of [
      ["KTR_OIDC_CLIENTSECRET", "oidc.clientsecret"],
      ["KTR_OIDC_CLIENTSECRETFILE", "oidc.clientsecretfile"],
    ] as const
  ) {
    const error = configError(() => resolveConfig({ env: { ...PRIVATE_KEY_ENV, [name]: SECRET } }));
    assertEquals([error.code, error.key, error.source], ["CONFIG_CONFLICT", key, "env"]);
    assertMatch(error.message, /is not used with oidc\.authmethod "private_key_jwt"/);
    assert(error.message.includes(`remove ${key}`), error.message);
    if (key === "oidc.clientsecret") assert(!error.message.includes(SECRET), error.message);
    assertMessageStyle(error.message);
  }
});

Deno.test("the private_key_jwt keys are refused with a secret method", () => {
  const values = {
    "oidc.privatekeyfile": "/run/key.pem",
    "oidc.keyid": "key-1",
    "oidc.keyalg": "ES256",
    "oidc.assertionaudience": "https://auth.example.com/",
  };
  for (const [key, value] of Object.entries(values)) {
    const error = configError(() => resolveConfig({ env: REQUIRED_ENV, flags: { [key]: value } }));
    assertEquals([error.code, error.key, error.source], ["CONFIG_CONFLICT", key, "flag"]);
    assert(
      error.message.includes(`${key} "${value}" from flag ${flagName(key)}`),
      error.message,
    );
    assertMatch(error.message, /only used with oidc\.authmethod "private_key_jwt"/);
    assertMatch(error.message, /"client_secret_post" from the built-in default/);
    assertMessageStyle(error.message);
  }
  const config = resolveConfig({ env: { ...PRIVATE_KEY_ENV }, flags: values });
  assertEquals(
    [config.oidc.keyId, config.oidc.keyAlg, config.oidc.assertionAudience],
    ["key-1", "ES256", "https://auth.example.com/"],
  );
});

Deno.test("resolveConfig() reports every combination problem of one pass, in schema order", () => {
  const error = configError(() =>
    resolveConfig({
      env: {
        ...REQUIRED_ENV,
        KTR_OIDC_ISSUER: "https://auth.example.com",
        KTR_OIDC_CLIENTSECRETFILE: "/run/secret",
        KTR_OIDC_KEYID: "key-1",
        KTR_INTERVAL: "0",
      },
    })
  );
  assertEquals([error, ...error.others].map((e) => [e.code, e.key]), [
    ["CONFIG_INVALID", "interval"],
    ["CONFIG_CONFLICT", "oidc.issuer"],
    ["CONFIG_CONFLICT", "oidc.clientsecretfile"],
    ["CONFIG_CONFLICT", "oidc.keyid"],
  ]);
});

Deno.test("resolveConfig() skips a combination rule when one of its keys is invalid", () => {
  const error = configError(() =>
    resolveConfig({
      env: withEnv({ KTR_OIDC_ISSUER: "ftp://x", KTR_OIDC_AUTHMETHOD: "client_secret_jwt" }),
    })
  );
  assertEquals([error, ...error.others].map((e) => [e.code, e.key]), [
    ["CONFIG_INVALID", "oidc.issuer"],
    ["CONFIG_INVALID", "oidc.authmethod"],
  ]);
});

Deno.test("oidc.keyalg takes the JWS names, ignoring case, and refuses HMAC", () => {
  for (
    const [raw, alg] of [["RS256", "RS256"], ["ps384", "PS384"], ["es512", "ES512"], [
      "EDDSA",
      "EdDSA",
    ], ["Ed25519", "Ed25519"]] as const
  ) {
    assertEquals(
      resolveConfig({ env: { ...PRIVATE_KEY_ENV, KTR_OIDC_KEYALG: raw } }).oidc.keyAlg,
      alg,
    );
  }
  const hmac = configError(() =>
    resolveConfig({ env: { ...PRIVATE_KEY_ENV, KTR_OIDC_KEYALG: "HS256" } })
  );
  assertEquals([hmac.code, hmac.key], ["CONFIG_INVALID", "oidc.keyalg"]);
  assertMatch(hmac.message, /client_secret_jwt, which is not supported/);
});

Deno.test("oidc.scope is space-separated scope names as OAuth writes them", () => {
  assertEnvValues("KTR_OIDC_SCOPE", {
    key: "oidc.scope",
    accepted: ["api.read", "api.read api.write", "api://x/.default", "openid"],
    read: (config) => config.oidc.scope,
    refused: ["a  b", 'a "b"', "a\\b", "a\tb", " a", "a,b c\u00e9"],
    pattern: /scope names separated by single spaces/,
  });
});

Deno.test("oidc.audience is any value without surrounding whitespace", () => {
  const config = resolveConfig({
    file: { oidc: { audience: "https://api.example.com" } },
    env: REQUIRED_ENV,
  });
  assertEquals(config.oidc.audience, "https://api.example.com");
  assertEquals(invalidEnv("KTR_OIDC_AUDIENCE", " x").key, "oidc.audience");
});

Deno.test("oidc.resource is a space-separated list in env and flags, and a string or list in the file", () => {
  const fromEnv = resolveConfig({
    env: withEnv({ KTR_OIDC_RESOURCE: "https://a.example/api urn:example:b" }),
  });
  assertEquals(fromEnv.oidc.resource, ["https://a.example/api", "urn:example:b"]);
  assert(Object.isFrozen(fromEnv.oidc.resource));
  const fromFlag = resolveConfig({ env: REQUIRED_ENV, flags: { "oidc.resource": "urn:x" } });
  assertEquals(fromFlag.oidc.resource, ["urn:x"]);
  const fromList = resolveConfig({
    env: REQUIRED_ENV,
    file: { oidc: { resource: ["https://a.example/", "https://b.example/"] } },
  });
  assertEquals(fromList.oidc.resource, ["https://a.example/", "https://b.example/"]);
  const fromString = resolveConfig({
    env: REQUIRED_ENV,
    file: { oidc: { resource: "https://a.example/" } },
  });
  assertEquals(fromString.oidc.resource, ["https://a.example/"]);
  assertEquals(JSON.parse(JSON.stringify(fromList)).oidc.resource, [
    "https://a.example/",
    "https://b.example/",
  ]);
});

Deno.test("oidc.resource refuses relative URIs, fragments and odd list items, naming the item", () => {
  assertEnvValues("KTR_OIDC_RESOURCE", {
    key: "oidc.resource",
    refused: ["api", "https://a.example/ api", "https://a.example/#x", " urn:x"],
    pattern: /absolute URIs without a fragment/,
  });
  assertMatch(invalidEnv("KTR_OIDC_RESOURCE", "urn:x relative").message, /got "relative"$/);
  for (
    const [resource, expected] of [
      [[], /got an empty list$/],
      [["urn:x", "a b"], /got the list item "a b"$/],
      [["urn:x", { uri: "urn:y" }], /got the list item a mapping$/],
      [["urn:x", null], /got the list item null$/],
      [{ uri: "urn:y" }, /got a mapping$/],
    ] as const
  ) {
    const error = configError(() =>
      resolveConfig({ env: REQUIRED_ENV, file: { oidc: { resource } }, filePath: "k.yaml" })
    );
    assertEquals([error.code, error.key, error.source], [
      "CONFIG_INVALID",
      "oidc.resource",
      "file",
    ]);
    assertMatch(error.message, expected);
    assertMessageStyle(error.message);
  }
});

Deno.test("oidc.cafile, oidc.clientsecretfile and oidc.audience refuse surrounding whitespace", () => {
  for (const name of ["KTR_OIDC_CAFILE", "KTR_OIDC_CLIENTSECRETFILE", "KTR_OIDC_AUDIENCE"]) {
    for (const value of ["x\n", " x"]) invalidEnv(name, value);
  }
  const config = resolveConfig({ env: withEnv({ KTR_OIDC_CAFILE: "/etc/ssl/private-ca.pem" }) });
  assertEquals(config.oidc.caFile, "/etc/ssl/private-ca.pem");
});

Deno.test("resolveConfig() refuses a string key given another YAML type, naming the type", () => {
  const error = configError(() =>
    resolveConfig({ env: without("KTR_OIDC_CLIENTID"), file: { oidc: { clientid: 12345 } } })
  );
  assertEquals([error.code, error.key, error.source], [
    "CONFIG_INVALID",
    "oidc.clientid",
    "file",
  ]);
  assertMatch(error.message, /got a number/);
});

Deno.test("resolveConfig() refuses a flag for a value key given without a value", () => {
  const error = configError(() =>
    resolveConfig({ env: REQUIRED_ENV, flags: { "secret.name": true } })
  );
  assertEquals([error.code, error.key, error.source], [
    "CONFIG_INVALID",
    "secret.name",
    "flag",
  ]);
  assertMatch(error.message, /without one/);
});

Deno.test("resolveConfig() refuses unknown flag keys with a hint", () => {
  const error = configError(() =>
    resolveConfig({ env: REQUIRED_ENV, flags: { "secret.nmae": "x" } })
  );
  assertEquals([error.code, error.key, error.source], [
    "CONFIG_UNKNOWN_KEY",
    "secret.nmae",
    "flag",
  ]);
  assertMatch(error.message, /did you mean "--secret\.name"\?/);
});

// --- the shape of the file ----------------------------------------------------------------

Deno.test("resolveConfig() names an unknown nested key by its full dotted path, with a hint", () => {
  const cases = [
    [{ oidc: { clientId: "x" } }, "oidc.clientId", "oidc.clientid"],
    [{ oidc: { tokenURL: "x" } }, "oidc.tokenURL", "oidc.tokenurl"],
    [{ secret: { nmae: "x" } }, "secret.nmae", "secret.name"],
    [{ tokenurl: "x" }, "tokenurl", "oidc.tokenurl"],
    [{ intervall: "5" }, "intervall", "interval"],
  ] as const;
  for (const [file, key, suggestion] of cases) {
    const error = configError(() =>
      resolveConfig({ env: REQUIRED_ENV, file, filePath: "ktr.yaml" })
    );
    assertEquals([error.code, error.key, error.source], ["CONFIG_UNKNOWN_KEY", key, "file"]);
    assert(error.message.includes(`"${key}"`), error.message);
    assert(error.message.includes(`did you mean "${suggestion}"?`), error.message);
    assert(error.message.includes("ktr.yaml"), error.message);
    assertMessageStyle(error.message);
  }
});

Deno.test("resolveConfig() lists the known keys when an unknown one is not close to any", () => {
  const top = configError(() => resolveConfig({ env: REQUIRED_ENV, file: { colour: "red" } }));
  assertMatch(
    top.message,
    /known keys are secret, interval, log, oidc, renew, leader, http, once, dry-run, kube/,
  );
  const nested = configError(() =>
    resolveConfig({ env: REQUIRED_ENV, file: { log: { colour: "x" } } })
  );
  assertEquals(nested.key, "log.colour");
  assertMatch(nested.message, /known keys under log are level, format/);
});

Deno.test("resolveConfig() refuses flat dotted keys in the file and says how to nest them", () => {
  const error = configError(() =>
    resolveConfig({ env: REQUIRED_ENV, file: { "secret.name": "x" } })
  );
  assertEquals([error.code, error.key, error.source], [
    "CONFIG_UNKNOWN_KEY",
    "secret.name",
    "file",
  ]);
  assertMatch(error.message, /nest it instead, as "name:" under "secret:"/);
});

Deno.test("resolveConfig() refuses a file that is not a mapping", () => {
  for (const file of [["secret"], "secret", 42, true]) {
    const error = configError(() => resolveConfig({ env: REQUIRED_ENV, file, filePath: "k.yaml" }));
    assertEquals([error.code, error.key, error.source], ["CONFIG_INVALID", undefined, "file"]);
    assertMatch(error.message, /expected a mapping/);
    assertMessageStyle(error.message);
  }
});

Deno.test("resolveConfig() takes an empty file as one without keys", () => {
  assertEquals(resolveConfig({ env: REQUIRED_ENV, file: null }).secret.key, "token");
});

Deno.test("resolveConfig() refuses a section that is not a mapping", () => {
  const error = configError(() => resolveConfig({ env: REQUIRED_ENV, file: { secret: "x" } }));
  assertEquals([error.code, error.key, error.source], ["CONFIG_INVALID", "secret", "file"]);
  assertMatch(error.message, /expected a mapping with the keys name, namespace, key/);
});

Deno.test("resolveConfig() refuses a mapping where a value belongs", () => {
  const error = configError(() =>
    resolveConfig({ env: without("KTR_SECRET_NAME"), file: { secret: { name: { first: "a" } } } })
  );
  assertEquals([error.code, error.key, error.source], [
    "CONFIG_INVALID",
    "secret.name",
    "file",
  ]);
  assertMatch(error.message, /got a mapping/);
});

// --- secrets never printed ----------------------------------------------------------------

/** A valid value for each key, and an invalid one. */
const SAMPLES: Readonly<Record<string, readonly [valid: string, invalid: string]>> = {
  "secret.name": ["my-token", "My_Token"],
  "secret.namespace": ["default", "a.b"],
  "secret.key": ["token", "a/b"],
  "secret.watch": ["false", "sometimes"],
  "interval": ["30", "10s"],
  "log.level": ["warn", "loud"],
  "log.format": ["json", "xml"],
  "oidc.tokenurl": ["https://auth.example.com/token", "http://auth.example.com/token"],
  "oidc.issuer": ["https://auth.example.com/realms/x", "https://auth.example.com/?tenant=x"],
  "oidc.clientid": ["my-client", " my-client"],
  "oidc.authmethod": ["client_secret_basic", "client_secret_jwt"],
  "oidc.grant": ["jwt_bearer", "password"],
  "oidc.clientsecret": [SECRET, ` ${SECRET}\n`],
  "oidc.clientsecretfile": ["/run/secret", "/run/secret\n"],
  "oidc.privatekeyfile": ["/run/key.pem", " /run/key.pem"],
  "oidc.keyid": ["key-1", "key-1 "],
  "oidc.keyalg": ["ES256", "HS256"],
  "oidc.assertionaudience": ["https://auth.example.com/", "auth.example.com"],
  "oidc.scope": ["api.read api.write", 'api.read  "api.write"'],
  "oidc.audience": ["https://api.example.com", ""],
  "oidc.resource": ["https://api.example.com/ urn:example:api", "https://api.example.com/#part"],
  "oidc.cafile": ["/etc/ca.crt", ""],
  "oidc.federation.tokenfile": ["/var/run/secrets/tokens/provider", " /token"],
  "oidc.federation.audience": ["api://AzureADTokenExchange", "api://Azure AD"],
  "oidc.federation.expiration": ["3600", "599"],
  "oidc.federation.tokentype": ["urn:ietf:params:oauth:token-type:id_token", "id_token"],
  "oidc.federation.params": ["connector_id=kubernetes", "grant_type=password"],
  "renew.percent": ["50", "0.5"],
  "leader.elect": ["true", "maybe"],
  "leader.lease": ["my-lease", "My_Lease"],
  "leader.namespace": ["default", "a.b"],
  "leader.duration": ["30", "15s"],
  "leader.renewdeadline": ["5", "0"],
  "leader.retryperiod": ["1", "2s"],
  "http.address": [":9090", "9090"],
  "once": ["true", "yes"],
  "dry-run": ["0", "no"],
  "kube.serviceaccountdir": ["/sa", ""],
};

Deno.test("SAMPLES cover every key", () => {
  assertEquals(Object.keys(SAMPLES), KEYS.map((d) => d.key));
});

Deno.test("no error message ever contains the client secret, whichever key is invalid", () => {
  const secrets = [SECRET, ` ${SECRET}\n`];
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const [, invalid] = SAMPLES[definition.key];
    const inputs: ConfigInput[] = [
      { env: withEnv({ [envName(definition.key)]: invalid }) },
      { env: REQUIRED_ENV, flags: { [definition.key]: invalid } },
      {
        env: {},
        file: {
          secret: { name: "a", namespace: "b" },
          oidc: { tokenurl: "https://x/t", clientid: "c", clientsecret: SECRET },
          [definition.key.split(".")[0]]: definition.key.includes(".")
            ? { [definition.key.split(".")[1]]: invalid }
            : invalid,
        },
      },
      // Many problems at once, so that every message is produced with the secret around.
      {
        env: withEnv({ KTR_OIDC_TOKENURL: "x", KTR_INTERVAL: "x", KTR_SECRET_NAME: "X" }),
        flags: { [definition.key]: invalid },
      },
    ];
    for (const input of inputs) {
      const error = configError(() => resolveConfig(input));
      for (const message of allMessages(error)) {
        for (const secret of secrets) {
          assert(!message.includes(secret.trim()), `${definition.key}: ${message}`);
        }
      }
    }
  }
});

Deno.test("an invalid client secret is described, not quoted", () => {
  const error = invalidEnv("KTR_OIDC_CLIENTSECRET", `${SECRET}\n`);
  assertEquals(error.key, "oidc.clientsecret");
  assert(!error.message.includes(SECRET), error.message);
  assertMatch(error.message, /^Invalid value for oidc\.clientsecret from environment variable/);
});

// --- message style ------------------------------------------------------------------------

Deno.test("every invalid value gives a one-line message that quotes it and says what is allowed", () => {
  for (const definition of KEYS as readonly KeyDefinition[]) {
    const [, invalid] = SAMPLES[definition.key];
    const error = configError(() =>
      resolveConfig({ env: REQUIRED_ENV, flags: { [definition.key]: invalid } })
    );
    assertEquals(error.key, definition.key);
    assert(error.message.includes(definition.key), error.message);
    assertMatch(error.message, /: expected /);
    if (!definition.secret) {
      assert(error.message.includes(JSON.stringify(invalid)), error.message);
    }
    assertMessageStyle(error.message);
  }
});

// --- parseKeyValue and the boolean kind ---------------------------------------------------

Deno.test("parseKeyValue() reads booleans strictly, for future flags like --once", () => {
  const once: KeyDefinition = {
    key: "once",
    field: "interval",
    kind: "boolean",
    default: false,
    description: "Refresh once and exit",
    allowed: '"true", "false", "1" or "0"',
  };
  for (
    const [raw, value] of [["true", true], ["1", true], [true, true], ["false", false], [
      "0",
      false,
    ], [false, false]] as const
  ) {
    assertEquals(parseKeyValue(once, raw), { ok: true, value });
  }
  for (const raw of ["yes", "no", "TRUE", "", "2", " true", 1]) {
    assertEquals(parseKeyValue(once, raw), { ok: false, problem: once.allowed });
  }
});

Deno.test("parseKeyValue() reports what is wrong in terms of what is allowed", () => {
  const interval = definitionOf("interval");
  const result = parseKeyValue(interval, "10s");
  assertEquals(result.ok, false);
  if (!result.ok) assertEquals(result.problem, interval.allowed);
});

// --- warnings and hints -------------------------------------------------------------------

Deno.test("envWarnings() names unknown KTR_ variables and the closest valid name", () => {
  const warnings = envWarnings({
    ...REQUIRED_ENV,
    KTR_SECRETNAME: SECRET,
    KTR_OIDC_CLIENT_ID: "x",
    KTR_LOGLEVEL: "debug",
    KTR_WHATEVER: "x",
    HOME: "/root",
    PATH: "/bin",
  });
  assertEquals(warnings, [
    "Ignoring unknown environment variable KTR_LOGLEVEL: did you mean KTR_LOG_LEVEL?",
    "Ignoring unknown environment variable KTR_OIDC_CLIENT_ID: did you mean KTR_OIDC_CLIENTID?",
    "Ignoring unknown environment variable KTR_SECRETNAME: did you mean KTR_SECRET_NAME?",
    "Ignoring unknown environment variable KTR_WHATEVER: no configuration key reads it (run with --help to list them)",
  ]);
  for (const warning of warnings) assertMessageStyle(warning);
});

Deno.test("envWarnings() is quiet when every KTR_ variable is known", () => {
  assertEquals(envWarnings({ ...REQUIRED_ENV, KTR_INTERVAL: "5", OTHER: "x" }), []);
});

Deno.test("closestMatch() finds case, separator, typo and nesting mistakes", () => {
  const keys = KEYS.map((d) => d.key);
  assertEquals(closestMatch("oidc.clientId", keys), "oidc.clientid");
  assertEquals(closestMatch("oidc.tokenURL", keys), "oidc.tokenurl");
  assertEquals(closestMatch("oidc.client_secret", keys), "oidc.clientsecret");
  assertEquals(closestMatch("secret.nmae", keys), "secret.name");
  assertEquals(closestMatch("lgo.level", keys), "log.level");
  assertEquals(closestMatch("clientsecret", keys), "oidc.clientsecret");
  assertEquals(closestMatch("colour", keys), undefined);
  assertEquals(closestMatch("x", []), undefined);
});

// --- loading the file ---------------------------------------------------------------------

function fakeRead(text: string) {
  return { readTextFile: () => Promise.resolve(text) };
}

const SPEC_EXAMPLE = `secret:
  name: my-token
  namespace: my-namespace
  key: token
interval: 500
log:
  level: info
  format: text
oidc:
  tokenurl: https://auth.example.com/token
  clientid: my-client
  clientsecret: s3cr3t
`;

Deno.test("loadConfigFile() reads the contract's example file into a full config", async () => {
  const file = await loadConfigFile("ktr.yaml", fakeRead(SPEC_EXAMPLE));
  const config = resolveConfig({ file, filePath: "ktr.yaml", env: {} });
  assertEquals(config, {
    secret: { name: "my-token", namespace: "my-namespace", key: "token", watch: true },
    interval: 500,
    log: { level: "info", format: "text" },
    oidc: {
      tokenUrl: "https://auth.example.com/token",
      clientId: "my-client",
      authMethod: "client_secret_post",
      grant: "client_credentials",
      clientSecret: "s3cr3t",
    },
    renew: { percent: 67 },
    leader: { elect: false, duration: 15, renewDeadline: 10, retryPeriod: 2 },
    http: { address: ":8080" },
    once: false,
    dryRun: false,
    kube: { serviceAccountDir: "/var/run/secrets/kubernetes.io/serviceaccount" },
    configFile: "ktr.yaml",
  });
});

Deno.test("loadConfigFile() keeps scalars as written and turns YAML nulls into null", async () => {
  const file = await loadConfigFile(
    "ktr.yaml",
    fakeRead(
      "interval: 1e3\noidc:\n  clientid: 0123\n  clientsecret: \"true\"\nsecret:\n  key:\n  name: ~\n  namespace: null\nlog:\n  level: 'null'\n",
    ),
  );
  assertEquals(file, {
    interval: "1e3",
    oidc: { clientid: "0123", clientsecret: "true" },
    secret: { key: null, name: null, namespace: null },
    log: { level: "null" },
  });
});

Deno.test("loadConfigFile() values are checked as strictly as environment values", async () => {
  const file = await loadConfigFile("ktr.yaml", fakeRead("interval: 1e3\n"));
  const error = configError(() => resolveConfig({ file, filePath: "ktr.yaml", env: REQUIRED_ENV }));
  assertEquals([error.code, error.key, error.source], ["CONFIG_INVALID", "interval", "file"]);
  assertMatch(error.message, /"1e3"/);
  const ok = await loadConfigFile("ktr.yaml", fakeRead('interval: "30"\n'));
  assertEquals(resolveConfig({ file: ok, env: REQUIRED_ENV }).interval, 30);
});

Deno.test("loadConfigFile() returns null for an empty or comment-only file", async () => {
  assertEquals(await loadConfigFile("ktr.yaml", fakeRead("")), null);
  assertEquals(await loadConfigFile("ktr.yaml", fakeRead("# nothing yet\n")), null);
});

Deno.test("loadConfigFile() reports YAML syntax errors with line and column", async () => {
  const cases = [
    ["secret:\n  name: 'my-token\n", 3, 1, /Missing closing 'quote/],
    ["secret:\n\tname: x\n", 2, 1, /Tabs are not allowed/],
    ["interval: 1\ninterval: 2\n", 2, 1, /unique/],
    ["a: b\n---\nc: d\n", 2, 1, /more than one YAML document/],
    ["secret:\n  name: a\n   namespace: b\n", 2, 9, /Nested mappings/],
  ] as const;
  for (const [text, line, column, pattern] of cases) {
    const error = await configErrorAsync(() => loadConfigFile("ktr.yaml", fakeRead(text)));
    assertEquals(error.code, "CONFIG_FILE_SYNTAX");
    assertEquals(error.source, "file");
    assertEquals([error.line, error.column], [line, column], error.message);
    assert(
      error.message.includes(`"ktr.yaml" at line ${line}, column ${column}: `),
      error.message,
    );
    assertMatch(error.message, pattern);
    assertMessageStyle(error.message);
  }
});

Deno.test("loadConfigFile() reports an alias without anchor as a syntax error", async () => {
  const error = await configErrorAsync(() =>
    loadConfigFile("ktr.yaml", fakeRead("oidc: *nothing\n"))
  );
  assertEquals(error.code, "CONFIG_FILE_SYNTAX");
  assertMatch(error.message, /Unresolved alias/);
});

Deno.test("loadConfigFile() does not echo a secret from a syntax error", async () => {
  const text = `oidc:\n  clientsecret: "${SECRET}\\q"\n`;
  const error = await configErrorAsync(() => loadConfigFile("ktr.yaml", fakeRead(text)));
  assertEquals(error.code, "CONFIG_FILE_SYNTAX");
  assert(!error.message.includes(SECRET), error.message);
});

Deno.test("loadConfigFile() says why a file cannot be read", async () => {
  const cases = [
    [new Deno.errors.NotFound("No such file or directory (os error 2)"), /: no such file$/],
    [new Deno.errors.PermissionDenied("Permission denied (os error 13)"), /: permission denied$/],
    [new Deno.errors.IsADirectory("Is a directory (os error 21)"), /: it is a directory$/],
    [new Deno.errors.NotCapable("Requires read access"), /--allow-read/],
    [new Error("Disk on fire."), /: Disk on fire$/],
  ] as const;
  for (const [cause, pattern] of cases) {
    const error = await configErrorAsync(() =>
      loadConfigFile("/etc/ktr.yaml", { readTextFile: () => Promise.reject(cause) })
    );
    assertEquals(error.code, "CONFIG_FILE_UNREADABLE");
    assertEquals(error.source, "file");
    assertEquals(error.cause, cause);
    assertMatch(error.message, /^Cannot read config file "\/etc\/ktr\.yaml": /);
    assertMatch(error.message, pattern);
    assertMessageStyle(error.message);
  }
});

Deno.test("loadConfigFile() reads a real file by default", async () => {
  const path = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(path, "interval: 42\n");
    assertEquals(await loadConfigFile(path), { interval: "42" });
    const missing = await configErrorAsync(() => loadConfigFile(`${path}.missing`));
    assertEquals(missing.code, "CONFIG_FILE_UNREADABLE");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("YAML_PARSER_ENV names the variables the yaml package reads", () => {
  assertEquals(YAML_PARSER_ENV, ["LOG_TOKENS", "LOG_STREAM"]);
});

Deno.test("resolveConfig() reads the mode flags and the renewal point", () => {
  const config = resolveConfig({
    env: { ...REQUIRED_ENV, KTR_RENEW_PERCENT: "50", KTR_DRY_RUN: "0" },
    flags: { once: true, "http.address": "127.0.0.1:9000" },
  });
  assertEquals(config.renew.percent, 50);
  assertEquals(config.once, true);
  assertEquals(config.dryRun, false);
  assertEquals(config.http.address, "127.0.0.1:9000");
  const dry = resolveConfig({ env: { ...REQUIRED_ENV, KTR_DRY_RUN: "1" } });
  assertEquals([dry.once, dry.dryRun], [false, true]);
});

Deno.test("resolveConfig() refuses a renewal point outside 1..99 and a bad listen address", () => {
  for (
    const [env, key] of [
      [{ KTR_RENEW_PERCENT: "100" }, "renew.percent"],
      [{ KTR_RENEW_PERCENT: "0" }, "renew.percent"],
      [{ KTR_HTTP_ADDRESS: "8080" }, "http.address"],
      [{ KTR_HTTP_ADDRESS: ":99999" }, "http.address"],
      [{ KTR_HTTP_ADDRESS: "" }, "http.address"],
      [{ KTR_ONCE: "yes" }, "once"],
    ] as const
  ) {
    const err = assertThrows(
      () => resolveConfig({ env: { ...REQUIRED_ENV, ...env } }),
      ConfigError,
    );
    assertEquals([err.code, err.key], ["CONFIG_INVALID", key], key);
  }
  for (const address of ["off", ":0", "[::1]:8080", "localhost:80"]) {
    const config = resolveConfig({ env: { ...REQUIRED_ENV, KTR_HTTP_ADDRESS: address } });
    assertEquals(config.http.address, address);
  }
});

// --- leader election ------------------------------------------------------------------------

Deno.test("leader durations: duration > renewdeadline > retryperiod × 1.2, each error naming its rule", () => {
  const ok = resolveConfig({
    env: withEnv({
      KTR_LEADER_ELECT: "true",
      KTR_LEADER_DURATION: "4",
      KTR_LEADER_RENEWDEADLINE: "3",
    }),
  });
  assertEquals(ok.leader, { elect: true, duration: 4, renewDeadline: 3, retryPeriod: 2 });
  const long = configError(() =>
    resolveConfig({ env: withEnv({ KTR_LEADER_DURATION: "10", KTR_LEADER_RENEWDEADLINE: "10" }) })
  );
  assertEquals([long.code, long.key], ["CONFIG_CONFLICT", "leader.duration"]);
  assertStringIncludes(long.message, "rule: leader.duration > leader.renewdeadline");
  assertStringIncludes(long.message, "environment variable KTR_LEADER_DURATION");
  const tight = configError(() =>
    resolveConfig({
      env: REQUIRED_ENV,
      flags: { "leader.renewdeadline": "6", "leader.retryperiod": "5" },
    })
  );
  assertEquals([tight.code, tight.key], ["CONFIG_CONFLICT", "leader.renewdeadline"]);
  assertStringIncludes(tight.message, "rule: leader.renewdeadline > leader.retryperiod × 1.2");
  assertStringIncludes(tight.message, "flag --leader.renewdeadline");
  const lease = configError(() =>
    resolveConfig({ env: withEnv({ KTR_LEADER_LEASE: "Not_A_Name" }) })
  );
  assertEquals([lease.code, lease.key], ["CONFIG_INVALID", "leader.lease"]);
});

Deno.test("leader.elect with targets needs leader.lease: there is no secret.name to name it after", () => {
  const file = { targets: [{ name: "api-token", namespace: "team-a" }] };
  const env = {
    KTR_OIDC_TOKENURL: "https://auth.example.com/token",
    KTR_OIDC_CLIENTID: "app",
    KTR_OIDC_CLIENTSECRET: SECRET,
    KTR_LEADER_ELECT: "true",
  };
  const error = configError(() => resolveConfig({ file, env }));
  assertEquals([error.code, error.key], ["CONFIG_MISSING", "leader.lease"]);
  assertStringIncludes(error.message, "--leader.lease");
  const config = resolveConfig({ file, env: { ...env, KTR_LEADER_LEASE: "refresher" } });
  assertEquals(config.leader.lease, "refresher");
});
