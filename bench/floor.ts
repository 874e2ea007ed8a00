/**
 * The runtime's own floor, for comparison: a process that imports nothing of the tool and sends
 * the requests of a steady-state refresh (a client-credentials POST over HTTP, the service
 * account token read from its file, a Secret write over TLS trusting the cluster CA). Whatever
 * the refresher holds above this is the cost of its code and dependencies.
 *
 * Usage (under `--permission-set=incluster`, like the refresher): `floor.ts '<options as JSON>'`
 * with `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` in the environment. With
 * `cycles: 0` it sends nothing and samples once after `paceMs`: an idle Deno process. Output:
 * the JSON lines of bench/sample.ts.
 *
 * @module
 */
import { emit, sample, wait } from "./sample.ts";

/** Options of one floor run, passed as the first argument. */
export interface FloorOptions {
  /** Request pairs to send; 0 for an idle process. */
  cycles: number;
  /** A memory sample every this many cycles. */
  every: number;
  /** Real wait between cycles (ms), or before the sample of an idle process. */
  paceMs: number;
  /** The token endpoint. */
  tokenUrl: string;
  /** The service-account folder (`token`, `ca.crt`). */
  serviceAccountDir: string;
  /** Namespace of the Secret to write. */
  namespace: string;
  /** Name of the Secret to write. */
  name: string;
}

async function run(options: FloorOptions): Promise<void> {
  if (options.cycles === 0) {
    await wait(options.paceMs);
    await sample("idle", 0);
    return;
  }
  const host = Deno.env.get("KUBERNETES_SERVICE_HOST");
  const port = Deno.env.get("KUBERNETES_SERVICE_PORT");
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(`${options.serviceAccountDir}/ca.crt`)],
  });
  const secrets = `https://${host}:${port}/api/v1/namespaces/${options.namespace}/secrets`;
  await sample("started", 0);
  let resourceVersion: string | undefined;
  for (let cycle = 1; cycle <= options.cycles; cycle++) {
    const tokenResponse = await fetch(options.tokenUrl, {
      method: "POST",
      headers: { accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: "bench",
        client_secret: "bench",
      }),
    });
    const { access_token: token } = await tokenResponse.json();
    const bearer = (await Deno.readTextFile(`${options.serviceAccountDir}/token`)).trim();
    const secret = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: options.name, namespace: options.namespace, resourceVersion },
      type: "Opaque",
      data: { token: btoa(token) },
    };
    const response = await fetch(
      resourceVersion === undefined ? secrets : `${secrets}/${options.name}`,
      {
        method: resourceVersion === undefined ? "POST" : "PUT",
        headers: {
          authorization: `Bearer ${bearer}`,
          accept: "application/json",
          "content-type": "application/json",
        },
        body: JSON.stringify(secret),
        client,
      },
    );
    if (!response.ok) throw new Error(`Secret write answered HTTP ${response.status}`);
    resourceVersion = (await response.json()).metadata.resourceVersion;
    if (cycle === 1) await sample("first-write", cycle);
    if (cycle % options.every === 0) await sample("cycles", cycle);
    if (options.paceMs > 0 && cycle < options.cycles) await wait(options.paceMs);
  }
  client.close();
  // The parent reads /proc after each sample; a process gone at once would leave it nothing.
  await wait(Math.max(options.paceMs, 200));
  emit({
    event: "done",
    cycles: options.cycles,
    failures: 0,
    writerRequests: options.cycles,
    ms: performance.now(),
  });
}

if (import.meta.main) {
  await run(JSON.parse(Deno.args[0] ?? "{}") as FloorOptions);
  Deno.exit(0);
}
