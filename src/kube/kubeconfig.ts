/**
 * A small kubeconfig reader for the two users a refresher outside a cluster mostly has: a bearer
 * token (`token` or `tokenFile`) and a client certificate (`client-certificate(-data)` and
 * `client-key(-data)`), with the cluster's CA. `@kubernetes/client-node` costs about 60 MiB of
 * resident memory and half a second of start-up; it is loaded only for what this reader hands
 * over: exec and auth-provider users, and anything else it does not know exactly.
 *
 * Files are merged as kubectl merges `KUBECONFIG`: the first file that names a cluster, user or
 * context wins, and so does the first `current-context`. Relative paths count from the folder of
 * the file that holds them.
 *
 * @module
 */

/** What {@linkcode readSimpleKubeconfig} found. */
export type SimpleKubeconfig =
  | {
    readonly kind: "simple";
    /** The current context's name. */
    readonly context: string;
    /** The cluster's name. */
    readonly cluster: string;
    /** The user's name. */
    readonly user: string;
    /** The API server. */
    readonly server: string;
    /** PEM of the cluster CA, if the kubeconfig names one (else the system roots are used). */
    readonly caPem?: string;
    /** PEM of the client certificate and its key, if the user has them. */
    readonly certPem?: string;
    readonly keyPem?: string;
    /** A bearer token written in the kubeconfig. */
    readonly token?: string;
    /** A file holding the bearer token, read again for every request. */
    readonly tokenFile?: string;
  }
  | {
    /** The reader does not handle this kubeconfig: `@kubernetes/client-node` does. */
    readonly kind: "delegate";
    /** Why, for the connection's description (never a secret). */
    readonly reason: string;
  };

/** The problems the reader reports itself rather than handing over. */
export class KubeconfigError extends Error {
  override name = "KubeconfigError";
}

const CLUSTER_KEYS = new Set([
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "insecure-skip-tls-verify",
  "extensions",
]);
const USER_KEYS = new Set([
  "token",
  "tokenFile",
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "extensions",
]);
const CONTEXT_KEYS = new Set(["cluster", "user", "namespace", "extensions"]);

