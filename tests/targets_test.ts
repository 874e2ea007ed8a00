/**
 * Targets on the real kube-apiserver of tests/stack with the real OpenID provider: 200 namespaces
 * selected by label, with exactly the ClusterRole of deploy/components/multi-namespace (plus
 * "delete", which it says to add for prune). Figures are printed; timings are asserted at 5x.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { findObject, type KubeObject, renderOverlay } from "./fixtures/deploy_manifests.ts";
import { inClusterEnv, readSecret } from "./fixtures/real_cluster.ts";
import { loadConfigFile, resolveConfig } from "../src/config/mod.ts";
import {
  createServiceAccount,
  type KubeStack,
  requestServiceAccountToken,
  stackTestIgnore,
  startKubeStack,
  writeServiceAccountDir,
} from "./stack/stack.ts";
import { freePort } from "./fixtures/ports.ts";

const ignore = stackTestIgnore();
const BOUND = 5;
const COUNT = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The ClusterRole of the multi-namespace component, rendered as an overlay renders it. */
async function componentClusterRole(): Promise<KubeObject & { rules: Record<string, unknown>[] }> {
  const objects = await renderOverlay(
    "namespace: tools\nresources: [../base]\ncomponents: [../components/multi-namespace]\n",
  );
  assert(!objects.some((o) => o.kind === "Role" || o.kind === "RoleBinding"));
  const maps = objects.filter((o) => o.kind === "ConfigMap") as (KubeObject & {
    data: Record<string, string>;
  })[];
  const settings = maps.find((m) => !("targets.yaml" in m.data))!;
  const targets = maps.find((m) => "targets.yaml" in m.data)!;
  assert(
    !Object.keys(settings.data).some((k) => k.startsWith("KTR_SECRET_")),
    "KTR_SECRET_* left",
  );
  // The shipped targets file and settings make a valid configuration, as in the pod.
  const config = resolveConfig({
    file: await loadConfigFile("targets.yaml", {
      readTextFile: () => Promise.resolve(targets.data["targets.yaml"]),
    }),
    env: { ...settings.data, KTR_OIDC_CLIENTID: "id", KTR_OIDC_CLIENTSECRET: "secret" },
    defaults: { "secret.namespace": "tools" },
  });
  assertEquals(config.targets?.length, 1);
  return findObject(objects, "ClusterRole") as KubeObject & { rules: Record<string, unknown>[] };
}

