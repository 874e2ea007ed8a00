/**
 * Where the API server is and how to authenticate: the pod's service account, or a kubeconfig.
 *
 * @module
 */
import { CodedError, messageOf } from "../errors.ts";
import type { KubeConnection } from "./client.ts";

/** Default folder of a pod's mounted service account. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A failure to find or read Kubernetes credentials at start-up. */
export class KubeCredentialsError extends CodedError<"KUBE_CREDENTIALS"> {
  override name = "KubeCredentialsError";
  /**
   * @param message Human-readable description, naming the file or variable concerned.
   * @param options Cause.
   */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, "KUBE_CREDENTIALS", options);
  }
}

/** Options of {@linkcode inClusterConnection}. */
export interface InClusterOptions {
  /** `KUBERNETES_SERVICE_HOST`. */
  host: string;
  /** `KUBERNETES_SERVICE_PORT`. */
  port: string;
  /** Folder with `token` and `ca.crt`. */
  dir: string;
  /** Reads a file; tests pass their own. */
  readTextFile?: (path: string) => Promise<string>;
}

async function readRequired(
  read: (path: string) => Promise<string>,
  path: string,
  what: string,
): Promise<string> {
  let text: string;
  try {
    text = await read(path);
  } catch (err) {
    throw new KubeCredentialsError(
      `Service account ${what} "${path}" could not be read: ${messageOf(err)}`,
      { cause: err },
    );
  }
  if (text.trim() === "") {
    throw new KubeCredentialsError(`Service account ${what} "${path}" is empty`);
  }
  return text;
}

/**
 * Connects with the pod's service account. The token file is read again for every request,
 * because projected service account tokens rotate and a token cached at start-up stops working.
 *
 * @param options Service host and port, the service account folder, and a file reader.
 * @returns The connection.
 * @throws {KubeCredentialsError} When the CA or the token cannot be read.
 *
 * @example
 * ```ts ignore
 * import { inClusterConnection } from "./connect.ts";
 * const connection = await inClusterConnection({
 *   host: "10.0.0.1", port: "443", dir: "/var/run/secrets/kubernetes.io/serviceaccount",
 * });
 * ```
 */
export async function inClusterConnection(options: InClusterOptions): Promise<KubeConnection> {
  const read = options.readTextFile ?? Deno.readTextFile;
  const caPath = `${options.dir}/ca.crt`;
  const tokenPath = `${options.dir}/token`;
  const caPem = await readRequired(read, caPath, "CA file");
  // Read once now so a missing mount fails at start-up, not at the first refresh.
  await readRequired(read, tokenPath, "token file");
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  let server: URL;
  try {
    server = new URL(`https://${host}:${options.port}`);
  } catch {
    throw new KubeCredentialsError(
      `KUBERNETES_SERVICE_HOST "${options.host}" and KUBERNETES_SERVICE_PORT "${options.port}" do not form a valid URL`,
    );
  }
  const httpClient = createTlsClient({ caCerts: [caPem], ...REQUESTS }, caPath);
  const streamHttpClient = createTlsClient({ caCerts: [caPem], ...STREAMS }, caPath);
  return {
    server,
    httpClient,
    streamHttpClient,
    description: `service account in ${options.dir}`,
    async authorize() {
      const token = (await readRequired(read, tokenPath, "token file")).trim();
      return { authorization: `Bearer ${token}` };
    },
    close: () => {
      httpClient.close();
      streamHttpClient.close();
    },
  };
}

/**
 * HTTP/1.1 for every request: a request that times out takes its connection with it, so a
 * connection that died silently (a NAT or load balancer forgetting it) costs one timeout, not
 * every later request (over HTTP/2 all requests would share that one connection).
 */
const REQUESTS = { http1: true, http2: false } as const;

/**
 * The watch's own connections: never pooled, so each watch stream has a TCP connection of its
 * own, and a stream given up as silent closes its connection.
 */
const STREAMS = { ...REQUESTS, poolMaxIdlePerHost: 0 } as const;

function createTlsClient(
  options: Deno.CreateHttpClientOptions,
  where: string,
): Deno.HttpClient {
  try {
    return Deno.createHttpClient(options);
  } catch (err) {
    throw new KubeCredentialsError(
      `TLS material from ${where} is not usable: ${messageOf(err)}`,
      { cause: err },
    );
  }
}