type Entry = { name: string; body: Record<string, unknown>; dir: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The named entries of `clusters`, `users` or `contexts`, or undefined when malformed. */
function namedList(
  doc: Record<string, unknown>,
  list: string,
  field: string,
  dir: string,
): Entry[] | undefined {
  const value = doc[list];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return undefined;
  const entries: Entry[] = [];
  for (const item of value) {
    if (!isRecord(item) || typeof item.name !== "string") return undefined;
    const body = item[field] ?? {};
    if (!isRecord(body)) return undefined;
    entries.push({ name: item.name, body, dir });
  }
  return entries;
}

function onlyStrings(body: Record<string, unknown>, keys: Set<string>): string | undefined {
  for (const [key, value] of Object.entries(body)) {
    if (!keys.has(key)) return `"${key}"`;
    if (key !== "extensions" && key !== "insecure-skip-tls-verify" && typeof value !== "string") {
      return `"${key}" that is not a string`;
    }
  }
  return undefined;
}

function absolute(path: string, dir: string): string {
  return path.startsWith("/") ? path : `${dir}/${path}`;
}

function decodeBase64(value: string, what: string): string {
  try {
    const bytes = Uint8Array.from(atob(value.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new KubeconfigError(`${what} is not valid base64`);
  }
}

/** PEM from `<name>-data` (base64) or from the file `<name>`; the data wins, as in kubectl. */
async function pem(
  entry: Entry,
  name: string,
  read: (path: string) => Promise<string>,
  what: string,
): Promise<string | undefined> {
  const data = entry.body[`${name}-data`];
  if (typeof data === "string" && data !== "") return decodeBase64(data, `${what} (${name}-data)`);
  const file = entry.body[name];
  if (typeof file !== "string" || file === "") return undefined;
  const path = absolute(file, entry.dir);
  try {
    return await read(path);
  } catch (err) {
    throw new KubeconfigError(
      `${what} file "${path}" (${name}) could not be read: ${
        err instanceof Error ? err.message : String(err)
      }`,
    );
  }
}

/**
 * Reads the current context of a kubeconfig when its user is a token or client-certificate user
 * and everything in it is known; otherwise says why `@kubernetes/client-node` should read it.
 *
 * @param paths The files, as in `KUBECONFIG`.
 * @param read Reads a file as text.
 * @returns The server, CA, and credentials, or the reason to hand over.
 * @throws {KubeconfigError} When the kubeconfig is understood and wrong: the cluster turns TLS
 *   verification off, a `-data` field is not base64, or a file it names cannot be read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSimpleKubeconfig } from "./kubeconfig.ts";
 *
 * const text = `
 * clusters: [{ name: c, cluster: { server: "https://10.0.0.1:6443" } }]
 * users: [{ name: u, user: { token: abc } }]
 * contexts: [{ name: x, context: { cluster: c, user: u } }]
 * current-context: x
 * `;
 * const found = await readSimpleKubeconfig(["/home/me/.kube/config"], () => Promise.resolve(text));
 * assert.equal(found.kind, "simple");
 * ```
 */
export async function readSimpleKubeconfig(
  paths: readonly string[],
  read: (path: string) => Promise<string>,
): Promise<SimpleKubeconfig> {
  const { parseDocument } = await import("yaml");
  const clusters = new Map<string, Entry>();
  const users = new Map<string, Entry>();
  const contexts = new Map<string, Entry>();
  let current: string | undefined;
  for (const path of paths) {
    let text: string;
    try {
      text = await read(path);
    } catch (err) {
      // kubectl skips a missing file among several; one alone, or another error, is client-node's
      // to report as it always has.
      if (paths.length > 1 && err instanceof Deno.errors.NotFound) continue;
      return { kind: "delegate", reason: "a file could not be read" };
    }
    const doc = parseDocument(text);
    if (doc.errors.length > 0) return { kind: "delegate", reason: "YAML it cannot parse" };
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    if (!isRecord(value)) return { kind: "delegate", reason: "a document that is no mapping" };
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
    const lists = [
      [clusters, namedList(value, "clusters", "cluster", dir)],
      [users, namedList(value, "users", "user", dir)],
      [contexts, namedList(value, "contexts", "context", dir)],
    ] as const;
    for (const [map, entries] of lists) {
      if (entries === undefined) return { kind: "delegate", reason: "a list it cannot read" };
      for (const entry of entries) if (!map.has(entry.name)) map.set(entry.name, entry);
    }
    const named = value["current-context"];
    if (current === undefined && typeof named === "string" && named !== "") current = named;
  }
  if (current === undefined) return { kind: "delegate", reason: "no current-context" };
  const context = contexts.get(current);
  if (!context) return { kind: "delegate", reason: "a current-context it does not define" };
  const unknownContextKey = onlyStrings(context.body, CONTEXT_KEYS);
  if (unknownContextKey) return { kind: "delegate", reason: `context key ${unknownContextKey}` };
  const cluster = clusters.get(String(context.body.cluster));
  const user = users.get(String(context.body.user ?? ""));
  if (!cluster) return { kind: "delegate", reason: "a context without its cluster" };
  if (!user) return { kind: "delegate", reason: "a context without its user" };
  const unknownClusterKey = onlyStrings(cluster.body, CLUSTER_KEYS);
  if (unknownClusterKey) return { kind: "delegate", reason: `cluster key ${unknownClusterKey}` };
  // exec, auth-provider, username/password, impersonation: client-node's business.
  const unknownUserKey = onlyStrings(user.body, USER_KEYS);
  if (unknownUserKey) return { kind: "delegate", reason: `user key ${unknownUserKey}` };
  const skip = cluster.body["insecure-skip-tls-verify"];
  if (skip !== undefined && typeof skip !== "boolean") {
    return {
      kind: "delegate",
      reason: `cluster key "insecure-skip-tls-verify" that is no boolean`,
    };
  }
  if (skip === true) {
    throw new KubeconfigError(
      `cluster "${cluster.name}" sets insecure-skip-tls-verify, which this tool refuses; give the cluster's CA (certificate-authority or certificate-authority-data)`,
    );
  }
  const server = cluster.body.server;
  if (typeof server !== "string" || server === "") {
    return { kind: "delegate", reason: "a cluster without a server" };
  }
  const caPem = await pem(cluster, "certificate-authority", read, `Cluster "${cluster.name}" CA`);
  const certPem = await pem(user, "client-certificate", read, `User "${user.name}" certificate`);
  const keyPem = await pem(user, "client-key", read, `User "${user.name}" key`);
  if ((certPem === undefined) !== (keyPem === undefined)) {
    throw new KubeconfigError(
      `user "${user.name}" has a client ${
        certPem === undefined ? "key without a certificate" : "certificate without a key"
      }; give both (client-certificate and client-key, or their -data forms)`,
    );
  }
  const token = typeof user.body.token === "string" && user.body.token !== ""
    ? user.body.token
    : undefined;
  const tokenFile = typeof user.body.tokenFile === "string" && user.body.tokenFile !== ""
    ? absolute(user.body.tokenFile, user.dir)
    : undefined;
  if (token === undefined && tokenFile === undefined && certPem === undefined) {
    return { kind: "delegate", reason: "a user without a token or a client certificate" };
  }
  if (token !== undefined && tokenFile !== undefined) {
    // Which one wins differs between clients; the one kubectl's library would pick is its call.
    return { kind: "delegate", reason: "a user with both token and tokenFile" };
  }
  return {
    kind: "simple",
    context: current,
    cluster: cluster.name,
    user: user.name,
    server,
    ...(caPem === undefined ? {} : { caPem }),
    ...(certPem === undefined ? {} : { certPem, keyPem }),
    ...(token === undefined ? {} : { token }),
    ...(tokenFile === undefined ? {} : { tokenFile }),
  };
}
