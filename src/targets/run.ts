/**
 * The three modes with targets: keep (long-running), `--once` and `--dry-run`. `main()` calls
 * {@linkcode runTargets} instead of the single-Secret path when the config file has `targets`.
 *
 * @module
 */
import { messageOf } from "../errors.ts";
import { getLogger, LOG_CATEGORY } from "../log.ts";
import type { KubeClient } from "../kube/client.ts";
import type { EventRecorder } from "../kube/events.ts";
import { sha256Hex } from "../kube/state.ts";
import type { RefreshObserver } from "../refresh.ts";
import type { ScheduleOptions } from "../schedule.ts";
import type { Clock, TokenSource } from "../token.ts";
import type { TargetSpec } from "./config.ts";
import { TargetKeeper } from "./keeper.ts";
import { renderData, targetApplyBody } from "./render.ts";
import { matchesLabels } from "./select.ts";
import type { TargetsHealth } from "./status.ts";

/** Options of {@linkcode runTargets}. */
export interface RunTargetsOptions {
  /** The Kubernetes client. */
  client: KubeClient;
  /** The token source. */
  source: TokenSource;
  /** The targets. */
  targets: readonly TargetSpec[];
  /** Schedule knobs. */
  schedule: ScheduleOptions;
  /** `secret.watch`. */
  watch: boolean;
  /** Which mode. */
  mode: "keep" | "once" | "dry-run";
  /** Shutdown. */
  signal: AbortSignal;
  /** The clock. */
  clock: Clock;
  /** Events; optional. */
  events?: EventRecorder;
  /** Token-level observer (the `RefreshStatus`). */
  observer?: RefreshObserver;
  /** Health with targets, to attach the keeper to. */
  health?: TargetsHealth;
  /** Writes the dry run's report. */
  print(text: string): void;
  /** The writer's identity for `refreshed-by` (leader election). */
  refreshedBy?: string;
  /** How many Secrets the dry run checks with a server-side dry-run apply. Default 5. */
  sample?: number;
}

/**
 * Runs the targets in the given mode.
 *
 * @param options Client, source, targets, mode and the rest.
 * @returns The exit code: 0 fine, 1 a refresh or a check failed.
 */
export async function runTargets(options: RunTargetsOptions): Promise<number> {
  const log = getLogger([LOG_CATEGORY, "targets"]);
  if (options.mode === "dry-run") return await dryRunTargets(options);
  const keeper = new TargetKeeper({
    client: options.client,
    source: options.source,
    targets: options.targets,
    schedule: options.schedule,
    watch: options.mode === "keep" && options.watch,
    once: options.mode === "once",
    clock: options.clock,
    ...(options.events === undefined ? {} : { events: options.events }),
    ...(options.observer === undefined ? {} : { observer: options.observer }),
    ...(options.refreshedBy === undefined ? {} : { refreshedBy: options.refreshedBy }),
  });
  options.health?.attach(keeper);
  try {
    await keeper.run(options.signal);
  } catch (err) {
    if (options.signal.aborted) return 0;
    log.error("Refresh failed: {error}", { error: messageOf(err) });
    return 1;
  }
  if (options.mode === "once" && !options.signal.aborted) {
    const failed = [...keeper.secrets].filter((s) =>
      s.failures > 0 || s.blocked !== undefined || s.lastSuccessAt === undefined
    );
    log.info("Token refreshed into {written} of {total} Secrets", {
      written: [...keeper.secrets].length - failed.length,
      total: [...keeper.secrets].length,
    });
    for (const s of failed.slice(0, 20)) {
      log.error("Secret {secret} in namespace {namespace} was not written: {error}", {
        secret: s.target.name,
        namespace: s.namespace,
        error: s.blocked !== undefined ? `blocked (${s.blocked.kind})` : messageOf(s.lastError),
      });
    }
    return failed.length === 0 ? 0 : 1;
  }
  return 0;
}

/**
 * `--dry-run` with targets: obtains a token, resolves the namespaces every target would write,
 * checks a sample of the Secrets with a server-side dry-run apply (authorization, admission,
 * the namespace: the same request a run sends, nothing stored) and reports the totals.
 */
async function dryRunTargets(options: RunTargetsOptions): Promise<number> {
  const { client, targets, signal } = options;
  const lines: string[] = ["Dry run with targets: nothing is written."];
  const problems: string[] = [];
  let token;
  try {
    token = await options.source.fetchToken(signal);
    lines.push("Token request: ok");
  } catch (err) {
    problems.push(`Token request failed: ${messageOf(err)}`);
  }
  const dynamic = targets.some((t) => t.selection.kind !== "namespace");
  let namespaces: { name: string; labels: Record<string, string>; terminating: boolean }[] = [];
  if (dynamic) {
    try {
      const list = await client.listNamespaces(signal);
      namespaces = list.items.map((n) => ({
        name: n.metadata.name,
        labels: n.metadata.labels ?? {},
        terminating: n.status?.phase === "Terminating" ||
          n.metadata.deletionTimestamp !== undefined,
      }));
      lines.push(`Namespaces: list permitted (${namespaces.length} namespaces)`);
    } catch (err) {
      problems.push(
        `Namespaces cannot be listed (${
          messageOf(err)
        }); grant "list" and "watch" on namespaces in a ClusterRole`,
      );
    }
  }
  const pairs: { target: TargetSpec; namespace: string }[] = [];
  for (const target of targets) {
    let selected: string[];
    if (target.selection.kind === "namespace") selected = [target.selection.namespace];
    else {
      const selection = target.selection;
      selected = namespaces.filter((n) =>
        !n.terminating && target.matchesName(n.name) && !target.excluded(n.name) &&
        (selection.kind !== "selector" || matchesLabels(selection.requirements, n.labels))
      ).map((n) => n.name);
    }
    lines.push(
      `targets[${target.index}] Secret "${target.name}" (${target.type}): ${selected.length} namespaces${
        selected.length > 0
          ? ` (${selected.slice(0, 10).join(", ")}${selected.length > 10 ? ", ..." : ""})`
          : ""
      }`,
    );
    for (const namespace of selected) pairs.push({ target, namespace });
  }
  const seen = new Map<string, number>();
  for (const { target, namespace } of pairs) {
    const id = `${namespace}/${target.name}`;
    if (seen.has(id)) {
      problems.push(
        `Secret "${target.name}" in namespace "${namespace}" is selected by targets[${
          seen.get(id)
        }] and targets[${target.index}]; a run would write it with neither`,
      );
    } else seen.set(id, target.index);
  }
  const sample = pairs.slice(0, options.sample ?? 5);
  if (token !== undefined) {
    const sha = await sha256Hex(token.value);
    let ok = 0;
    for (const { target, namespace } of sample) {
      try {
        await client.applySecret(
          namespace,
          targetApplyBody(target, namespace, renderData(target, token), {
            token,
            tokenSha256: sha,
            owned: false,
          }),
          signal,
          { dryRun: true },
        );
        ok++;
      } catch (err) {
        problems.push(
          `Secret "${target.name}" in namespace "${namespace}" could not be written: ${
            messageOf(err)
          }`,
        );
      }
    }
    lines.push(`Permissions: ${ok} of ${sample.length} sampled Secrets could be written`);
  }
  lines.push(`Totals: ${targets.length} targets, ${pairs.length} Secrets`);
  if (problems.length > 0) lines.push("Problems:", ...problems.map((p) => `  - ${p}`));
  lines.push(problems.length === 0 ? "A run would succeed." : "A run would fail.");
  options.print(lines.join("\n") + "\n");
  return problems.length === 0 ? 0 : 1;
}
