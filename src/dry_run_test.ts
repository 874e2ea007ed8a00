import { assert, assertEquals, assertMatch, assertNotIncludes } from "../tests/assert.ts";
import { createFakeKube, type FakeKube, fakeKubeClient } from "../tests/fixtures/fake_kube.ts";
import { dryRun, type DryRunReport, formatDryRunReport } from "./dry_run.ts";
import { TokenError } from "./oidc/mod.ts";
import type { Token, TokenSource } from "./token.ts";

const NOW = 1_700_000_000_000;
const TOKEN = "header.dry-run-secret-token.signature";
const target = { namespace: "ns", name: "tok", key: "token" };
const schedule = { intervalMs: 500_000, renewFraction: 0.67 };

function tokenSource(error?: Error): TokenSource {
  return {
    fetchToken() {
      if (error) return Promise.reject(error);
      const token: Token = {
        value: TOKEN,
        obtainedAt: NOW,
        lifetimeSeconds: 300,
        expiresAt: NOW + 300_000,
        lifetimeSource: "expires_in",
      };
      return Promise.resolve(token);
    },
  };
}

function run(fake: FakeKube, error?: Error, watch?: boolean): Promise<DryRunReport> {
  const client = fakeKubeClient(fake, {
    authorization: "Bearer sa",
    description: "service account in /sa",
  });
  return dryRun({
    source: tokenSource(error),
    client,
    target,
    server: "https://kube.test",
    schedule,
    now: () => NOW,
    ...(watch === undefined ? {} : { watch }),
  });
}

function withSecret(fake: FakeKube): FakeKube {
  fake.secrets.set("ns/tok", {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "tok", namespace: "ns", resourceVersion: "1" },
    data: { token: btoa("old-token-in-secret") },
  });
  return fake;
}

