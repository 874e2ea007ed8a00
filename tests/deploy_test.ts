/**
 * The deployment manifests (`deploy/base`), rendered by `kubectl kustomize` as users render them:
 * least-privilege RBAC, hardened pod, probes on the real endpoints, the real variable names; then
 * validated by a real kube-apiserver (`kubectl apply --dry-run=server`), and the shipped Role
 * tried for real by the refresher in in-cluster mode.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import {
  findObject,
  kubectlIgnore,
  type KubeObject,
  renderDeployBase,
} from "./fixtures/deploy_manifests.ts";
import { providerEnv, startOidcProvider } from "./fixtures/oidc_provider.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";
import {
  createNamespace,
  type KubeStack,
  requestServiceAccountToken,
  stackTestIgnore,
  startKubeStack,
  writeServiceAccountDir,
} from "./stack/stack.ts";
import { envName, type KeyDefinition, KEYS } from "../src/config/mod.ts";
import { SERVICE_ACCOUNT_DIR } from "../src/kube/connect.ts";
import { parseListenAddress } from "../src/server.ts";

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string };
    fieldRef?: { fieldPath: string };
  };
}

interface Probe {
  httpGet?: { path: string; port: string | number };
}

interface Container {
  name: string;
  image: string;
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

interface PodSpec {
  serviceAccountName: string;
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: {
    name: string;
    projected?: {
      sources: {
        serviceAccountToken?: { path: string; expirationSeconds?: number };
        configMap?: { name: string; items: { key: string; path: string }[] };
        downwardAPI?: { items: { path: string; fieldRef: { fieldPath: string } }[] };
      }[];
    };
  }[];
}

type Deployment = KubeObject & { spec: { template: { spec: PodSpec } } };
type Role = KubeObject & { rules: Record<string, string[]>[] };
type RoleBinding = KubeObject & {
  roleRef: { kind: string; name: string };
  subjects: { kind: string; name: string; namespace?: string }[];
};
type ConfigMap = KubeObject & { data: Record<string, string> };
type Secret = KubeObject & { data: Record<string, string> };

async function rendered() {
  const { yaml, objects } = await renderDeployBase();
  const deployment = findObject<Deployment>(objects, "Deployment");
  const pod = deployment.spec.template.spec;
  assertEquals(pod.containers.length, 1);
  return {
    yaml,
    objects,
    deployment,
    pod,
    container: pod.containers[0],
    role: findObject<Role>(objects, "Role"),
    binding: findObject<RoleBinding>(objects, "RoleBinding"),
    config: findObject<ConfigMap>(objects, "ConfigMap"),
    credentials: findObject<Secret>(objects, "Secret"),
    serviceAccount: findObject<KubeObject & { automountServiceAccountToken?: boolean }>(
      objects,
      "ServiceAccount",
    ),
  };
}

const ignoreKubectl = kubectlIgnore();

Deno.test({
  name:
    "deploy/base: the Role allows get, patch, create, list and watch on the target Secret only, and Events",
  ignore: ignoreKubectl,
  async fn() {
    const { role, config, binding, serviceAccount, pod } = await rendered();
    const target = config.data.KTR_SECRET_NAME;
    assert(target, "KTR_SECRET_NAME is set in the ConfigMap");
    assertEquals(role.rules, [
      {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: [target],
        verbs: ["get", "patch", "create", "list", "watch"],
      },
      { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
    ]);
    assertEquals(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: role.metadata.name,
    });
    assertEquals(binding.subjects, [{
      kind: "ServiceAccount",
      name: serviceAccount.metadata.name,
    }]);
    assertEquals(pod.serviceAccountName, serviceAccount.metadata.name);
  },
});

Deno.test({
  name: "deploy/base: the pod runs as non-root, read-only, without capabilities or escalation",
  ignore: ignoreKubectl,
  async fn() {
    const { pod, container } = await rendered();
    assertEquals(pod.securityContext?.runAsNonRoot, true);
    assertEquals(pod.securityContext?.seccompProfile, { type: "RuntimeDefault" });
    const uid = pod.securityContext?.runAsUser;
    assert(typeof uid === "number" && uid > 0, "a numeric non-root user the kubelet can check");
    const sc = container.securityContext ?? {};
    assertEquals(sc.readOnlyRootFilesystem, true);
    assertEquals(sc.allowPrivilegeEscalation, false);
    assertEquals(sc.runAsNonRoot, true);
    assertEquals(sc.capabilities?.drop, ["ALL"]);
    assertEquals(sc.privileged ?? false, false);
  },
});

Deno.test({
  name: "deploy/base: probes use /healthz and /readyz on the port of the default http.address",
  ignore: ignoreKubectl,
  async fn() {
    const { container, config } = await rendered();
    const defaultAddress = (KEYS as readonly KeyDefinition[])
      .find((d) => d.key === "http.address")?.default;
    const port = parseListenAddress(String(defaultAddress))?.port;
    assert(config.data.KTR_HTTP_ADDRESS === undefined, "the manifests rely on the default");
    assertEquals(container.ports, [{ name: "http", containerPort: port, protocol: "TCP" }]);
    assertEquals(container.livenessProbe?.httpGet, { path: "/healthz", port: "http" });
    assertEquals(container.readinessProbe?.httpGet, { path: "/readyz", port: "http" });
  },
});

Deno.test({
  name:
    "deploy/base: every KTR_ variable is one the tool reads, POD_NAME is the pod's; credentials come from the Secret",
  ignore: ignoreKubectl,
  async fn() {
    const { container, config, credentials, yaml } = await rendered();
    // The configuration keys' variables, and the pod's name for the Events.
    const known = [...KEYS.map((d) => envName(d.key)), "POD_NAME"];
    const names = [...(container.env ?? []).map((e) => e.name), ...Object.keys(config.data)];
    for (const name of names) assert(known.includes(name), `${name} is not read by the tool`);
    // Every KTR_ name anywhere in the output, comments and values included.
    for (const name of yaml.match(/KTR_[A-Z0-9_]+/g) ?? []) {
      assert(known.includes(name), `${name} in the manifests is not read by the tool`);
    }
    const required = (KEYS as readonly KeyDefinition[])
      .filter((d) => d.default === undefined && !d.optional)
      .map((d) => envName(d.key));
    for (const name of required) assert(names.includes(name), `required ${name} is not set`);

    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e]));
    for (const name of ["KTR_OIDC_CLIENTID", "KTR_OIDC_CLIENTSECRET"]) {
      const ref = env[name]?.valueFrom?.secretKeyRef;
      assert(ref, `${name} comes from a secretKeyRef`);
      assertEquals(ref.name, credentials.metadata.name);
      assert(ref.key in credentials.data, `the Secret has the key ${ref.key}`);
    }
    assertEquals(env.KTR_SECRET_NAMESPACE?.valueFrom?.fieldRef?.fieldPath, "metadata.namespace");
    assertEquals(env.POD_NAME?.valueFrom?.fieldRef?.fieldPath, "metadata.name");
    assertEquals(container.envFrom, [{ configMapRef: { name: config.metadata.name } }]);
    assert(!("KTR_OIDC_CLIENTSECRET" in config.data), "no secret in the ConfigMap");
  },
});

Deno.test({
  name: "deploy/base: only the refresher container gets a short-lived service account token",
  ignore: ignoreKubectl,
  async fn() {
    const { pod, container, serviceAccount } = await rendered();
    assertEquals(serviceAccount.automountServiceAccountToken, false);
    assertEquals(pod.automountServiceAccountToken, false);
    const mount = container.volumeMounts?.find((m) => m.mountPath === SERVICE_ACCOUNT_DIR);
    assert(mount, `a volume is mounted at ${SERVICE_ACCOUNT_DIR}`);
    assertEquals(mount.readOnly, true);
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    const sources = volume?.projected?.sources ?? [];
    const token = sources.find((s) => s.serviceAccountToken)?.serviceAccountToken;
    assertEquals(token?.path, "token");
    assert((token?.expirationSeconds ?? Infinity) <= 3600, "the token lives at most an hour");
    assertEquals(sources.find((s) => s.configMap)?.configMap, {
      name: "kube-root-ca.crt",
      items: [{ key: "ca.crt", path: "ca.crt" }],
    });
    assertEquals(sources.find((s) => s.downwardAPI)?.downwardAPI?.items, [
      { path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } },
    ]);
  },
});

Deno.test({
  name: "deploy/base: memory request and limit are set, the image is the released version",
  ignore: ignoreKubectl,
  async fn() {
    const { container } = await rendered();
    const mebibytes = (v: string | undefined) => Number(v?.match(/^(\d+)Mi$/)?.[1]);
    const request = mebibytes(container.resources?.requests?.memory);
    const limit = mebibytes(container.resources?.limits?.memory);
    assert(request >= 48 && request <= limit, `memory request ${request}Mi, limit ${limit}Mi`);
    const { version } = JSON.parse(
      await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
    );
    assertEquals(container.image, `kube-token-refresher:${version}`);
  },
});

/** The base's objects for one namespace, applied for real. */
async function applyRbac(stack: KubeStack, objects: readonly KubeObject[], namespace: string) {
  const wanted = ["ServiceAccount", "Role", "RoleBinding"];
  const items = objects.filter((o) => wanted.includes(o.kind)).map((o) => ({
    ...o,
    metadata: { ...o.metadata, namespace },
  }));
  assertEquals(items.length, 3);
  const applied = await stack.kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items }),
  });
  assertEquals(applied.code, 0, applied.stderr);
}

