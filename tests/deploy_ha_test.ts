/**
 * deploy/components/ha, rendered with kubectl's kustomize on top of the base as an overlay would
 * use it: two replicas that elect a leader, a disruption budget, a spread over nodes, the pod's
 * name from the downward API, and exactly the Lease verbs in the Role, the Lease named as the
 * configuration names it.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  findObject,
  kubectlIgnore,
  type KubeObject,
  renderOverlay,
} from "./fixtures/deploy_manifests.ts";
import { resolveConfig } from "../src/config/mod.ts";
import { leaseOf } from "../src/leader.ts";

function renderHa(): Promise<KubeObject[]> {
  return renderOverlay("resources: [../base]\ncomponents: [../components/ha]\n");
}

Deno.test({
  name:
    "deploy/components/ha: 2 replicas electing a leader, a PDB, a topology spread, the Lease verbs narrowed by name",
  ignore: kubectlIgnore(),
  async fn() {
    const objects = await renderHa();
    const deployment = findObject(objects, "Deployment") as KubeObject & {
      spec: {
        replicas: number;
        selector: { matchLabels: Record<string, string> };
        template: {
          spec: {
            topologySpreadConstraints?: { topologyKey: string; maxSkew: number }[];
            containers: {
              env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
            }[];
          };
        };
      };
    };
    assertEquals(deployment.spec.replicas, 2);
    const spread = deployment.spec.template.spec.topologySpreadConstraints ?? [];
    assertEquals(spread.map((c) => [c.topologyKey, c.maxSkew]), [["kubernetes.io/hostname", 1]]);
    const env = deployment.spec.template.spec.containers[0].env ?? [];
    assertEquals(
      env.find((e) => e.name === "POD_NAME")?.valueFrom?.fieldRef?.fieldPath,
      "metadata.name",
    );
    const pdb = findObject(objects, "PodDisruptionBudget") as KubeObject & {
      spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } };
    };
    assertEquals(pdb.spec.maxUnavailable, 1);
    assertEquals(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);

    const data = (findObject(objects, "ConfigMap") as KubeObject & { data: Record<string, string> })
      .data;
    const config = resolveConfig({
      env: {
        ...data,
        KTR_SECRET_NAMESPACE: "tools",
        KTR_OIDC_CLIENTID: "x",
        KTR_OIDC_CLIENTSECRET: "x",
      },
    });
    assertEquals(config.leader.elect, true);
    const lease = await leaseOf(config, () => Promise.resolve("tools"));
    const role = findObject(objects, "Role") as KubeObject & {
      rules: {
        apiGroups: string[];
        resources: string[];
        resourceNames?: string[];
        verbs: string[];
      }[];
    };
    const leaseRules = role.rules.filter((r) => r.apiGroups.includes("coordination.k8s.io"));
    assertEquals(leaseRules, [
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: [lease.name],
        verbs: ["get", "update"],
      },
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    ]);
    assert(role.rules.length === 4, "the base's two rules and the two Lease rules");
  },
});
