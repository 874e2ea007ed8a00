/**
 * What leader election costs: resident memory of a leader and of a follower, against one replica
 * without election, each refreshing 1 s tokens for a minute (the leader and the single replica
 * every 0.67 s, the follower never), against the real kube-apiserver of tests/stack and the
 * OpenID provider fixture. The processes are main.ts as users run it (`deno run` under the
 * `incluster` permission set); memory is read from /proc every second, the last and the highest
 * value reported. Also the API requests of the election: Lease reads and updates per minute.
 *
 * Usage: `deno run --allow-all bench/leader.ts [--seconds=60]`.
 *
 * @module
 */
const MiB = 1024;

async function main(args: string[]): Promise<void> {
  const seconds = Number(args.find((a) => a.startsWith("--seconds="))?.split("=")[1] ?? 60);
  const { startKubeStack, processRssKiB } = await import("../tests/stack/stack.ts");
  const { startOidcProvider, providerEnv } = await import("../tests/fixtures/oidc_provider.ts");
  const { refresherNamespace, inClusterEnv } = await import("../tests/fixtures/real_cluster.ts");
  const { spawnRefresher } = await import("../tests/fixtures/refresher_process.ts");
  await using stack = await startKubeStack();
  await using provider = await startOidcProvider({ tokenTtlSeconds: 1 });
  const name = "access-token";
  const { namespace, saDir } = await refresherNamespace(stack, name);
  // The Lease rules of deploy/components/ha, next to the Role of deploy/base.
  const lease = `kube-token-refresher-${name}`;
  const applied = await stack.kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "refresher-lease", namespace },
      rules: [
        {
          apiGroups: ["coordination.k8s.io"],
          resources: ["leases"],
          resourceNames: [lease],
          verbs: ["get", "update"],
        },
        { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
      ],
    }),
  });
  if (applied.code !== 0) throw new Error(applied.stderr);
  const bound = await stack.kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "refresher-lease", namespace },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "refresher-lease" },
      subjects: [{ kind: "ServiceAccount", name: "refresher", namespace }],
    }),
  });
  if (bound.code !== 0) throw new Error(bound.stderr);
  const env = (pod: string, extra: Record<string, string>) => ({
    ...inClusterEnv(stack, saDir),
    ...providerEnv(provider),
    KTR_SECRET_NAME: name,
    POD_NAME: pod,
    ...extra,
  });
  const run = async (
    replicas: { pod: string; extra: Record<string, string>; secret: string }[],
  ) => {
    const processes = replicas.map((r) =>
      spawnRefresher({
        env: { ...env(r.pod, r.extra), KTR_SECRET_NAME: r.secret },
        args: ["--http.address=off"],
      })
    );
    const highest = processes.map(() => 0);
    const last = processes.map(() => 0);
    for (let s = 0; s < seconds; s++) {
      await new Promise((r) => setTimeout(r, 1000));
      for (const [i, p] of processes.entries()) {
        const kib = await processRssKiB(p.pid) ?? 0;
        last[i] = kib;
        highest[i] = Math.max(highest[i], kib);
      }
    }
    const outputs = [];
    for (const p of processes) {
      p.kill("SIGTERM");
      outputs.push((await p.exited).output);
    }
    return { highest, last, outputs };
  };

  const single = await run([{ pod: "single", extra: {}, secret: name }]);
  const elect = { KTR_LEADER_ELECT: "true" };
  const pair = await run([
    { pod: "first", extra: elect, secret: name },
    { pod: "second", extra: elect, secret: name },
  ]);
  const leaderIndex = pair.outputs.findIndex((o) => o.includes("Became leader"));
  const followerIndex = 1 - leaderIndex;
  const refreshes = (o: string) => o.match(/Token refreshed/g)?.length ?? 0;
  const rows = [
    ["one replica, no election", single.last[0], single.highest[0], refreshes(single.outputs[0])],
    [
      "leader",
      pair.last[leaderIndex],
      pair.highest[leaderIndex],
      refreshes(pair.outputs[leaderIndex]),
    ],
    [
      "follower",
      pair.last[followerIndex],
      pair.highest[followerIndex],
      refreshes(pair.outputs[followerIndex]),
    ],
  ] as const;
  console.log(`RSS over ${seconds} s with 1 s tokens (MiB, last / highest; refreshes):`);
  for (const [what, last, highest, count] of rows) {
    console.log(
      `  ${what.padEnd(26)} ${(last / MiB).toFixed(1)} / ${(highest / MiB).toFixed(1)}  (${count})`,
    );
  }
  await Deno.remove(saDir, { recursive: true });
}

if (import.meta.main) await main(Deno.args);
