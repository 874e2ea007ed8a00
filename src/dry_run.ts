/**
 * `--dry-run`: everything a refresh would do short of writing. Obtains a token, reaches the API
 * server, reviews the permissions on the Secret, reads whether it and its namespace exist, and
 * says what a run would do. Stores nothing on the API server (its one create, asked only when the
 * namespace cannot be read, is a `dryRun=All` the server discards); the token is never shown,
 * only its length.
 *
 * @module
 */
import { reviewSecretAccess, roleRuleFor, type SecretPermission } from "./kube/access.ts";
import { messageOf } from "./errors.ts";
import { KubeApiError, type KubeClient } from "./kube/client.ts";
import { MANAGED_LABEL, type SecretTarget } from "./kube/secret.ts";
import type { TokenSource } from "./token.ts";
import { planAfterSuccess, type ScheduleOptions } from "./schedule.ts";
import { isoTime } from "./time.ts";

/** Options of {@linkcode dryRun}. */
export interface DryRunOptions {
  /** The token source. */
  source: TokenSource;
  /** The Kubernetes client. */
  client: KubeClient;
  /** The Secret a run would write. */
  target: SecretTarget;
  /** The API server's URL, for the report. */
  server: string;
  /** The schedule a run would follow, to say when it would refresh next. */
  schedule: ScheduleOptions;
  /** Whether a run would watch the Secret (`secret.watch`). Default true. */
  watch?: boolean;
  /** Aborts the checks (shutdown). */
  signal?: AbortSignal;
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /**
   * The service-account token's part, run after the token request (which read or minted the
   * token it reports on); see federationDryRun.
   */
  federation?: () => Promise<{ lines: readonly string[]; problems: readonly string[] }>;
  /** With `leader.elect`: the Lease's part (permissions); see leaderDryRun. */
  leader?: () => Promise<{ lines: readonly string[]; problems: readonly string[] }>;
  /** The service account's `namespace` file, when `secret.namespace` was taken from it. */
  namespaceFile?: string;
}

/** What the token request gave. */
export type TokenCheck =
  | {
    readonly ok: true;
    /** Length of the token in characters; the token itself is never kept. */
    readonly length: number;
    /** Absolute expiry (ms since the epoch), if known. */
    readonly expiresAt?: number;
    /** Where the lifetime came from. */
    readonly lifetimeSource: "expires_in" | "jwt" | "unknown";
    /** When a run would refresh next (ms since the epoch). */
    readonly nextRefreshAt: number;
  }
  | { readonly ok: false; readonly error: string };

/** What the dry run found. */
export interface DryRunReport {
  /** The token request. */
  readonly token: TokenCheck;
  /** What the service-account token part found, one line each; never a token. */
  readonly federation?: readonly string[];
  /** What the leader election part found, one line each. */
  readonly leader?: readonly string[];
  /** The API server's URL. */
  readonly server: string;
  /** Where the Kubernetes credentials come from. */
  readonly credentials: string;
  /** The reviewed permissions, or why they could not be reviewed. */
  readonly permissions: readonly SecretPermission[] | { readonly error: string };
  /** Whether the Secret exists; `unknown` when it could not be read. */
  readonly secret: "exists" | "missing" | { readonly unknown: string };
  /**
   * Whether `secret.namespace` exists: known from the Secret itself, else by reading the
   * namespace, else by the run's apply, which the API server checks and discards; `unknown` says why neither
   * could be asked.
   */
  readonly namespace: "exists" | "missing" | { readonly unknown: string };
  /** The service account's `namespace` file, when `secret.namespace` was taken from it. */
  readonly namespaceFile?: string;
  /** What a run would do, when that can be told. */
  readonly action?: "create" | "update";
  /** The target. */
  readonly target: SecretTarget;
  /** Whether a run would watch the Secret (`secret.watch`). */
  readonly watch?: boolean;
  /** Problems that would make a run fail, one line each; empty when everything is in place. */
  readonly problems: readonly string[];
}