Deno.test("dryRun() with every permission and no Secret: would create it, writes nothing", async () => {
  const fake = createFakeKube();
  const report = await run(fake);
  assertEquals(report.problems, []);
  assertEquals(report.action, "create");
  assertEquals(report.secret, "missing");
  assertEquals(report.token, {
    ok: true,
    length: TOKEN.length,
    expiresAt: NOW + 300_000,
    lifetimeSource: "expires_in",
    nextRefreshAt: NOW + 201_000,
  });
  assertEquals(fake.accessReviews, [
    { namespace: "ns", resource: "secrets", group: "", verb: "get", name: "tok" },
    { namespace: "ns", resource: "secrets", group: "", verb: "patch", name: "tok" },
    { namespace: "ns", resource: "secrets", group: "", verb: "create", name: "tok" },
    { namespace: "ns", resource: "secrets", group: "", verb: "list", name: "tok" },
    { namespace: "ns", resource: "secrets", group: "", verb: "watch", name: "tok" },
    { namespace: "ns", resource: "events", group: "events.k8s.io", verb: "create" },
    { namespace: "ns", resource: "events", group: "events.k8s.io", verb: "patch" },
  ]);
  // Only access reviews (which store nothing) and one read.
  const calls = fake.requests.map((r) => `${r.method} ${r.path}`);
  assertEquals(calls, [
    ...Array(7).fill("POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
    "GET /api/v1/namespaces/ns/secrets/tok",
    "GET /api/v1/namespaces/ns",
  ]);
  assertEquals(report.namespace, "exists");
  assertEquals(fake.secrets.size, 0);
});

Deno.test("dryRun() with the Secret present would update it and needs no create permission", async () => {
  const fake = withSecret(createFakeKube());
  fake.forbidden.add("create");
  const report = await run(fake);
  assertEquals(report.problems, []);
  assertEquals(report.action, "update");
  assertEquals(atob(fake.secrets.get("ns/tok")?.data?.token ?? ""), "old-token-in-secret");
  const text = formatDryRunReport(report, NOW);
  assertMatch(
    text,
    /^Permission create secret "tok" in namespace "ns": MISSING \(needed only to create the Secret again if it is deleted\)$/m,
  );
  assertMatch(text, /^Would: set key "token" of Secret "tok" in namespace "ns"/m);
  assertMatch(text, /^Result: OK, a run would succeed$/m);
});

Deno.test("dryRun() without the Secret and without create permission reports the missing rule", async () => {
  const fake = createFakeKube();
  fake.forbidden.add("create");
  fake.forbidden.add("events-create");
  const report = await run(fake);
  assertEquals(report.problems, [
    'Permission missing: create secret "tok" in namespace "ns"; grant it with a Role rule {apiGroups: [""], resources: ["secrets"], resourceNames: ["tok"], verbs: ["create"]}',
  ]);
  assertMatch(formatDryRunReport(report, NOW), /^Result: FAILED, 1 problem above$/m);
});

Deno.test("dryRun() without patch permission names the rule restricted to the Secret", async () => {
  const fake = withSecret(createFakeKube());
  fake.forbidden.add("patch");
  const report = await run(fake);
  assertEquals(report.problems, [
    'Permission missing: patch secret "tok" in namespace "ns"; grant it with a Role rule {apiGroups: [""], resources: ["secrets"], resourceNames: ["tok"], verbs: ["patch"]}',
  ]);
  assertMatch(
    formatDryRunReport(report, NOW),
    /^Permission patch secret "tok" in namespace "ns": MISSING$/m,
  );
});

Deno.test("dryRun() says whether watch and Events are permitted; without Events a run only logs", async () => {
  const fake = withSecret(createFakeKube());
  fake.forbidden.add("watch");
  fake.forbidden.add("events-create");
  const report = await run(fake);
  assertEquals(report.problems, [
    'Permission missing: watch secret "tok" in namespace "ns"; grant it with a Role rule {apiGroups: [""], resources: ["secrets"], resourceNames: ["tok"], verbs: ["watch"]}',
  ]);
  const text = formatDryRunReport(report, NOW);
  assertMatch(
    text,
    /^Watch: NOT permitted \(list and watch on the Secret\): grant them, or set secret.watch to false$/m,
  );
  assertMatch(
    text,
    /^Events: NOT permitted \(events.k8s.io create and patch\): a run only logs what happens$/m,
  );
});

Deno.test("dryRun() without get permission does not read the Secret and cannot tell the action", async () => {
  const fake = createFakeKube();
  fake.forbidden.add("get");
  const report = await run(fake);
  assertEquals(report.secret, { unknown: "no permission to get it" });
  assertEquals(report.action, undefined);
  assertEquals(report.problems.length, 1);
  assert(
    !fake.requests.some((r) => r.method === "GET" && r.path.includes("/secrets")),
    "read without permission",
  );
});

Deno.test("dryRun() reports a failed token request and still checks Kubernetes", async () => {
  const fake = createFakeKube();
  const report = await run(
    fake,
    new TokenError('Token endpoint refused the request with HTTP 401, error "invalid_client"', {
      code: "TOKEN_PROVIDER_ERROR",
      status: 401,
    }),
  );
  assertEquals(report.token.ok, false);
  assertEquals(report.problems, [
    'No token: Token endpoint refused the request with HTTP 401, error "invalid_client"',
  ]);
  assertEquals(fake.accessReviews.length, 7);
  const text = formatDryRunReport(report, NOW);
  assertMatch(text, /^Token: FAILED: Token endpoint refused the request with HTTP 401/m);
  assert(!/^Would: refresh again/m.test(text), "no schedule without a token");
});

Deno.test("dryRun() reports access reviews the API server refuses", async () => {
  const fake = createFakeKube();
  fake.acceptedTokens.add("some-other-token");
  const report = await run(fake);
  assert(!Array.isArray(report.permissions));
  assertMatch(report.problems[0], /^Permissions could not be reviewed: .*HTTP 401/);
  assertMatch(
    formatDryRunReport(report, NOW),
    /^Permissions: FAILED: Kubernetes API answered create \/apis\/authorization\.k8s\.io\/v1\/selfsubjectaccessreviews with HTTP 401/m,
  );
});

Deno.test("formatDryRunReport() shows the token's length and expiry, never the token", async () => {
  const fake = withSecret(createFakeKube());
  const text = formatDryRunReport(await run(fake), NOW);
  assertEquals(
    text,
    [
      "Dry run: nothing is written.",
      `Token: obtained, ${TOKEN.length} characters (not shown), expires 2023-11-14T22:18:20.000Z (in 300 s, from expires_in)`,
      "Kubernetes: https://kube.test (service account in /sa)",
      'Permission get secret "tok" in namespace "ns": allowed',
      'Permission patch secret "tok" in namespace "ns": allowed',
      'Permission create secret "tok" in namespace "ns": allowed',
      'Permission list secret "tok" in namespace "ns": allowed',
      'Permission watch secret "tok" in namespace "ns": allowed',
      'Permission create events in namespace "ns": allowed',
      'Permission patch events in namespace "ns": allowed',
      "Watch: permitted: a deleted or overwritten Secret is written back within a second",
      "Events: permitted (events.k8s.io create and patch)",
      'Namespace "ns": exists',
      'Secret "tok" in namespace "ns": exists',
      'Would: set key "token" of Secret "tok" in namespace "ns", label ktr.appuio.ch/managed: "true" and the ktr.appuio.ch annotations with one server-side apply, keeping its other keys, labels and annotations',
      "Would: refresh again at 2023-11-14T22:16:41.000Z (in 201 s)",
      "Result: OK, a run would succeed",
      "",
    ].join("\n"),
  );
  assertNotIncludes(text, TOKEN);
  assertNotIncludes(text, "dry-run-secret-token");
  assertNotIncludes(text, "old-token-in-secret");
});

Deno.test("dryRun() fails for a namespace that does not exist, read with get namespaces", async () => {
  const fake = createFakeKube();
  fake.namespaces = new Set(["other"]);
  const report = await run(fake);
  assertEquals(report.namespace, "missing");
  assertEquals(report.action, undefined);
  assertEquals(report.problems, [
    'Namespace "ns" does not exist: create it (kubectl create namespace ns), or set secret.namespace to the namespace the Secret belongs in',
  ]);
  const text = formatDryRunReport(report, NOW);
  assertMatch(text, /^Namespace "ns": DOES NOT EXIST$/m);
  assert(!/^Would: create/m.test(text), text);
  assertMatch(text, /^Result: FAILED, 1 problem above$/m);
});

Deno.test("dryRun() without get namespaces asks a dry-run apply, which stores nothing", async () => {
  for (const [namespaces, expected] of [[["ns"], "exists"], [["other"], "missing"]] as const) {
    const fake = createFakeKube();
    fake.namespaces = new Set(namespaces);
    fake.forbidden.add("get namespaces");
    const report = await run(fake);
    assertEquals(report.namespace, expected);
    assertEquals(report.problems.length, expected === "missing" ? 1 : 0, report.problems.join());
    assertEquals(fake.requests.at(-1)?.method, "PATCH");
    assertEquals(fake.requests.at(-1)?.path, "/api/v1/namespaces/ns/secrets/tok");
    assertEquals(fake.secrets.size, 0);
  }
});

Deno.test("dryRun() says it cannot tell the namespace, and which permissions it lacks", async () => {
  const fake = createFakeKube();
  fake.namespaces = new Set(["other"]);
  fake.forbidden.add("get namespaces");
  fake.forbidden.add("create");
  const report = await run(fake);
  assert(typeof report.namespace === "object");
  assertMatch(
    formatDryRunReport(report, NOW),
    /^Namespace "ns": unknown, cannot tell: the identity may neither get namespace "ns" \(a ClusterRole rule \{apiGroups: \[""\], resources: \["namespaces"\], resourceNames: \["ns"\], verbs: \["get"\]\}\) nor patch and create secret "tok" in it/m,
  );
  // Nothing was created to find out.
  assert(!fake.requests.some((r) => r.method !== "GET" && r.path.includes("/secrets")));
});

Deno.test("dryRun() with secret.watch off needs no list or watch, and says the watch is off", async () => {
  const fake = withSecret(createFakeKube());
  fake.forbidden.add("list");
  fake.forbidden.add("watch");
  const report = await run(fake, undefined, false);
  assertEquals(report.problems, []);
  assertMatch(
    formatDryRunReport(report, NOW),
    /^Watch: off \(secret\.watch is false\): drift is repaired at the next refresh only$/m,
  );
});
