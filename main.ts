/**
 * kube-token-refresher: keeps a client-credentials access token fresh in a Kubernetes Secret.
 *
 * The entrypoint only wires things together: command line -> config -> token source and
 * Kubernetes client -> refresh loop, with signals for shutdown and errors mapped to exit codes.
 * `main()` takes everything it needs from the world through one runtime object (clock, fetch,
 * file reads, stdout/stderr, signals, environment), so tests run it in-process; only the lines
 * under `import.meta.main` touch the real process.
 *
 * @module
 */
import { parseCommandLine } from "./src/cli.ts";
import { ConfigError, envWarnings, probedEnvNames } from "./src/config/mod.ts";
import { messageOf } from "./src/errors.ts";
import { PROXY_VARIABLES } from "./src/http.ts";
import { configureLogging, getLogger, LOG_CATEGORY, streamSink, writeAllSync } from "./src/log.ts";
import { tokenSourceFromConfig } from "./src/oidc/mod.ts";
import { KubeClient } from "./src/kube/client.ts";
import { connect, KubeCredentialsError } from "./src/kube/connect.ts";
import { SecretWriter } from "./src/kube/secret.ts";
import { refreshedFields, refreshOnce } from "./src/refresh.ts";
import { keepSecret } from "./src/keep.ts";
import { EventRecorder } from "./src/kube/events.ts";
import { VERSION } from "./src/cli.ts";
import {
  createHealthHandler,
  type HealthServer,
  HealthServerError,
  startHealthServer,
} from "./src/server.ts";
import { RefreshStatus } from "./src/status.ts";
import { processRuntime, type Runtime } from "./src/runtime.ts";
import { collectPeriodically } from "./src/memory.ts";
import type { ClusterIdentity } from "./src/oidc/federation.ts";
import { TokenError } from "./src/oidc/error.ts";

/** Exit codes of the process. */
export const ExitCode = {
  /**
   * Stopped by SIGTERM or SIGINT, or `--help` / `--version`; `--once`: the refresh succeeded;
   * `--dry-run`: a run would succeed.
   */
  OK: 0,
  /** A fatal runtime error; `--once`: the refresh failed; `--dry-run`: a run would fail. */
  RUNTIME: 1,
  /**
   * The configuration is invalid, or `http.address` cannot be listened on; nothing was sent
   * anywhere.
   */
  CONFIG: 2,
  /** Kubernetes credentials could not be found or read at start-up. */
  CREDENTIALS: 3,
} as const;

/**
 * Environment variables the tool reads besides its own `KTR_*` ones: where the cluster is, the
 * pod's name (the Events' reporting instance), and the proxy variables (fetch obeys them on its
 * own; they are read to blame a dead proxy, not the endpoint behind it).
 */
const KUBE_ENV = [
  "KUBERNETES_SERVICE_HOST",
  "KUBERNETES_SERVICE_PORT",
  "KUBECONFIG",
  "HOME",
  // The pod's name, for the Events' reportingInstance: downward API, else the hostname.
  "POD_NAME",
  "HOSTNAME",
  ...PROXY_VARIABLES,
];

/** Whether the process may read the variable (or the whole environment), asked without a prompt. */
function envGranted(variable?: string): boolean {
  const query: Deno.PermissionDescriptor = variable === undefined
    ? { name: "env" }
    : { name: "env", variable };
  return Deno.permissions.querySync(query).state === "granted";
}

/**
 * Names of the `KTR_*` variables to read. With least privilege the process may read variables
 * only by name (`--allow-env=KTR_*` allows no listing), so besides the real names it probes the
 * likely misspellings of every key ({@linkcode probedEnvNames}); found ones are warned about.
 */
function ktrVariableNames(): string[] {
  // Asked without prompting: a terminal run under a narrow permission set must not stop to ask.
  if (envGranted()) {
    return Object.keys(Deno.env.toObject()).filter((name) => name.startsWith("KTR_"));
  }
  return probedEnvNames();
}

/**
 * Reads the environment the tool uses, by name, so a narrow `--allow-env` list suffices.
 * Variables the process may not read are returned as `unreadable`, so an error can say
 * "not permitted" rather than "unset".
 */