function message(error: unknown): string {
  return messageOf(error).replaceAll(/\s+/g, " ").trim();
}

/**
 * Checks everything a run needs, writing nothing.
 *
 * @param options Token source, Kubernetes client, target, schedule and clock.
 * @returns The findings; `problems` is empty when a run would succeed.
 *
 * @example
 * ```ts ignore
 * import { dryRun, formatDryRunReport } from "./dry_run.ts";
 * const report = await dryRun({ source, client, target, server, schedule });
 * console.log(formatDryRunReport(report));
 * ```
 */
export async function dryRun(options: DryRunOptions): Promise<DryRunReport> {
  const { client, target, signal } = options;
  const now = options.now ?? Date.now;
  const problems: string[] = [];

  let token: TokenCheck;
  try {
    const obtained = await options.source.fetchToken(signal);
    token = {
      ok: true,
      length: obtained.value.length,
      ...(obtained.expiresAt === undefined ? {} : { expiresAt: obtained.expiresAt }),
      lifetimeSource: obtained.lifetimeSource,
      nextRefreshAt: now() + planAfterSuccess(obtained, options.schedule).delayMs,
    };
  } catch (error) {
    token = { ok: false, error: message(error) };
    problems.push(`No token: ${token.error}`);
  }

  const federation = await options.federation?.();
  if (federation !== undefined) problems.push(...federation.problems);
  const leader = await options.leader?.();
  if (leader !== undefined) problems.push(...leader.problems);

  let permissions: SecretPermission[] | { error: string };
  try {
    permissions = await reviewSecretAccess(client, target, signal);
  } catch (error) {
    permissions = { error: message(error) };
    problems.push(`Permissions could not be reviewed: ${permissions.error}`);
  }
  const allowed = (verb: string) =>
    Array.isArray(permissions) &&
    permissions.some((p) => p.verb === verb && p.resource !== "events" && p.allowed);
  const watch = options.watch ?? true;

  let secret: DryRunReport["secret"];
  if (Array.isArray(permissions) && !allowed("get")) {
    secret = { unknown: "no permission to get it" };
  } else {
    try {
      // A read, which a dry run may do; its data is never shown.
      const existing = await client.getSecret(target.namespace, target.name, signal);
      secret = existing === null ? "missing" : "exists";
    } catch (error) {
      secret = { unknown: message(error) };
      if (Array.isArray(permissions)) {
        problems.push(`The Secret could not be read: ${secret.unknown}`);
      }
    }
  }
  // A Secret that exists has its namespace; otherwise a missing namespace and a missing Secret
  // read alike (404 on the Secret), and the first write would fail.
  const namespace = secret === "exists" ? "exists" : await checkNamespace(
    client,
    target,
    Array.isArray(permissions) && allowed("create") && allowed("patch"),
    signal,
  );
  if (namespace === "missing") {
    problems.push(
      `Namespace "${target.namespace}" does not exist: create it (kubectl create namespace ${target.namespace}), or set secret.namespace to the namespace the Secret belongs in`,
    );
  }
  const action = namespace === "missing"
    ? undefined
    : secret === "exists"
    ? "update"
    : secret === "missing"
    ? "create"
    : undefined;

  if (Array.isArray(permissions)) {
    for (const permission of permissions) {
      if (permission.allowed) continue;
      // Without the Secret, create is needed now; with it, only to recreate it after a deletion.
      if (permission.verb === "create" && secret === "exists") continue;
      // Without Events the refresher only logs; with secret.watch off it needs no list/watch.
      if (permission.resource === "events") continue;
      if ((permission.verb === "list" || permission.verb === "watch") && !watch) continue;
      problems.push(
        `Permission missing: ${describePermission(permission)}; grant it with a Role rule ${
          roleRuleFor(permission)
        }`,
      );
    }
  }
  return {
    token,
    ...(federation === undefined ? {} : { federation: federation.lines }),
    ...(leader === undefined ? {} : { leader: leader.lines }),
    server: options.server,
    credentials: client.description,
    permissions,
    secret,
    namespace,
    ...(options.namespaceFile === undefined ? {} : { namespaceFile: options.namespaceFile }),
    ...(action === undefined ? {} : { action }),
    target,
    watch,
    problems,
  };
}

