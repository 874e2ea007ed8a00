import { assert, assertEquals, assertMatch } from "../../tests/assert.ts";
import { ConfigError, resolveConfig } from "../config/mod.ts";
import { parseTargets } from "./config.ts";
import { renderData } from "./render.ts";

const WHERE = 'config file "ktr.yaml"';
const OIDC = {
  KTR_OIDC_TOKENURL: "https://auth.example.com/token",
  KTR_OIDC_CLIENTID: "app",
  KTR_OIDC_CLIENTSECRET: "s3cr3t-value",
};

function errorsOf(raw: unknown): string[] {
  return parseTargets(raw, WHERE).errors.map((e) => `${e.key}: ${e.message}`);
}

Deno.test("parseTargets() reads the issue's example, with the default data", () => {
  const { targets, errors } = parseTargets([
    { name: "api-token", namespace: "team-a" },
    { name: "api-token", namespaces: ["team-*", "ci"], excludeNamespaces: ["kube-*"] },
    {
      name: "api-token2",
      namespaceSelector: "ktr.appuio.ch/inject=true",
      prune: "true",
      labels: { "app.kubernetes.io/part-of": "billing" },
      annotations: { team: "billing" },
      data: {
        token: "{{ .token }}",
        authorization: "Bearer {{.token}}",
        "expires-at": "{{ .expiresAt }}",
      },
    },
    {
      name: "registry-pull",
      namespaceSelector: "pull-from=registry.example.com",
      type: "kubernetes.io/dockerconfigjson",
      dockerconfig: { registry: "registry.example.com", username: "oauth2accesstoken" },
    },
  ], WHERE);
  assertEquals(errors, []);
  assertEquals(targets.length, 4);
  assertEquals(targets[0].data.map((d) => d.key), ["token"]);
  assert(targets[1].matchesName("team-x") && targets[1].matchesName("ci"));
  assert(!targets[1].matchesName("cid"));
  assert(targets[1].excluded("kube-system"));
  assertEquals(targets[2].prune, true);
  assertEquals(targets[3].data, []);
  assertEquals(targets[2].id, "api-token2:namespaceSelector=ktr.appuio.ch/inject=true");
});

Deno.test("parseTargets() names the index and field of every problem", () => {
  const errors = errorsOf([
    { name: "Bad_Name", namespace: "a" },
    { name: "ok", namespace: "a", namespaces: ["b"] },
    { name: "ok2" },
    { name: "ok3", namespaceSelector: "a in (" },
    { name: "ok4", namespace: "a", data: { token: "{{ .tokn }}" } },
    { name: "ok5", namespace: "a", type: "kubernetes.io/tls" },
    { name: "ok6", namespace: "a", dockerconfig: { registry: "r", username: "u" } },
    { name: "ok7", namespace: "a", type: "kubernetes.io/dockerconfigjson" },
    { name: "ok8", namespace: "a", prnue: "true" },
  ]);
  assertMatch(errors[0], /^targets\[0\]\.name: .*DNS-1123/);
  assertMatch(
    errors[1],
    /^targets\[1\]\.namespaces: .*exactly one of namespace, namespaces and namespaceSelector/,
  );
  assertMatch(errors[2], /^targets\[2\]: .*exactly one of namespace/);
  assertMatch(errors[3], /^targets\[3\]\.namespaceSelector: .*label selector/);
  assertMatch(
    errors[4],
    /^targets\[4\]\.data\.token: .*unknown placeholder "\{\{ \.tokn \}\}"; placeholders are \{\{ \.token \}\}/,
  );
  assertMatch(
    errors[5],
    /^targets\[5\]\.type: .*expected Opaque or kubernetes.io\/dockerconfigjson/,
  );
  assertMatch(
    errors[6],
    /^targets\[6\]\.dockerconfig: .*needs type: kubernetes.io\/dockerconfigjson/,
  );
  assertMatch(errors[7], /^targets\[7\]\.dockerconfig: .*needs dockerconfig/);
  assertMatch(errors[8], /^targets\[8\]\.prnue: .*did you mean "prune"/);
});

