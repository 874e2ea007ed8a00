/**
 * The loopback servers of the footprint bench, run in the parent process so they cost the
 * measured process nothing: a token endpoint (plain HTTP, which the tool allows to loopback
 * only) and the Kubernetes Secrets API fake over TLS, with a service-account folder that trusts
 * it. Both count what they receive, so requests per refresh are counted where they arrive.
 *
 * @module
 */
import { createFakeKube, type FakeKube } from "../tests/fixtures/fake_kube.ts";
import { makeTestTls } from "../tests/fixtures/tls.ts";

/** What the servers have received since the last {@linkcode BenchServers.reset}. */
export interface Counts {
  /** Requests to the token endpoint. */
  token: number;
  /** Requests to the Kubernetes API, all verbs. */
  api: number;
  /** Of those, writes of a Secret (POST, PUT, or PATCH for server-side apply). */
  writes: number;
}

/** The running servers. */
export interface BenchServers {
  /** The token endpoint. */
  readonly tokenUrl: string;
  /** `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` of the API fake. */
  readonly kubeEnv: { KUBERNETES_SERVICE_HOST: string; KUBERNETES_SERVICE_PORT: string };
  /** Folder with `token`, `ca.crt` and `namespace`, as a pod has it. */
  readonly serviceAccountDir: string;
  /**
   * The API fake's address and a certificate and key signed by its CA, for kubeconfig users: the
   * fake asks for no client certificate, but the tool loads the pair as it would for a cluster.
   */
  readonly kubeconfigParts: { server: string; certPem: string; keyPem: string };
  /** Counters since the last reset. */
  readonly counts: Readonly<Counts>;
  /** `performance.now()` of the first write since the last reset, if there was one. */
  readonly firstWriteAt: number | undefined;
  /** The counts as they were when the first write arrived (that write included). */
  readonly countsAtFirstWrite: Readonly<Counts> | undefined;
  /** Called as the first write since the last reset arrives, before it is answered. */
  onFirstWrite: (() => void) | undefined;
  /** Lifetime in seconds of the tokens issued from now on. */
  tokenLifetimeSeconds: number;
  /** Forgets counts, the first write and every stored Secret (a fresh cluster). */
  reset(): void;
  /** Resolves when `counts` satisfies `done`, or rejects after `timeoutMs`. */
  until(done: (counts: Readonly<Counts>) => boolean, timeoutMs: number): Promise<void>;
  /** Stops both servers and removes the TLS material. */
  [Symbol.asyncDispose](): Promise<void>;
}

function base64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Starts the token endpoint and the TLS API fake on 127.0.0.1.
 *
 * @returns The servers.
 * @throws {Error} When `openssl` is missing (the TLS material is made with it).
 */
export async function startBenchServers(): Promise<BenchServers> {
  const tls = await makeTestTls();
  let fake: FakeKube = createFakeKube();
  const counts: Counts = { token: 0, api: 0, writes: 0 };
  let firstWriteAt: number | undefined;
  let countsAtFirstWrite: Counts | undefined;
  let issued = 0;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const waiter of waiters) waiter();
  };

  const tokenServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      counts.token++;
      await req.body?.cancel();
      const now = Math.floor(Date.now() / 1000);
      const lifetime = servers.tokenLifetimeSeconds;
      // Shaped like a JWT so the tool sees what providers send; nobody verifies the signature.
      const token = `${base64url({ alg: "none", typ: "JWT" })}.${
        base64url({ sub: "bench", iat: now, exp: now + lifetime, jti: String(++issued) })
      }.c2ln`;
      wake();
      return Response.json({ access_token: token, token_type: "Bearer", expires_in: lifetime });
    },
  );
  const kubeServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: tls.certPem, key: tls.keyPem, onListen() {} },
    async (req) => {
      counts.api++;
      // A Secret write: created, replaced or applied (server-side apply is a PATCH); Events and
      // reads are API requests but no refresh.
      const write = ["POST", "PUT", "PATCH"].includes(req.method) &&
        new URL(req.url).pathname.includes("/secrets");
      if (write) {
        counts.writes++;
        if (firstWriteAt === undefined) {
          firstWriteAt = performance.now();
          countsAtFirstWrite = { ...counts };
          servers.onFirstWrite?.();
        }
      }
      // A read (a watch among them) gets a new Request: the fake would touch the served one's
      // signal, and Deno prints a notice about its legacy abort behaviour when that happens.
      const response = await fake.handler(
        req.method === "GET" ? new Request(req.url, { headers: req.headers }) : req,
      );
      // The fake keeps every request; thousands of cycles need none of them.
      fake.requests.length = 0;
      wake();
      return response;
    },
  );

  const serviceAccountDir = `${tls.dir}/serviceaccount`;
  await Deno.mkdir(serviceAccountDir, { recursive: true });
  await Deno.writeTextFile(`${serviceAccountDir}/token`, "bench-service-account-token");
  await Deno.writeTextFile(`${serviceAccountDir}/ca.crt`, tls.caPem);
  await Deno.writeTextFile(`${serviceAccountDir}/namespace`, "bench");

  const servers: BenchServers = {
    tokenUrl: `http://127.0.0.1:${tokenServer.addr.port}/token`,
    kubeEnv: {
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: String(kubeServer.addr.port),
    },
    serviceAccountDir,
    kubeconfigParts: {
      server: `https://127.0.0.1:${kubeServer.addr.port}`,
      certPem: tls.certPem,
      keyPem: tls.keyPem,
    },
    counts,
    get firstWriteAt() {
      return firstWriteAt;
    },
    get countsAtFirstWrite() {
      return countsAtFirstWrite;
    },
    onFirstWrite: undefined,
    tokenLifetimeSeconds: 3600,
    reset() {
      counts.token = 0;
      counts.api = 0;
      counts.writes = 0;
      firstWriteAt = undefined;
      countsAtFirstWrite = undefined;
      servers.onFirstWrite = undefined;
      fake = createFakeKube();
    },
    until(done, timeoutMs) {
      if (done(counts)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!done(counts)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`Servers did not see the expected requests within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    async [Symbol.asyncDispose]() {
      await Promise.all([tokenServer.shutdown(), kubeServer.shutdown()]);
      await Deno.remove(tls.dir, { recursive: true });
    },
  };
  return servers;
}
