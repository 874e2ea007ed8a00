/**
 * The workload-identity components of deploy/, rendered with kubectl's kustomize on top of the
 * base, as an overlay would use them: no client secret left anywhere, the token source configured,
 * and for the TokenRequest variant exactly one more permission, on the tool's own service account.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  findObject,
  kubectlIgnore,
  type KubeObject,
  renderOverlay,
} from "./fixtures/deploy_manifests.ts";
import { resolveConfig } from "../src/config/mod.ts";

interface Container {
  env?: { name: string; valueFrom?: unknown }[];
  volumeMounts?: { name: string; mountPath: string }[];
}

interface PodSpec {
  serviceAccountName: string;
  containers: Container[];
  volumes: { name: string; projected?: { sources: Record<string, unknown>[] } }[];
}

/** Renders an overlay of the base with one component, in a folder beside them. */
function renderWith(component: string): Promise<KubeObject[]> {
  return renderOverlay(`resources: [../base]\ncomponents: [../components/${component}]\n`);
}

function parts(objects: KubeObject[]) {
  const deployment = findObject(objects, "Deployment") as KubeObject & {
    spec: { template: { spec: PodSpec } };
  };
  const pod = deployment.spec.template.spec;
  const config = findObject(objects, "ConfigMap") as KubeObject & { data: Record<string, string> };
  return { pod, container: pod.containers[0], config };
}

/** The configuration the pod would run with: the ConfigMap plus a namespace, as in the pod. */
function configOf(data: Record<string, string>) {
  return resolveConfig({ env: { ...data, KTR_SECRET_NAMESPACE: "tools" } });
}

const ignore = kubectlIgnore();

Deno.test({
  name: "deploy/components/workload-identity: a projected token, and no client secret anywhere",
  ignore,
  async fn() {
    const objects = await renderWith("workload-identity");
    assertEquals(objects.filter((o) => o.kind === "Secret"), []);
    const { pod, container, config } = parts(objects);
    const names = (container.env ?? []).map((e) => e.name);
    assert(!names.includes("KTR_OIDC_CLIENTSECRET"), names.join());
    assert(!JSON.stringify(objects).includes("clientsecret"), "a client secret reference is left");
    const volume = pod.volumes.find((v) => v.name === "provider-token");
    assertEquals(volume?.projected?.sources, [{
      serviceAccountToken: {
        path: "token",
        audience: "replace-me-with-the-provider-audience",
        expirationSeconds: 3600,
      },
    }]);
    const mount = container.volumeMounts?.find((m) => m.name === "provider-token");
    assertEquals(
      `${mount?.mountPath}/token`,
      config.data.KTR_OIDC_FEDERATION_TOKENFILE,
    );
    const resolved = configOf(config.data);
    assertEquals(resolved.oidc.authMethod, "workload_identity");
    assertEquals(resolved.oidc.clientSecret, undefined);
    // The base's Role is unchanged: a token file needs no permission.
    const role = findObject(objects, "Role") as KubeObject & { rules: unknown[] };
    assertEquals(role.rules.length, 2);
  },
});

Deno.test({
  name: "deploy/components/workload-identity-tokenrequest: TokenRequest for its own account only",
  ignore,
  async fn() {
    const objects = await renderWith("workload-identity-tokenrequest");
    assertEquals(objects.filter((o) => o.kind === "Secret"), []);
    const { pod, config } = parts(objects);
    const role = findObject(objects, "Role") as KubeObject & { rules: unknown[] };
    assertEquals(role.rules.at(-1), {
      apiGroups: [""],
      resources: ["serviceaccounts/token"],
      resourceNames: [pod.serviceAccountName],
      verbs: ["create"],
    });
    // The Role names the account the pod runs as, and the binding grants it to that account.
    assertEquals(findObject(objects, "ServiceAccount").metadata.name, pod.serviceAccountName);
    const binding = findObject(objects, "RoleBinding") as KubeObject & {
      subjects: { name: string }[];
    };
    assertEquals(binding.subjects.map((s) => s.name), [pod.serviceAccountName]);
    const resolved = configOf(config.data);
    assertEquals(resolved.oidc.federation?.audience, "replace-me-with-the-provider-audience");
    assertEquals(resolved.oidc.federation?.expiration, 600);
    assertEquals(resolved.oidc.clientSecret, undefined);
  },
});