Deno.test("resolveConfig(): targets with a user-set secret.* key is a conflict naming both; defaults do not count", () => {
  const file = { targets: [{ name: "api-token", namespace: "team-a" }] };
  for (
    const input of [
      { file, env: { ...OIDC, KTR_SECRET_NAME: "x" } },
      { file: { ...file, secret: { namespace: "y" } }, env: OIDC },
      { file, env: OIDC, flags: { "secret.key": "k" } },
    ]
  ) {
    try {
      resolveConfig(input);
      throw new Error("expected a ConfigError");
    } catch (err) {
      assert(err instanceof ConfigError);
      assertEquals(err.code, "CONFIG_CONFLICT");
      assertMatch(err.message, /targets and secret\.(name|namespace|key)/);
    }
  }
  // The in-pod namespace default and secret.watch are fine.
  const config = resolveConfig({
    file,
    env: { ...OIDC, KTR_SECRET_WATCH: "false" },
    defaults: { "secret.namespace": "pod-ns" },
  });
  assertEquals(config.targets?.length, 1);
  assertEquals(config.secret.watch, false);
});

Deno.test("resolveConfig(): two targets on the same fixed Secret are a config error", () => {
  try {
    resolveConfig({
      file: {
        targets: [
          { name: "api-token", namespace: "team-a" },
          { name: "api-token", namespaces: ["team-*"] },
        ],
      },
      env: OIDC,
    });
    throw new Error("expected a ConfigError");
  } catch (err) {
    assert(err instanceof ConfigError);
    assertEquals(err.key, "targets[1]");
    assertEquals(err.code, "CONFIG_CONFLICT");
  }
});

Deno.test("templates render byte-exact; .dockerconfigjson auth decodes to username:token", () => {
  const { targets } = parseTargets([
    {
      name: "a",
      namespace: "n",
      data: {
        token: "{{ .token }}",
        authorization: "{{.tokenType}} {{.token}}",
        "expires-at": "{{ .expiresAt }}",
        "expires-unix": "{{ .expiresAtUnix}}",
        obtained: "{{ .obtainedAt }}",
        literal: "x-{{ .token }}-y",
      },
    },
    {
      name: "b",
      namespace: "n",
      type: "kubernetes.io/dockerconfigjson",
      dockerconfig: { registry: "registry.example.com", username: "oauth2accesstoken" },
    },
  ], WHERE);
  const token = {
    value: "tok.en-1",
    obtainedAt: Date.UTC(2026, 0, 2, 3, 4, 5, 678),
    expiresAt: Date.UTC(2026, 0, 2, 4, 4, 5, 678),
    lifetimeSeconds: 3600,
    lifetimeSource: "expires_in" as const,
    tokenType: "Bearer",
  };
  const decoded = Object.fromEntries(
    Object.entries(renderData(targets[0], token)).map(([k, v]) => [k, atob(v)]),
  );
  assertEquals(decoded, {
    token: "tok.en-1",
    authorization: "Bearer tok.en-1",
    "expires-at": "2026-01-02T04:04:05Z",
    "expires-unix": String(Math.floor(token.expiresAt / 1000)),
    obtained: "2026-01-02T03:04:05Z",
    literal: "x-tok.en-1-y",
  });
  const unknownExpiry = renderData(targets[0], {
    value: "t",
    obtainedAt: 0,
    lifetimeSource: "unknown",
  });
  assertEquals(atob(unknownExpiry["expires-at"]), "");
  const docker = JSON.parse(atob(renderData(targets[1], token)[".dockerconfigjson"]));
  const entry = docker.auths["registry.example.com"];
  assertEquals(entry.password, "tok.en-1");
  assertEquals(atob(entry.auth), "oauth2accesstoken:tok.en-1");
});