/**
 * Whether the Secret's namespace exists, asked as politely as the identity allows: reading the
 * namespace (cluster-scoped, rarely granted), else the run's apply with `dryRun=All`, which the API
 * server authorizes and admits (NamespaceLifecycle refuses a missing namespace with 404) and then
 * discards. Without either permission it says which ones it lacks.
 */
async function checkNamespace(
  client: KubeClient,
  target: SecretTarget,
  mayCreate: boolean,
  signal: AbortSignal | undefined,
): Promise<DryRunReport["namespace"]> {
  const { namespace } = target;
  try {
    return (await client.namespaceExists(namespace, signal)) ? "exists" : "missing";
  } catch (error) {
    if (!(error instanceof KubeApiError && error.status === 403)) {
      return { unknown: message(error) };
    }
  }
  if (!mayCreate) {
    return {
      unknown:
        `cannot tell: the identity may neither get namespace "${namespace}" (a ClusterRole rule {apiGroups: [""], resources: ["namespaces"], resourceNames: ["${namespace}"], verbs: ["get"]}) nor patch and create secret "${target.name}" in it (dry-run apply)`,
    };
  }
  try {
    // Stored nowhere: the API server answers as for the apply a run sends (authorized as patch and,
    // the Secret being missing, as create with its name), then discards the object.
    await client.applySecret(
      namespace,
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: target.name, namespace, labels: { [MANAGED_LABEL]: "true" } },
      },
      signal,
      { dryRun: true },
    );
    return "exists";
  } catch (error) {
    if (error instanceof KubeApiError && error.status === 404) return "missing";
    // AlreadyExists: the Secret appeared since it was read, so its namespace is there.
    if (error instanceof KubeApiError && error.status === 409) return "exists";
    return { unknown: message(error) };
  }
}

function describePermission(p: SecretPermission): string {
  if (p.resource === "events") return `${p.verb} events in namespace "${p.namespace}"`;
  return p.name === undefined
    ? `${p.verb} secrets in namespace "${p.namespace}"`
    : `${p.verb} secret "${p.name}" in namespace "${p.namespace}"`;
}