function readEnvironment(): { env: Record<string, string>; unreadable: string[] } {
  const env: Record<string, string> = {};
  const unreadable: string[] = [];
  for (const name of [...ktrVariableNames(), ...KUBE_ENV]) {
    if (!envGranted(name)) {
      unreadable.push(name);
      continue;
    }
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { env, unreadable };
}

/**
 * Runs the refresher until SIGTERM or SIGINT.
 *
 * @param args Command-line arguments (without the program name).
 * @param runtime Clock, fetch, file reads, output streams, signals and the environment (only
 *   `KTR_*` and the Kubernetes variables matter).
 * @returns The exit code.
 */
export async function main(args: string[], runtime: Runtime): Promise<number> {
  const { env, clock } = runtime;
  let parsed;
  try {
    parsed = await parseCommandLine(args, env, { readTextFile: runtime.readTextFile });
  } catch (err) {
    if (err instanceof ConfigError) {
      const problems = [err, ...err.others].map((e) => `Error: ${e.message}\n`).join("");
      // A misspelt variable is a likely cause of a missing key, so say so next to the error.
      const hints = envWarnings(env).map((w) => `Warning: ${w}\n`).join("");
      writeAllSync(runtime.stderr, problems + hints);
      return ExitCode.CONFIG;
    }
    throw err;
  }
  if (parsed.kind !== "run") {
    writeAllSync(runtime.stdout, parsed.text.endsWith("\n") ? parsed.text : `${parsed.text}\n`);
    return ExitCode.OK;
  }
  const { config } = parsed;
  // The service-account token's audience is checked before anything is sent anywhere.
  let identity: ClusterIdentity | undefined;
  // Modules a run needs only with some settings are loaded when one asks for them: every module
  // loaded is resident memory for the life of the process.
  const federation = config.oidc.federation === undefined
    ? undefined
    : { settings: config.oidc.federation, ...await import("./src/oidc/federation.ts") };
  if (federation !== undefined) {
    try {
      identity = await federation.readClusterIdentity(config.kube.serviceAccountDir, {
        readTextFile: runtime.readTextFile,
      });
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      writeAllSync(runtime.stderr, `Error: ${err.message}\n`);
      return ExitCode.CREDENTIALS;
    }
    const problem = federation.checkFederationAtStart(federation.settings, identity);
    if (problem !== undefined) {
      writeAllSync(runtime.stderr, `Error: ${problem.message}\n`);
      return ExitCode.CONFIG;
    }
  }
  configureLogging({
    level: config.log.level,
    format: config.log.format,
    sink: streamSink(config.log.format, runtime.stderr),
  });
  const log = getLogger([LOG_CATEGORY]);
  for (const warning of parsed.warnings) log.warn(warning);

  const shutdown = new AbortController();
  using _listening = runtime.signals.listen(() => {
    if (!shutdown.signal.aborted) log.info("Shutting down");
    shutdown.abort();
  });
  // --once and --dry-run end on their own; only the long-running refresher serves probes, and
  // only what is served needs keeping.
  const serve = !config.once && !config.dryRun && config.http.address !== "off";
  // The status reads the loop's clock: both come from the runtime, so they cannot disagree.
  const status = serve ? new RefreshStatus({ version: VERSION, clock }) : undefined;
  // With targets, readiness and metrics also cover every Secret.
  const targeting = config.targets === undefined ? undefined : {
    ...await import("./src/targets/run.ts"),
    ...await import("./src/targets/status.ts"),
  };
  const targetsHealth = status !== undefined && targeting !== undefined
    ? new targeting.TargetsHealth({ token: status, clock })
    : undefined;
  const stopBackground = new AbortController();
  // A process that runs for weeks keeps its heap flat with a full collection a minute, until
  // main() returns.
  if (!config.once && !config.dryRun) {
    collectPeriodically(runtime.collectGarbage, stopBackground.signal);
  }
  let server: HealthServer | undefined;
  try {
    if (status !== undefined) {
      try {
        server = startHealthServer({
          address: config.http.address,
          handler: createHealthHandler(targetsHealth ?? status),
          signal: stopBackground.signal,
        });
      } catch (err) {
        if (err instanceof HealthServerError) {
          log.error("{error}", { error: err.message });
          return ExitCode.CONFIG;
        }
        throw err;
      }
      const { hostname, port } = server.addr;
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      if (server.ipv4Only !== undefined) {
        log.info("IPv6 is not available here ({reason}): serving on IPv4 only", {
          reason: server.ipv4Only,
        });
      }
      log.info("Serving /healthz, /readyz and /metrics", { address: `http://${host}:${port}` });
    }
    let connection;
    try {
      connection = await connect(env, {
        serviceAccountDir: config.kube.serviceAccountDir,
        readTextFile: runtime.readTextFile,
        unreadable: runtime.unreadable,
      });
    } catch (err) {
      if (err instanceof KubeCredentialsError) {
        log.error("Kubernetes credentials unusable: {error}", { error: err.message });
        return ExitCode.CREDENTIALS;
      }
      throw err;
    }
    try {
      const target = config.secret;
      const client = new KubeClient(connection, { fetch: runtime.fetch, proxyEnv: env });
      const serviceAccountToken = federation === undefined
        ? undefined
        : federation.createServiceAccountTokenSource({
          federation: federation.settings,
          identity,
          client,
          readTextFile: runtime.readTextFile,
          now: () => clock.now(),
        });
      const source = tokenSourceFromConfig(config.oidc, {
        fetch: runtime.fetch,
        now: () => clock.now(),
        readTextFile: runtime.readTextFile,
        serviceAccountToken,
        proxyEnv: env,
      });
      const schedule = {
        intervalMs: config.interval * 1000,
        renewFraction: config.renew.percent / 100,
      };
      /**
       * Runs the long-running work: at once, or with leader.elect only while this replica leads,
       * with a client that stops at the renew deadline. A failure code ends the run.
       */
      const whileLeading = async (
        events: EventRecorder,
        work: (kube: KubeClient, signal: AbortSignal, refreshedBy?: string) => Promise<number>,
      ): Promise<number> => {
        if (!config.leader.elect) return await work(client, shutdown.signal);
        const { electionIdentity, leaseOf, runElected } = await import("./src/leader.ts");
        let lease;
        try {
          lease = await leaseOf(config, runtime.readTextFile);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          log.error("{error}", { error: err.message });
          return ExitCode.CONFIG;
        }
        const identity = electionIdentity(env);
        const { leader } = config;
        let code: number = ExitCode.OK;
        await runElected({
          connection,
          client,
          fetch: runtime.fetch,
          proxyEnv: env,
          lease,
          identity,
          timings: {
            durationMs: leader.duration * 1000,
            renewDeadlineMs: leader.renewDeadline * 1000,
            retryPeriodMs: leader.retryPeriod * 1000,
          },
          signal: shutdown.signal,
          clock,
          status,
          events,
        }, async (leaderClient, term) => {
          code = await work(leaderClient, term.signal, identity);
          // A failure the work could not get past ends the run, as without election.
          if (code !== ExitCode.OK && !term.signal.aborted) shutdown.abort();
        });
        return code;
      };
      if (config.targets !== undefined && targeting !== undefined) {
        log.info(
          config.dryRun ? "Starting dry run" : config.once ? "Refreshing once" : "Starting",
          {
            targets: config.targets.length,
            tokenUrl: config.oidc.tokenUrl,
            issuer: config.oidc.issuer,
            kubernetes: connection.description,
            grant: config.oidc.grant,
            authMethod: config.oidc.authMethod,
          },
        );
        const mode = config.dryRun ? "dry-run" : config.once ? "once" : "keep";
        const targets = config.targets;
        const run = (
          kube: KubeClient,
          signal: AbortSignal,
          events?: EventRecorder,
          refreshedBy?: string,
        ) =>
          targeting.runTargets({
            client: kube,
            source,
            targets,
            schedule,
            watch: config.secret.watch,
            mode,
            signal,
            clock,
            ...(status === undefined ? {} : { observer: status }),
            ...(targetsHealth === undefined ? {} : { health: targetsHealth }),
            ...(events === undefined ? {} : { events }),
            ...(refreshedBy === undefined ? {} : { refreshedBy }),
            print: (text) => writeAllSync(runtime.stdout, text),
          });
        if (mode !== "keep") {
          const code = await run(client, shutdown.signal);
          return shutdown.signal.aborted ? ExitCode.OK : code;
        }
        const events = await eventRecorder(client, undefined, env, shutdown.signal);
        const code = await whileLeading(
          events,
          (kube, signal, refreshedBy) => run(kube, signal, events, refreshedBy),
        );
        // runTargets answers 0 when stopped by SIGTERM or SIGINT.
        return code;
      }
      log.info(config.dryRun ? "Starting dry run" : config.once ? "Refreshing once" : "Starting", {
        secret: target.name,
        namespace: target.namespace,
        // In a pod without secret.namespace: the pod's own namespace, and the file it came from.
        ...(parsed.namespaceFile === undefined ? {} : { namespaceFrom: parsed.namespaceFile }),
        key: target.key,
        tokenUrl: config.oidc.tokenUrl,
        issuer: config.oidc.issuer,
        kubernetes: connection.description,
        grant: config.oidc.grant,
        authMethod: config.oidc.authMethod,
        serviceAccountToken: serviceAccountToken?.description,
      });
      if (config.dryRun) {
        const { dryRun, formatDryRunReport } = await import("./src/dry_run.ts");
        const report = await dryRun({
          source,
          client,
          target,
          server: connection.server.origin,
          schedule,
          watch: config.secret.watch,
          signal: shutdown.signal,
          now: () => clock.now(),
          federation: serviceAccountToken === undefined || federation === undefined
            ? undefined
            : () =>
              federation.federationDryRun(serviceAccountToken, {
                client,
                identity,
                signal: shutdown.signal,
              }),
          namespaceFile: parsed.namespaceFile,
          ...(config.leader.elect
            ? {
              leader: async () => {
                const { leaderDryRun, leaseOf } = await import("./src/leader.ts");
                const lease = await leaseOf(config, runtime.readTextFile);
                return leaderDryRun(client, lease, shutdown.signal);
              },
            }
            : {}),
        });
        // Stopped by SIGTERM or SIGINT: a clean stop, as in the other modes; a report of the
        // aborted checks would only read as a failed one.
        if (shutdown.signal.aborted) return ExitCode.OK;
        writeAllSync(runtime.stdout, formatDryRunReport(report, clock.now()));
        return report.problems.length === 0 ? ExitCode.OK : ExitCode.RUNTIME;
      }
      if (config.once) {
        const writer = new SecretWriter(client, target);
        return await refreshOneTime(source, writer, target, shutdown.signal);
      }
      const events = await eventRecorder(client, target.namespace, env, shutdown.signal);
      return await whileLeading(events, async (kube, signal, refreshedBy) => {
        await keepSecret({
          client: kube,
          source,
          target,
          schedule,
          signal,
          watch: config.secret.watch,
          events,
          clock,
          observer: status,
          ...(refreshedBy === undefined ? {} : { refreshedBy }),
        });
        return ExitCode.OK;
      });
    } finally {
      connection.close();
    }
  } catch (err) {
    log.fatal("Fatal error: {error}", { error: messageOf(err) });
    return ExitCode.RUNTIME;
  } finally {
    stopBackground.abort();
    await server?.finished;
  }
}

/**
 * The Event recorder, off with one warning when an access review says Events may not be created
 * (the refresher then only logs). The pod name (`POD_NAME`, else `HOSTNAME`) is the reporting
 * instance.
 */
async function eventRecorder(
  client: KubeClient,
  namespace: string | undefined,
  env: Record<string, string>,
  signal: AbortSignal,
): Promise<EventRecorder> {
  const events = new EventRecorder({
    client,
    instance: env.POD_NAME || env.HOSTNAME || "kube-token-refresher",
  });
  // With targets the Events go to many namespaces: a 403 on the first write turns them off.
  if (namespace === undefined) return events;
  try {
    const review = await client.reviewAccess({
      namespace,
      verb: "create",
      resource: "events",
      group: "events.k8s.io",
    }, signal);
    if (!review.allowed) {
      events.disable(
        `the identity in use may not create events in namespace "${namespace}" (grant events create and patch in the events.k8s.io group)`,
      );
    }
  } catch {
    // The review itself failed (unreachable, ...): try the Events; a 403 turns them off then.
  }
  return events;
}

/** `--once`: one refresh, no retry (a CronJob or init container retries in its own way). */
async function refreshOneTime(
  source: Parameters<typeof refreshOnce>[0],
  writer: SecretWriter,
  target: { name: string; namespace: string; key: string },
  signal: AbortSignal,
): Promise<number> {
  const log = getLogger([LOG_CATEGORY]);
  try {
    log.info("Token refreshed", refreshedFields(target, await refreshOnce(source, writer, signal)));
    return ExitCode.OK;
  } catch (err) {
    // Stopped by SIGTERM or SIGINT: a clean stop, as in the long-running mode.
    if (signal.aborted) return ExitCode.OK;
    log.error("Refresh failed: {error}", {
      error: messageOf(err),
      secret: target.name,
      namespace: target.namespace,
    });
    return ExitCode.RUNTIME;
  }
}

if (import.meta.main) {
  const { env, unreadable } = readEnvironment();
  Deno.exit(await main(Deno.args, processRuntime(env, unreadable)));
}
