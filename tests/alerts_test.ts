/**
 * The shipped alert rules, tested with Debian's `prometheus` package: `promtool check rules` and
 * `promtool test rules` (tests/alerts/: expiry near, refreshes failing, target absent and down),
 * the PrometheusRule of deploy/components/monitoring against the rule file and the Deployment,
 * and a real Prometheus on loopback that scrapes the running tool and evaluates the rules.
 */
import { parse, stringify } from "yaml";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { findKubectl, findObject, type KubeObject } from "./fixtures/deploy_manifests.ts";
import { createFakeKube } from "./fixtures/fake_kube.ts";
import { startFakeCluster } from "./fixtures/fake_cluster.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import { makeTestTls } from "./fixtures/tls.ts";
import { parseAllDocuments } from "yaml";
import { freePort } from "./fixtures/ports.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const RULES = `${ROOT}deploy/alerts/kube-token-refresher.rules.yaml`;
const RULE_TESTS = `${ROOT}tests/alerts/kube-token-refresher.test.yaml`;
const COMPONENT = `${ROOT}deploy/components/monitoring`;
const JOB = "kube-token-refresher";

/** A program on PATH, or undefined. */
function onPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // Not in this folder.
    }
  }
  return undefined;
}

const promtool = onPath("promtool");
const prometheus = onPath("prometheus");
let warned = false;

/** Skips loudly without Debian's `prometheus` package, except under CI, where the test fails. */
function prometheusIgnore(): boolean {
  if ((promtool && prometheus) || Deno.env.get("CI") === "true") return false;
  if (!warned) {
    warned = true;
    console.error(
      "%cSKIPPING alert rule tests: promtool or prometheus not found (apt-get install prometheus)",
      "color: yellow; font-weight: bold",
    );
  }
  return true;
}