const ignoreStack = stackTestIgnore();

Deno.test({
  name:
    "deploy/base passes kubectl apply --dry-run=server on a real API server and creates nothing",
  ignore: ignoreStack,
  async fn() {
    const { yaml, objects } = await renderDeployBase();
    await using stack = await startKubeStack();
    const namespace = await createNamespace(stack, "deploy");
    const result = await stack.kubectl(
      ["apply", "--dry-run=server", "-n", namespace, "-f", "-"],
      { stdin: yaml },
    );
    assertEquals(result.code, 0, result.stderr);
    for (const object of objects) {
      assertMatch(
        result.stdout,
        new RegExp(`/${object.metadata.name} created \\(server dry run\\)`),
      );
    }
    const after = await stack.kubectl([
      "get",
      "deployments,roles,serviceaccounts",
      "-n",
      namespace,
    ]);
    assertEquals(after.code, 0, after.stderr);
    assert(
      !after.stdout.includes("kube-token-refresher"),
      `objects were created:\n${after.stdout}`,
    );
  },
});

Deno.test({
  name:
    "the shipped Role lets the refresher dry-run and refresh its Secret on a real API server, and no other",
  ignore: ignoreStack,
  async fn() {
    const { objects } = await renderDeployBase();
    const config = findObject<ConfigMap>(objects, "ConfigMap");
    const serviceAccount = findObject(objects, "ServiceAccount").metadata.name;
    const target = config.data.KTR_SECRET_NAME;
    await using stack = await startKubeStack();
    await using provider = await startOidcProvider({ tokenTtlSeconds: 600 });
    const namespace = await createNamespace(stack, "rbac");
    await applyRbac(stack, objects, namespace);
    const { token: saToken } = await requestServiceAccountToken(stack, namespace, serviceAccount, {
      expirationSeconds: 3600,
    });
    const saDir = await Deno.makeTempDir({ prefix: "ktr-sa-" });
    try {
      await writeServiceAccountDir(saDir, { token: saToken, caPem: stack.caPem, namespace });
      const run = async (args: string[]) => {
        await using refresher = spawnRefresher({
          env: {
            KUBERNETES_SERVICE_HOST: stack.host,
            KUBERNETES_SERVICE_PORT: String(stack.port),
            KTR_KUBE_SERVICEACCOUNTDIR: saDir,
            KTR_SECRET_NAME: target,
            KTR_SECRET_NAMESPACE: namespace,
            ...providerEnv(provider),
          },
          args: ["--http.address=off", ...args],
        });
        const { code, output } = await refresher.exited;
        for (const secret of [provider.clientSecret, saToken, ...provider.issued]) {
          assertNotIncludes(output, secret);
        }
        return { code, output };
      };

      const before = await run(["--dry-run"]);
      assertEquals(before.code, 0, before.output);
      for (const verb of ["get", "patch", "create", "list", "watch"]) {
        assertMatch(
          before.output,
          new RegExp(`^Permission ${verb} secret "${target}" .*: allowed$`, "m"),
        );
      }
      assertMatch(before.output, /^Watch: permitted/m);
      assertMatch(before.output, /^Events: permitted/m);
      assertMatch(before.output, /^Would: create Secret/m);
      const none = await stack.kubectl(["get", "secret", target, "-n", namespace]);
      assert(none.code !== 0, "the dry run created the Secret");

      const once = await run(["--once"]);
      assertEquals(once.code, 0, once.output);
      const got = await stack.kubectl(
        ["get", "secret", target, "-n", namespace, "-o", "jsonpath={.data.token}"],
      );
      assertEquals(atob(got.stdout), provider.issued.at(-1));

      const after = await run(["--dry-run"]);
      assertEquals(after.code, 0, after.output);
      assertMatch(after.output, /^Would: set key "token"/m);

      const other = await run(["--dry-run", "--secret.name=someone-elses-secret"]);
      assertEquals(other.code, 1, other.output);
      assertMatch(other.output, /^Permission get secret "someone-elses-secret" .*: MISSING$/m);
      assertMatch(other.output, /^Permission patch secret "someone-elses-secret" .*: MISSING$/m);
    } finally {
      await Deno.remove(saDir, { recursive: true });
    }
  },
});