async function kubectlOk(stack: KubeStack, args: string[], stdin?: string): Promise<string> {
  const out = await stack.kubectl(args, stdin === undefined ? undefined : { stdin });
  if (out.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${out.stderr}`);
  return out.stdout;
}

/** Secrets of a name across namespaces, by namespace. */
async function secretsNamed(stack: KubeStack, name: string): Promise<Map<string, KubeObject>> {
  const response = await stack.request(
    `/api/v1/secrets?fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}`,
  );
  const list = await response.json() as { items: KubeObject[] };
  return new Map(list.items.map((s) => [String(s.metadata?.namespace), s]));
}

/** The apiserver's request counters for Secrets, by verb. */
async function secretRequests(stack: KubeStack): Promise<Record<string, number>> {
  const text = await (await stack.request("/metrics")).text();
  const counts: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    if (!line.includes('resource="secrets"')) continue;
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? "?";
    counts[verb] = (counts[verb] ?? 0) + Number(line.split(" ").pop());
  }
  return counts;
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[key] ?? 0) - (a[key] ?? 0);
    if (d !== 0) out[key] = d;
  }
  return out;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number) {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await check()) return performance.now() - started;
    await sleep(100);
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

Deno.test({
  name:
    "targets: 200 namespaces by selector, one token per cycle, new and unlabelled namespaces, a denied one, formats",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using stack = await startKubeStack();
    await using provider = await startOidcProvider({ tokenTtlSeconds: 30 });
    const run = Math.random().toString(16).slice(2, 8);
    const tools = `tools-${run}`;
    const names = Array.from({ length: COUNT }, (_, i) => `t-${run}-${String(i).padStart(3, "0")}`);
    const denied = names[7];
    const items = [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: tools } },
      ...names.map((name) => ({
        apiVersion: "v1",
        kind: "Namespace",
        metadata: {
          name,
          labels: {
            "ktr.appuio.ch/inject": "true",
            ...(name === denied ? { "deny-secrets": "true" } : {}),
          },
        },
      })),
    ];
    await kubectlOk(
      stack,
      ["apply", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "List", items }),
    );
    // A Secret someone else created beforehand: the tool only updates it, so never prunes it.
    const foreign = names[3];
    await kubectlOk(stack, [
      "-n",
      foreign,
      "create",
      "secret",
      "generic",
      "api-token",
      "--from-literal=other=kept",
    ]);
    // Writes denied in one namespace by an admission policy.
    await kubectlOk(
      stack,
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "admissionregistration.k8s.io/v1",
            kind: "ValidatingAdmissionPolicy",
            metadata: { name: `deny-secrets-${run}` },
            spec: {
              failurePolicy: "Fail",
              matchConstraints: {
                resourceRules: [{
                  apiGroups: [""],
                  apiVersions: ["v1"],
                  operations: ["CREATE", "UPDATE"],
                  resources: ["secrets"],
                }],
                namespaceSelector: { matchLabels: { "deny-secrets": "true" } },
              },
              validations: [{ expression: "false", message: "Secret writes are denied here" }],
            },
          },
          {
            apiVersion: "admissionregistration.k8s.io/v1",
            kind: "ValidatingAdmissionPolicyBinding",
            metadata: { name: `deny-secrets-${run}` },
            spec: { policyName: `deny-secrets-${run}`, validationActions: ["Deny"] },
          },
        ],
      }),
    );
    // Policies load asynchronously: wait until the namespace really refuses a Secret.
    await waitFor("the admission policy", async () => {
      const out = await stack.kubectl([
        "-n",
        denied,
        "create",
        "secret",
        "generic",
        "probe",
        "--from-literal=a=b",
      ]);
      if (out.code === 0) await stack.kubectl(["-n", denied, "delete", "secret", "probe"]);
      return out.code !== 0 && /denied/.test(out.stderr);
    }, 30_000);
    // The component's ClusterRole, with the names of these targets and "delete" for prune.
    const role = await componentClusterRole();
    for (const rule of role.rules) {
      if ((rule.resources as string[]).includes("secrets")) {
        rule.resourceNames = ["api-token", "registry-pull", "kept-token"];
        rule.verbs = [...(rule.verbs as string[]), "delete"];
      }
    }
    role.metadata = { name: `ktr-${run}` };
    await kubectlOk(stack, ["apply", "-f", "-"], JSON.stringify(role));
    await createServiceAccount(stack, tools, "refresher");
    await kubectlOk(
      stack,
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: `ktr-${run}` },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: `ktr-${run}` },
        subjects: [{ kind: "ServiceAccount", name: "refresher", namespace: tools }],
      }),
    );
    const { token: saToken } = await requestServiceAccountToken(stack, tools, "refresher", {
      expirationSeconds: 3600,
    });
    const saDir = await writeServiceAccountDir(await Deno.makeTempDir({ prefix: "ktr-sa-" }), {
      token: saToken,
      caPem: stack.caPem,
      namespace: tools,
    });
    const configFile = await Deno.makeTempFile({ suffix: ".yaml" });
    await Deno.writeTextFile(
      configFile,
      `targets:
  - name: api-token
    namespaceSelector: "ktr.appuio.ch/inject=true"
    excludeNamespaces: ["kube-*"]
    prune: true
    labels: { app.kubernetes.io/part-of: billing }
    annotations: { team: billing }
    data:
      token: "{{ .token }}"
      authorization: "Bearer {{ .token }}"
      expires-at: "{{ .expiresAt }}"
      expires-unix: "{{.expiresAtUnix}}"
      obtained-at: "{{ .obtainedAt }}"
  - name: registry-pull
    namespaces: ["${tools}"]
    type: kubernetes.io/dockerconfigjson
    dockerconfig: { registry: registry.example.com, username: oauth2accesstoken }
  - name: kept-token
    namespaceSelector: "ktr.appuio.ch/keep=true"
`,
    );
    // --dry-run: the namespaces resolved, a sample checked with a dry-run apply, the totals.
    const dry = spawnRefresher({
      env: { ...inClusterEnv(stack, saDir), ...providerEnv(provider) },
      args: ["--config", configFile, "--dry-run"],
    });
    const dryRun = await dry.exited;
    assertEquals(dryRun.code, 0, dryRun.output);
    assertMatch(
      dryRun.output,
      new RegExp(`targets\\[0\\] Secret "api-token" \\(Opaque\\): ${COUNT} namespaces`),
    );
    assertMatch(dryRun.output, /Permissions: 5 of 5 sampled Secrets could be written/);
    assertMatch(dryRun.output, new RegExp(`Totals: 3 targets, ${COUNT + 1} Secrets`));
    assertEquals((await secretsNamed(stack, "api-token")).size, 1, "the dry run wrote nothing");
    const dryTokens = provider.requests;

    const port = freePort();
    const started = performance.now();
    const refresher = spawnRefresher({
      env: { ...inClusterEnv(stack, saDir), ...providerEnv(provider), POD_NAME: "refresher-0" },
      args: ["--config", configFile, `--http.address=127.0.0.1:${port}`],
    });
    try {
      // Start to every selected Secret written (all but the denied namespace).
      const written = async () =>
        [...(await secretsNamed(stack, "api-token")).values()].filter((s) =>
          (s.metadata.annotations as Record<string, string> | undefined)
            ?.["ktr.appuio.ch/token-sha256"] !== undefined
        ).length;
      await waitFor("199 Secrets", async () => (await written()) >= COUNT - 1, 60_000);
      const allWrittenMs = performance.now() - started;
      console.log(
        `targets: start to ${COUNT - 1} of ${COUNT} Secrets written (1 denied): ${
          Math.round(allWrittenMs)
        } ms`,
      );
      assert(allWrittenMs < 60_000);
      const afterStart = provider.requests;
      assertEquals(afterStart - dryTokens, 1, "one token request for all targets at start");

      // Readiness names the denied namespace, and only it.
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      const readyText = await ready.text();
      assertEquals(ready.status, 503);
      assertMatch(
        readyText,
        new RegExp(`1 of ${COUNT + 1} Secrets do not hold a valid token: ${denied}/api-token`),
      );
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assertMatch(
        metrics,
        new RegExp(
          `ktr_target_write_failures_total\\{namespace="${denied}",secret="api-token"\\} [1-9]`,
        ),
      );
      assertMatch(metrics, /ktr_targets\{state="ok"\} 200/);

      // Byte-exact templates, and the pull secret as a kubelet reads it.
      const token = provider.issued.at(-1)!;
      const secret = await readSecret(stack, names[0], "api-token");
      const expiresAt = secret.metadata.annotations!["ktr.appuio.ch/expires-at"];
      const obtainedAt = secret.metadata.annotations!["ktr.appuio.ch/refreshed-at"];
      const whole = (iso: string) =>
        new Date(Math.floor(Date.parse(iso) / 1000) * 1000).toISOString().replace(".000Z", "Z");
      assertEquals(secret.decoded, {
        token,
        authorization: `Bearer ${token}`,
        "expires-at": whole(expiresAt),
        "expires-unix": String(Math.floor(Date.parse(expiresAt) / 1000)),
        "obtained-at": whole(obtainedAt),
      });
      assertEquals(secret.metadata.labels?.["app.kubernetes.io/part-of"], "billing");
      assertEquals(secret.metadata.annotations?.team, "billing");
      assertEquals(
        secret.metadata.annotations?.["ktr.appuio.ch/target"],
        "api-token:namespaceSelector=ktr.appuio.ch/inject=true",
      );
      const pull = await readSecret(stack, tools, "registry-pull");
      assertEquals(pull.type, "kubernetes.io/dockerconfigjson");
      const auth = JSON.parse(pull.decoded[".dockerconfigjson"]).auths["registry.example.com"];
      assertEquals(atob(auth.auth), `oauth2accesstoken:${token}`);
      const foreignSecret = await readSecret(stack, foreign, "api-token");
      assertEquals(foreignSecret.decoded.other, "kept");
      assertEquals(foreignSecret.metadata.annotations?.["ktr.appuio.ch/target"], undefined);

      // One steady-state cycle: 1 token request and one apply per Secret, no GET, no LIST.
      await refresher.waitForOutput(/Token refreshed; writing/, 5_000).catch(() => {});
      const cycles = () => (refresher.output().match(/Token refreshed; writing/g) ?? []).length;
      const firstCycles = cycles();
      await waitFor("the next cycle", () => Promise.resolve(cycles() > firstCycles), 40_000);
      await sleep(6_000);
      const before = await secretRequests(stack);
      const tokensBefore = provider.requests;
      await waitFor("one more cycle", () => Promise.resolve(cycles() > firstCycles + 1), 40_000);
      await sleep(6_000);
      const requests = diff(before, await secretRequests(stack));
      const tokens = provider.requests - tokensBefore;
      console.log(
        `targets: one steady-state cycle: ${tokens} token request, Secret requests by verb ${
          JSON.stringify(requests)
        } (${COUNT + 1} Secrets kept, 1 denied)`,
      );
      assertEquals(tokens, 1);
      assertEquals(requests.GET ?? 0, 0, "no GET storm");
      assertEquals(requests.LIST ?? 0, 0);
      // Every Secret once (server-side apply counts as APPLY); the denied one also retries on
      // its own backoff, restarted by the new token: 0.5, 1, 2, 4, 8 s ... inside one cycle.
      const applies = (requests.APPLY ?? 0) + (requests.PATCH ?? 0);
      assert(applies >= COUNT + 1 && applies <= COUNT + 1 + 10, JSON.stringify(requests));
      assertEquals(Object.keys(requests).filter((v) => v !== "APPLY" && v !== "PATCH"), []);

      // A namespace that starts matching gets its Secret within 2 s.
      const late = `t-${run}-late`;
      await kubectlOk(stack, ["create", "namespace", late]);
      const labelled = performance.now();
      await kubectlOk(stack, [
        "label",
        "namespace",
        late,
        "ktr.appuio.ch/inject=true",
        "ktr.appuio.ch/keep=true",
      ]);
      await waitFor(
        "the new namespace's Secret",
        async () => (await secretsNamed(stack, "api-token")).has(late),
        2_000 * BOUND,
      );
      const newMs = performance.now() - labelled;
      console.log(
        `targets: namespace labelled -> Secret written: ${Math.round(newMs)} ms (target 2000 ms)`,
      );
      await waitFor(
        "kept-token",
        async () => (await secretsNamed(stack, "kept-token")).has(late),
        2_000 * BOUND,
      );

      // Drift: a deleted Secret and an overwritten key are written back from the watch, with
      // the token in hand.
      const tokensBeforeRepair = provider.requests;
      const cyclesBeforeRepair = cycles();
      await kubectlOk(stack, ["-n", names[1], "delete", "secret", "api-token"]);
      const deletedAt = performance.now();
      await waitFor(
        "the deleted Secret back",
        async () => (await secretsNamed(stack, "api-token")).has(names[1]),
        1_000 * BOUND,
      );
      console.log(
        `targets: deleted Secret written back: ${
          Math.round(performance.now() - deletedAt)
        } ms (target 1000 ms)`,
      );
      await kubectlOk(stack, [
        "-n",
        names[2],
        "patch",
        "secret",
        "api-token",
        "-p",
        JSON.stringify({ data: { authorization: btoa("garbage") } }),
      ]);
      const patchedAt = performance.now();
      await waitFor("the overwritten key restored", async () => {
        const s = await readSecret(stack, names[2], "api-token");
        return s.decoded.authorization === `Bearer ${s.decoded.token}`;
      }, 1_000 * BOUND);
      console.log(
        `targets: overwritten key restored: ${
          Math.round(performance.now() - patchedAt)
        } ms (target 1000 ms)`,
      );
      // A scheduled cycle may fall in between; the repairs themselves asked for no token.
      assertEquals(
        provider.requests - tokensBeforeRepair,
        cycles() - cyclesBeforeRepair,
        "repairs use the token in hand",
      );
      const tokensBeforeRefreshNow = provider.requests;

      // refresh-now on one Secret: a new token, written to all.
      await kubectlOk(stack, [
        "-n",
        names[5],
        "annotate",
        "secret",
        "api-token",
        "ktr.appuio.ch/refresh-now=1",
        "--overwrite",
      ]);
      const askedAt = performance.now();
      await waitFor(
        "a new token",
        () => Promise.resolve(provider.requests > tokensBeforeRefreshNow),
        2_000 * BOUND,
      );
      const fresh = provider.issued.at(-1)!;
      await waitFor(
        "the new token everywhere",
        async () => (await readSecret(stack, names[150], "api-token")).decoded.token === fresh,
        2_000 * BOUND,
      );
      console.log(
        `targets: refresh-now -> new token in another namespace's Secret: ${
          Math.round(performance.now() - askedAt)
        } ms`,
      );
      await waitFor(
        "refresh-now handled",
        async () =>
          (await readSecret(stack, names[5], "api-token")).metadata.annotations
            ?.["ktr.appuio.ch/refresh-now-handled"] === "1",
        2_000 * BOUND,
      );

      // Unlabelled: pruned where the target created it (prune: true), kept where it did not
      // create it, and kept by the target without prune.
      await kubectlOk(stack, [
        "label",
        "namespace",
        late,
        "ktr.appuio.ch/inject-",
        "ktr.appuio.ch/keep-",
      ]);
      await kubectlOk(stack, ["label", "namespace", foreign, "ktr.appuio.ch/inject-"]);
      await waitFor(
        "pruning",
        async () => !(await secretsNamed(stack, "api-token")).has(late),
        2_000 * BOUND,
      );
      await sleep(1_000);
      assert(
        (await secretsNamed(stack, "api-token")).has(foreign),
        "a Secret the tool only updated is never pruned",
      );
      assert((await secretsNamed(stack, "kept-token")).has(late), "without prune the Secret stays");
      // A Terminating namespace (no controller here finishes the deletion) is skipped quietly:
      // dropped from readiness and metrics, nothing pruned, nothing logged about it.
      const leaving = names[9];
      await kubectlOk(stack, ["delete", "namespace", leaving, "--wait=false"]);
      await waitFor("the namespace dropped", async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return !text.includes(`namespace="${leaving}"`);
      }, 2_000 * BOUND);
      assert((await secretsNamed(stack, "api-token")).has(leaving), "not pruned");
      assertNotIncludes(await (await fetch(`http://127.0.0.1:${port}/readyz`)).text(), leaving);
      const output = refresher.output();
      assertNotIncludes(output, `"${leaving}"`);
      assertNotIncludes(output, token);
      assertNotIncludes(output, provider.clientSecret);
    } finally {
      refresher.kill("SIGTERM");
      const { code, output } = await refresher.exited;
      if (code !== 0) console.log(output.slice(-4000));
      assertEquals(code, 0);
      await Deno.remove(configFile);
      await Deno.remove(saDir, { recursive: true });
    }
  },
});