function describeIn(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/**
 * Renders a dry-run report as plain lines for people: the token (length only), the API server,
 * each permission, the Secret, what a run would do, and a last line `Result: ...`.
 *
 * @param report The findings.
 * @param now The current time, ms since the epoch, for "in N s". Default `Date.now()`.
 * @returns The text, ending in a newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDryRunReport } from "./dry_run.ts";
 *
 * const text = formatDryRunReport({
 *   token: { ok: false, error: "Token endpoint could not be reached" },
 *   server: "https://10.0.0.1:443",
 *   credentials: "service account",
 *   permissions: { error: "unreachable" },
 *   secret: { unknown: "unreachable" },
 *   namespace: { unknown: "unreachable" },
 *   target: { namespace: "ns", name: "tok", key: "token" },
 *   problems: ["No token: Token endpoint could not be reached"],
 * });
 * assert.match(text, /^Result: FAILED/m);
 * ```
 */
export function formatDryRunReport(report: DryRunReport, now: number = Date.now()): string {
  const { target } = report;
  const where = `Secret "${target.name}" in namespace "${target.namespace}"`;
  const lines = ["Dry run: nothing is written."];
  const { token } = report;
  if (token.ok) {
    const expiry = token.expiresAt === undefined
      ? "expiry unknown (no expires_in, not a JWT with exp)"
      : `expires ${isoTime(token.expiresAt)} (in ${describeIn(token.expiresAt - now)}, from ${
        token.lifetimeSource === "jwt" ? "the JWT exp claim" : "expires_in"
      })`;
    lines.push(`Token: obtained, ${token.length} characters (not shown), ${expiry}`);
  } else {
    lines.push(`Token: FAILED: ${token.error}`);
  }
  lines.push(...report.federation ?? []);
  lines.push(`Kubernetes: ${report.server} (${report.credentials})`);
  if (Array.isArray(report.permissions)) {
    const permissions = report.permissions as readonly SecretPermission[];
    for (const p of permissions) {
      const object = p.resource === "events"
        ? "events"
        : p.name === undefined
        ? "secrets"
        : `secret "${p.name}"`;
      const note = !p.allowed && p.verb === "create" && p.resource !== "events" &&
          report.secret === "exists"
        ? " (needed only to create the Secret again if it is deleted)"
        : "";
      lines.push(
        `Permission ${p.verb} ${object} in namespace "${p.namespace}": ${
          p.allowed ? "allowed" : "MISSING"
        }${note}`,
      );
    }
    const has = (verb: string, resource = "secrets") =>
      permissions.some((p) =>
        p.verb === verb && (p.resource ?? "secrets") === resource && p.allowed
      );
    if (report.watch === false) {
      lines.push("Watch: off (secret.watch is false): drift is repaired at the next refresh only");
    } else {
      lines.push(
        has("list") && has("watch")
          ? "Watch: permitted: a deleted or overwritten Secret is written back within a second"
          : "Watch: NOT permitted (list and watch on the Secret): grant them, or set secret.watch to false",
      );
    }
    lines.push(
      has("create", "events") && has("patch", "events")
        ? "Events: permitted (events.k8s.io create and patch)"
        : "Events: NOT permitted (events.k8s.io create and patch): a run only logs what happens",
    );
  } else {
    lines.push(`Permissions: FAILED: ${(report.permissions as { error: string }).error}`);
  }
  lines.push(...report.leader ?? []);
  const from = report.namespaceFile === undefined
    ? ""
    : ` (the pod's own, from ${report.namespaceFile}; set secret.namespace to write elsewhere)`;
  if (report.namespace === "exists" || report.namespace === "missing") {
    lines.push(
      `Namespace "${target.namespace}"${from}: ${
        report.namespace === "exists" ? "exists" : "DOES NOT EXIST"
      }`,
    );
  } else {
    lines.push(`Namespace "${target.namespace}"${from}: unknown, ${report.namespace.unknown}`);
  }
  if (report.secret === "exists" || report.secret === "missing") {
    lines.push(`${where}: ${report.secret === "exists" ? "exists" : "does not exist"}`);
  } else {
    lines.push(`${where}: unknown, ${report.secret.unknown}`);
  }
  if (report.action === "create") {
    lines.push(
      `Would: create ${where} with one server-side apply (type Opaque, label ${MANAGED_LABEL}: "true", the ktr.appuio.ch annotations) with the token under key "${target.key}"`,
    );
  } else if (report.action === "update") {
    lines.push(
      `Would: set key "${target.key}" of ${where}, label ${MANAGED_LABEL}: "true" and the ktr.appuio.ch annotations with one server-side apply, keeping its other keys, labels and annotations`,
    );
  }
  if (token.ok && report.action !== undefined) {
    lines.push(
      `Would: refresh again at ${isoTime(token.nextRefreshAt)} (in ${
        describeIn(token.nextRefreshAt - now)
      })`,
    );
  }
  for (const problem of report.problems) lines.push(`Problem: ${problem}`);
  lines.push(
    report.problems.length === 0
      ? "Result: OK, a run would succeed"
      : `Result: FAILED, ${report.problems.length} problem${
        report.problems.length === 1 ? "" : "s"
      } above`,
  );
  return `${lines.join("\n")}\n`;
}