/** Options of {@linkcode kubeconfigConnection}. */
export interface KubeconfigOptions {
  /** Kubeconfig files, as in `KUBECONFIG` (merged like kubectl does when there are several). */
  paths: string[];
  /** Reads a file; tests pass their own. */
  readTextFile?: (path: string) => Promise<string>;
}

/**
 * Connects with the current context of a kubeconfig. Token and client-certificate users are
 * read by a small reader of our own (./kubeconfig.ts); exec and auth-provider users, and anything
 * that reader does not know exactly, by `@kubernetes/client-node`, loaded on that path only: it
 * costs about 60 MiB of memory and half a second of start-up.
 *
 * @param options The kubeconfig file(s).
 * @returns The connection.
 * @throws {KubeCredentialsError} When the file cannot be loaded, has no current cluster, or turns
 *   TLS verification off.
 *
 * @example
 * ```ts ignore
 * import { kubeconfigConnection } from "./connect.ts";
 * const connection = await kubeconfigConnection({ paths: ["/home/me/.kube/config"] });
 * ```
 */
export async function kubeconfigConnection(options: KubeconfigOptions): Promise<KubeConnection> {
  const where = options.paths.join(", ");
  const read = options.readTextFile ?? Deno.readTextFile;
  // Loaded here, not at start: a pod never reads a kubeconfig, and every module loaded stays in
  // memory for the life of the process.
  const { KubeconfigError, readSimpleKubeconfig } = await import("./kubeconfig.ts");
  let simple;
  try {
    simple = await readSimpleKubeconfig(options.paths, read);
  } catch (err) {
    if (err instanceof KubeconfigError) {
      throw new KubeCredentialsError(`Kubeconfig ${where}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  if (simple.kind === "simple") {
    const server = clusterServer(where, simple.cluster, simple.server);
    const tlsOptions = {
      ...(simple.caPem ? { caCerts: [simple.caPem] } : {}),
      ...(simple.certPem && simple.keyPem ? { cert: simple.certPem, key: simple.keyPem } : {}),
    };
    const httpClient = createTlsClient({ ...tlsOptions, ...REQUESTS }, `kubeconfig ${where}`);
    const streamHttpClient = createTlsClient({ ...tlsOptions, ...STREAMS }, `kubeconfig ${where}`);
    const { token, tokenFile } = simple;
    return {
      server,
      httpClient,
      streamHttpClient,
      description: `kubeconfig ${where}, context "${simple.context}"`,
      async authorize(): Promise<Record<string, string>> {
        if (tokenFile !== undefined) {
          // Read for every request, like the service account token: such files are rotated.
          return { authorization: `Bearer ${(await read(tokenFile)).trim()}` };
        }
        return token === undefined ? {} : { authorization: `Bearer ${token}` };
      },
      close: () => {
        httpClient.close();
        streamHttpClient.close();
      },
    };
  }
  return await clientNodeConnection(options.paths, where, simple.reason);
}

/** The kubeconfig through `@kubernetes/client-node`, for the users the small reader hands over. */
async function clientNodeConnection(
  paths: string[],
  where: string,
  reason: string,
): Promise<KubeConnection> {
  const options = { paths };
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  try {
    if (options.paths.length === 1) {
      kc.loadFromFile(options.paths[0]);
    } else {
      for (const path of options.paths) {
        const part = new KubeConfig();
        part.loadFromFile(path);
        kc.mergeConfig(part, true);
      }
      if (!kc.getCurrentContext()) {
        const first = new KubeConfig();
        first.loadFromFile(options.paths[0]);
        kc.setCurrentContext(first.getCurrentContext());
      }
    }
  } catch (err) {
    throw new KubeCredentialsError(
      `Kubeconfig ${where} could not be loaded: ${messageOf(err)}`,
      { cause: err },
    );
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new KubeCredentialsError(
      `Kubeconfig ${where} has no cluster for its current context "${kc.getCurrentContext()}"; set current-context`,
    );
  }
  if (cluster.skipTLSVerify) {
    throw new KubeCredentialsError(
      `Kubeconfig ${where}: cluster "${cluster.name}" sets insecure-skip-tls-verify, which this tool refuses; give the cluster's CA (certificate-authority or certificate-authority-data)`,
    );
  }
  const server = clusterServer(where, cluster.name, cluster.server);
  const tls: { ca?: unknown; cert?: unknown; key?: unknown; headers: Record<string, string> } = {
    headers: {},
  };
  try {
    await kc.applyToHTTPSOptions(tls as never);
  } catch (err) {
    throw new KubeCredentialsError(
      `Kubeconfig ${where}: credentials of user "${kc.getCurrentUser()?.name}" could not be loaded: ${
        messageOf(err)
      }`,
      { cause: err },
    );
  }
  const pem = (v: unknown) => (v === undefined || v === null ? undefined : String(v));
  const ca = pem(tls.ca);
  const cert = pem(tls.cert);
  const key = pem(tls.key);
  const tlsOptions = { ...(ca ? { caCerts: [ca] } : {}), ...(cert && key ? { cert, key } : {}) };
  const httpClient = createTlsClient({ ...tlsOptions, ...REQUESTS }, `kubeconfig ${where}`);
  const streamHttpClient = createTlsClient({ ...tlsOptions, ...STREAMS }, `kubeconfig ${where}`);
  return {
    server,
    httpClient,
    streamHttpClient,
    // Says why the large library was needed, so a slow or heavy start can be explained.
    description:
      `kubeconfig ${where}, context "${kc.getCurrentContext()}" (read by client-node: ${reason})`,
    async authorize() {
      // client-node caches exec-plugin and file tokens itself and renews them when they expire.
      const fresh: { headers: Record<string, string> } = { headers: {} };
      await kc.applyToHTTPSOptions(fresh as never);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(fresh.headers)) {
        if (name.toLowerCase() === "authorization") headers.authorization = String(value);
      }
      return headers;
    },
    close: () => {
      httpClient.close();
      streamHttpClient.close();
    },
  };
}

