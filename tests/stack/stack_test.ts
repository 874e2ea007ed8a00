// Smoke test of the local Kubernetes test stack (etcd + kube-apiserver).
// Skips with one loud line when the binaries are missing, unless CI=true.
import {
  createNamespace,
  createServiceAccount,
  processRssKiB,
  requestServiceAccountToken,
  stackTestIgnore,
  startKubeStack,
  writeServiceAccountDir,
} from "./stack.ts";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function assertEquals<T>(actual: T, expected: T, msg: string): void {
  if (actual !== expected) {
    throw new Error(`assertion failed: ${msg}: expected ${expected}, got ${actual}`);
  }
}

function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "stack: kubectl, client certificates, TokenRequest and RBAC on a real apiserver",
  ignore: stackTestIgnore(),
}, async (t) => {
  await using stack = await startKubeStack();
  const rss = {
    apiserver: await processRssKiB(stack.pids.apiserver),
    etcd: await processRssKiB(stack.pids.etcd),
  };
  console.log(
    `stack ready in ${stack.startMs} ms at ${stack.url}; RSS apiserver ${rss.apiserver} KiB, ` +
      `etcd ${rss.etcd} KiB`,
  );

  const kubectl = async (args: string[], opts?: { stdin?: string; kubeconfig?: string }) => {
    const r = await stack.kubectl(args, opts);
    assertEquals(r.code, 0, `kubectl ${args.join(" ")} exit code (stderr: ${r.stderr.trim()})`);
    return r.stdout;
  };

  const ns = await createNamespace(stack, "smoke");

  await t.step("kubectl creates a ServiceAccount and a Secret", async () => {
    await kubectl(["-n", ns, "create", "serviceaccount", "refresher"]);
    await kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "target", namespace: ns },
        type: "Opaque",
        stringData: { token: "initial" },
      }),
    });
    const secret = JSON.parse(await kubectl(["-n", ns, "get", "secret", "target", "-o", "json"]));
    assertEquals(atob(secret.data.token), "initial", "secret data");
  });

  await t.step("client-certificate kubeconfig authenticates as system:masters", async () => {
    const review = JSON.parse(
      await kubectl(["auth", "whoami", "-o", "json"], {
        kubeconfig: stack.clientCertKubeconfigPath,
      }),
    );
    assertEquals(review.status.userInfo.username, "ktr-admin-cert", "username");
    assert(review.status.userInfo.groups.includes("system:masters"), "system:masters group");
  });

  await t.step("TokenRequest token: authenticated, forbidden without RBAC", async (t) => {
    const { token, expirationTimestamp } = await requestServiceAccountToken(
      stack,
      ns,
      "refresher",
      { boundSecretName: "target", expirationSeconds: 600 },
    );
    assert(token.split(".").length === 3, "token is a JWT");
    assert(!Number.isNaN(Date.parse(expirationTimestamp)), "expirationTimestamp parses");
    const claims = JSON.parse(
      atob(token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/")),
    );
    assertEquals(claims.iss, stack.issuer, "iss claim");
    assertEquals(claims.sub, `system:serviceaccount:${ns}:refresher`, "sub claim");

    const saDir = await writeServiceAccountDir(`${stack.dir}/sa`, {
      token,
      caPem: stack.caPem,
      namespace: ns,
    });
    assertEquals(await Deno.readTextFile(`${saDir}/namespace`), ns, "namespace file");

    const path = `/api/v1/namespaces/${ns}/secrets/target`;
    let res = await stack.request(path, {}, token);
    const body = await res.text();
    assertEquals(res.status, 403, `GET secret as the service account (${body})`);
    assert(body.includes(`system:serviceaccount:${ns}:refresher`), "403 names the user");

    res = await stack.request(path, {}, "not-a-valid-token");
    await res.body?.cancel();
    assertEquals(res.status, 401, "GET secret with a bad token");

    await t.step("allowed once a Role grants it", async () => {
      await kubectl([
        "-n",
        ns,
        "create",
        "role",
        "target-writer",
        "--verb=get,update,patch",
        "--resource=secrets",
        "--resource-name=target",
      ]);
      await kubectl([
        "-n",
        ns,
        "create",
        "rolebinding",
        "target-writer",
        "--role=target-writer",
        `--serviceaccount=${ns}:refresher`,
      ]);
      const patch = await stack.request(path, {
        method: "PATCH",
        headers: { "Content-Type": "application/merge-patch+json" },
        body: JSON.stringify({ stringData: { token: "refreshed" } }),
      }, token);
      const patchBody = await patch.text();
      assertEquals(patch.status, 200, `PATCH secret as the service account (${patchBody})`);
      const other = await stack.request(`/api/v1/namespaces/${ns}/secrets`, {}, token);
      await other.body?.cancel();
      assertEquals(other.status, 403, "LIST secrets stays forbidden");
      const out = await kubectl([
        "-n",
        ns,
        "get",
        "secret",
        "target",
        "-o",
        "jsonpath={.data.token}",
      ]);
      assertEquals(atob(out), "refreshed", "secret updated");

      await createServiceAccount(stack, ns, "bystander");
      const bystander = await requestServiceAccountToken(stack, ns, "bystander");
      const denied = await stack.request(path, {}, bystander.token);
      await denied.body?.cancel();
      assertEquals(denied.status, 403, "another service account stays forbidden");
    });
  });

  await t.step("stop() ends both processes and removes the folder", async () => {
    await stack.stop();
    assert(!pidAlive(stack.pids.apiserver), "apiserver gone");
    assert(!pidAlive(stack.pids.etcd), "etcd gone");
    let exists = true;
    try {
      await Deno.stat(stack.dir);
    } catch {
      exists = false;
    }
    assert(!exists, "temp dir removed");
    await stack.stop(); // idempotent; `await using` calls it once more
  });
});