async function run(command: string | undefined, args: string[]) {
  assert(command, "promtool and prometheus are installed (apt-get install prometheus)");
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

interface RuleFile {
  groups: { name: string; rules: { alert: string; expr: string }[] }[];
}

function ruleFile(): RuleFile {
  return parse(Deno.readTextFileSync(RULES)) as RuleFile;
}

Deno.test({
  name: "promtool: the rule file and the PrometheusRule's groups are valid rules",
  ignore: prometheusIgnore(),
  fn: async () => {
    const checked = await run(promtool, ["check", "rules", RULES]);
    assertEquals(checked.code, 0, checked.text);
    assertMatch(checked.text, /SUCCESS: 4 rules found/);

    const resource = parse(Deno.readTextFileSync(`${COMPONENT}/prometheusrule.yaml`));
    const dir = await Deno.makeTempDir({ prefix: "ktr-rules-" });
    try {
      await Deno.writeTextFile(`${dir}/rules.yaml`, stringify(resource.spec));
      const fromResource = await run(promtool, ["check", "rules", `${dir}/rules.yaml`]);
      assertEquals(fromResource.code, 0, fromResource.text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "promtool test rules: expiry near, refreshes failing, target absent and down",
  ignore: prometheusIgnore(),
  fn: async () => {
    const tested = await run(promtool, ["test", "rules", RULE_TESTS]);
    assertEquals(tested.code, 0, tested.text);
    assertMatch(tested.text, /SUCCESS/);
    // Every alert of the file has a test case.
    const cases = Deno.readTextFileSync(RULE_TESTS);
    for (const { alert } of ruleFile().groups.flatMap((g) => g.rules)) {
      assert(cases.includes(`alertname: ${alert}\n`), `no test case for ${alert}`);
    }
  },
});

Deno.test("the PrometheusRule carries exactly the rule file's groups, every rule on one job", () => {
  const resource = parse(Deno.readTextFileSync(`${COMPONENT}/prometheusrule.yaml`));
  assertEquals(resource.kind, "PrometheusRule");
  assertEquals(resource.spec, ruleFile());
  for (const { alert, expr } of ruleFile().groups.flatMap((g) => g.rules)) {
    const jobs = [...expr.matchAll(/\bjob="([^"]*)"/g)].map((m) => m[1]);
    assertEquals(jobs, [JOB], `${alert}: ${expr}`);
  }
});

Deno.test({
  name:
    "the monitoring component: its PodMonitor scrapes the Deployment's pods under the rules' job",
  ignore: findKubectl() === undefined && Deno.env.get("CI") !== "true",
  fn: async () => {
    const kubectl = findKubectl();
    assert(kubectl, "kubectl (bash tests/stack/build.sh builds it)");
    // An overlay as README shows it: the base plus the component.
    const overlay = await Deno.makeTempDir({ prefix: "ktr-overlay-", dir: `${ROOT}deploy` });
    try {
      const relative = (path: string) => `../${path.slice(`${ROOT}deploy/`.length)}`;
      await Deno.writeTextFile(
        `${overlay}/kustomization.yaml`,
        stringify({
          apiVersion: "kustomize.config.k8s.io/v1beta1",
          kind: "Kustomization",
          namespace: "team-a",
          resources: [relative(`${ROOT}deploy/base`)],
          components: [relative(COMPONENT)],
        }),
      );
      const out = await new Deno.Command(kubectl, {
        args: ["kustomize", overlay],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      const objects = parseAllDocuments(new TextDecoder().decode(out.stdout))
        .map((doc) => doc.toJS() as KubeObject);
      const rule = findObject<KubeObject & { spec: RuleFile }>(objects, "PrometheusRule");
      assertEquals(rule.spec, ruleFile());
      assertEquals(rule.metadata.namespace, "team-a");

      interface PodMonitor extends KubeObject {
        spec: {
          jobLabel: string;
          selector: { matchLabels: Record<string, string> };
          podMetricsEndpoints: { port: string; path: string }[];
        };
      }
      interface Deployment extends KubeObject {
        spec: {
          template: {
            metadata: { labels: Record<string, string> };
            spec: { containers: { ports?: { name: string }[] }[] };
          };
        };
      }
      const monitor = findObject<PodMonitor>(objects, "PodMonitor");
      const deployment = findObject<Deployment>(objects, "Deployment");
      const podLabels = deployment.spec.template.metadata.labels;
      // The operator takes the job from the pod label that jobLabel names.
      assertEquals(podLabels[monitor.spec.jobLabel], JOB, `pod label ${monitor.spec.jobLabel}`);
      for (const [label, value] of Object.entries(monitor.spec.selector.matchLabels)) {
        assertEquals(podLabels[label], value, `the PodMonitor selects the pods by ${label}`);
      }
      const ports = deployment.spec.template.spec.containers.flatMap((c) => c.ports ?? [])
        .map((p) => p.name);
      for (const endpoint of monitor.spec.podMetricsEndpoints) {
        assert(ports.includes(endpoint.port), `port ${endpoint.port} is one of ${ports}`);
        assertEquals(endpoint.path, "/metrics");
      }
    } finally {
      await Deno.remove(overlay, { recursive: true });
    }
  },
});

interface Alert {
  labels: Record<string, string>;
  state: string;
}

Deno.test({
  name: "a real Prometheus scrapes the running tool and evaluates the rules on what it scraped",
  ignore: prometheusIgnore(),
  fn: async () => {
    await using tls = await makeTestTls();
    const fake = createFakeKube();
    await using cluster = await startFakeCluster(fake, tls, { namespace: "team-a" });
    // Five-minute tokens: the expiry is always less than ten minutes away, so TokenExpiresSoon
    // goes pending on real data; the other alerts stay quiet while the tool is scraped.
    await using provider = await startOidcProvider({ tokenTtlSeconds: 300 });
    const metricsPort = freePort();
    await using refresher = spawnRefresher({
      env: { ...cluster.env, ...providerEnv(provider) },
      args: [
        "--secret.name=api-token",
        "--secret.namespace=team-a",
        `--http.address=127.0.0.1:${metricsPort}`,
      ],
    });
    await refresher.waitForOutput(/Token refreshed/);

    const dir = await Deno.makeTempDir({ prefix: "ktr-prometheus-" });
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/prometheus.yml`,
      stringify({
        global: { scrape_interval: "1s", evaluation_interval: "1s" },
        rule_files: [RULES],
        scrape_configs: [{
          // The job name the component's PodMonitor gives (see the component test above).
          job_name: JOB,
          static_configs: [{
            targets: [`127.0.0.1:${metricsPort}`],
            labels: { namespace: "team-a", pod: "kube-token-refresher-0" },
          }],
        }],
      }),
    );
    const server = new Deno.Command(prometheus!, {
      args: [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const api = async <T>(path: string): Promise<T> => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/${path}`);
      const body = await res.json();
      assertEquals(body.status, "success", JSON.stringify(body));
      return body.data as T;
    };
    /** Polls `probe` until it returns a value, for up to 30 s. */
    const eventually = async <T>(what: string, probe: () => Promise<T | undefined>) => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const value = await probe().catch(() => undefined);
        if (value !== undefined) return value;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      throw new Error(`Timed out waiting for ${what}`);
    };
    const alerts = async () => (await api<{ alerts: Alert[] }>("alerts")).alerts;
    try {
      const started = Date.now();
      await eventually("the target to be up", async () => {
        const up = await api<{ result: { value: [number, string] }[] }>(
          `query?query=${encodeURIComponent(`up{job="${JOB}"}`)}`,
        );
        return up.result[0]?.value[1] === "1" ? true : undefined;
      });
      const info = await api<{ result: { metric: Record<string, string> }[] }>(
        `query?query=${encodeURIComponent(`ktr_build_info{job="${JOB}"}`)}`,
      );
      assertEquals(info.result.length, 1, JSON.stringify(info));
      assertEquals(info.result[0].metric.namespace, "team-a");

      const expiring = await eventually("TokenExpiresSoon to go pending", async () => {
        const found = (await alerts()).find((a) => a.labels.alertname === "TokenExpiresSoon");
        return found;
      });
      assertEquals(expiring.labels.namespace, "team-a");
      assertEquals(expiring.labels.pod, "kube-token-refresher-0");
      console.log(
        `Prometheus ${
          ((Date.now() - started) / 1000).toFixed(1)
        } s after start: target up, TokenExpiresSoon ${expiring.state}`,
      );

      // The rules loaded and evaluated without error; absent() found the scraped job.
      const rules = await api<{ groups: { rules: { name: string; health: string }[] }[] }>("rules");
      const evaluated = rules.groups.flatMap((g) => g.rules);
      assertEquals(evaluated.length, 4);
      for (const rule of evaluated) assertEquals(rule.health, "ok", rule.name);
      const names = (await alerts()).map((a) => a.labels.alertname);
      assert(!names.includes("TokenRefresherAbsent"), `alerts: ${names}`);
      assert(!names.includes("TokenRefresherDown"), `alerts: ${names}`);

      // The tool stops: the target goes down and TokenRefresherDown goes pending.
      refresher.kill("SIGTERM");
      await refresher.exited;
      await eventually("TokenRefresherDown to go pending", async () => {
        const found = (await alerts()).find((a) => a.labels.alertname === "TokenRefresherDown");
        return found;
      });
    } finally {
      server.kill("SIGTERM");
      const status = await server.status;
      const log = new TextDecoder().decode(await new Response(server.stderr).arrayBuffer());
      await Deno.remove(dir, { recursive: true });
      assert(status.code === 0 || status.signal === "SIGTERM", log);
    }
  },
});