/** The environment values that decide how to connect. */
export interface ConnectEnv {
  KUBERNETES_SERVICE_HOST?: string;
  KUBERNETES_SERVICE_PORT?: string;
  KUBECONFIG?: string;
  HOME?: string;
}

/**
 * Picks the credentials: the pod's service account when `KUBERNETES_SERVICE_HOST` and
 * `KUBERNETES_SERVICE_PORT` are set, otherwise the kubeconfig (`KUBECONFIG` or `~/.kube/config`).
 *
 * @param env The environment values that matter.
 * @param options The service account folder.
 * @returns The connection.
 * @throws {KubeCredentialsError} When no credentials can be found or read.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./connect.ts";
 * const connection = await connect({ KUBECONFIG: "/tmp/kubeconfig" }, { serviceAccountDir: "" });
 * ```
 */
export function connect(
  env: ConnectEnv,
  options: {
    serviceAccountDir: string;
    readTextFile?: (path: string) => Promise<string>;
    /** Variables the process may not read (a narrow `--allow-env`), so "unset" is not claimed. */
    unreadable?: readonly string[];
  },
): Promise<KubeConnection> {
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) {
    return inClusterConnection({
      host: env.KUBERNETES_SERVICE_HOST,
      port: env.KUBERNETES_SERVICE_PORT,
      dir: options.serviceAccountDir,
      readTextFile: options.readTextFile,
    });
  }
  const hidden = (options.unreadable ?? []).filter((n) => n === "KUBECONFIG" || n === "HOME");
  if (hidden.length > 0) {
    return Promise.reject(
      new KubeCredentialsError(
        `Not in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset), and this build may not read ${
          hidden.join(" or ")
        } to find a kubeconfig: this is the in-cluster build of the container image; outside a cluster use the release binary or "deno task start"`,
      ),
    );
  }
  const paths = (env.KUBECONFIG ?? "").split(":").filter((p) => p !== "");
  if (paths.length === 0) {
    if (!env.HOME) {
      return Promise.reject(
        new KubeCredentialsError(
          "No Kubernetes credentials: not in a pod (KUBERNETES_SERVICE_HOST is unset), KUBECONFIG is unset and HOME is unknown; set KUBECONFIG",
        ),
      );
    }
    paths.push(`${env.HOME}/.kube/config`);
  }
  return kubeconfigConnection({ paths, readTextFile: options.readTextFile });
}

/** A kubeconfig cluster's `server` as a URL, or the error that names the file and cluster. */
function clusterServer(where: string, cluster: string, server: string): URL {
  try {
    return new URL(server);
  } catch {
    throw new KubeCredentialsError(
      `Kubeconfig ${where}: cluster "${cluster}" has server "${server}", which is not a URL`,
    );
  }
}
