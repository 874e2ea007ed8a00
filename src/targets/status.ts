/**
 * Health and metrics with targets: the token's own status (one refresh per cycle), plus the
 * state of every Secret, so `/readyz` can name the Secrets that do not hold a valid token and
 * `/metrics` carries `namespace` and `secret` labels where a figure is per Secret.
 *
 * @module
 */
import { escapeHelp, formatValue, renderLabels } from "../metrics.ts";
import { messageOf } from "../errors.ts";
import type { CheckResult, HealthSource } from "../status.ts";
import type { Clock } from "../token.ts";
import type { TargetKeeper, TargetSecret } from "./keeper.ts";

/** How many failing Secrets `/readyz` names before it only counts the rest. */
const NAMED_IN_READINESS = 20;

/**
 * Whether one Secret holds a valid token now: written (or adopted) with the token in hand, not
 * blocked, not failing, and that token not expired.
 *
 * @param secret The Secret's state.
 * @param keeper The keeper (for the token in hand).
 * @param now Now, ms.
 * @returns Undefined when fine, else why not.
 */
export function secretProblem(
  secret: TargetSecret,
  keeper: TargetKeeper,
  now: number,
): string | undefined {
  if (secret.blocked?.kind === "contested") {
    return `selected by targets[${secret.target.index}] and targets[${secret.blocked.other}]`;
  }
  if (secret.blocked?.kind === "type") return `exists with type ${secret.blocked.found}`;
  if (secret.failures > 0) return messageOf(secret.lastError).slice(0, 200);
  if (secret.lastSuccessAt === undefined) return "not written yet";
  const expiresAt = keeper.token?.expiresAt;
  if (expiresAt !== undefined && now >= expiresAt) return "token expired";
  return undefined;
}

/** Options of {@linkcode TargetsHealth}. */
export interface TargetsHealthOptions {
  /** The token-level status (a `RefreshStatus` fed by the keeper's observer). */
  token: HealthSource;
  /** The keeper; set once it exists. */
  keeper?: TargetKeeper;
  /** The clock. */
  clock: Pick<Clock, "now">;
}

/**
 * `/healthz`, `/readyz` and `/metrics` with targets. Ready while the token is good and every
 * Secret holds it; otherwise the reason lists the Secrets that do not (`namespace/name: why`).
 *
 * Metrics per Secret (one series per selected namespace and target name, so the cardinality is
 * the number of Secrets kept): `ktr_target_last_success_timestamp_seconds`,
 * `ktr_target_write_failures_total`; plus `ktr_targets` by state (ok, failing, blocked).
 */
export class TargetsHealth implements HealthSource {
  #o: TargetsHealthOptions;

  /**
   * @param options The token status, the keeper and the clock.
   */
  constructor(options: TargetsHealthOptions) {
    this.#o = options;
  }

  /**
   * Hands over the keeper once it is built.
   *
   * @param keeper The keeper.
   */
  attach(keeper: TargetKeeper): void {
    this.#o.keeper = keeper;
  }

  /** @returns The token loop's liveness. */
  liveness(): CheckResult {
    return this.#o.token.liveness();
  }

  /** @returns Ready, or the Secrets that do not hold a valid token. */
  readiness(): CheckResult {
    const token = this.#o.token.readiness();
    // A note (a replica standing by, with leader election) answers for the whole replica.
    if (!token.ok || token.note !== undefined) return token;
    const keeper = this.#o.keeper;
    if (keeper === undefined) return { ok: false, reason: "Targets not resolved yet" };
    const now = this.#o.clock.now();
    const bad: string[] = [];
    let total = 0;
    for (const secret of keeper.secrets) {
      total++;
      const problem = secretProblem(secret, keeper, now);
      if (problem !== undefined) bad.push(`${secret.id}: ${problem}`);
    }
    if (bad.length === 0) return { ok: true };
    const named = bad.slice(0, NAMED_IN_READINESS).join("; ");
    const more = bad.length > NAMED_IN_READINESS
      ? `; and ${bad.length - NAMED_IN_READINESS} more`
      : "";
    return {
      ok: false,
      reason: `${bad.length} of ${total} Secrets do not hold a valid token: ${named}${more}`,
    };
  }

  /** @returns The token's metrics and the per-Secret ones. */
  metrics(): string {
    const keeper = this.#o.keeper;
    let text = this.#o.token.metrics();
    if (keeper === undefined) return text;
    const now = this.#o.clock.now();
    const counts = { ok: 0, failing: 0, blocked: 0 };
    let success = "";
    let failures = "";
    for (const secret of keeper.secrets) {
      const labels = renderLabels({ namespace: secret.namespace, secret: secret.target.name });
      if (secret.lastSuccessAt !== undefined) {
        success += `ktr_target_last_success_timestamp_seconds${labels} ${
          formatValue(secret.lastSuccessAt / 1000)
        }\n`;
      }
      failures += `ktr_target_write_failures_total${labels} ${secret.failuresTotal}\n`;
      const problem = secretProblem(secret, keeper, now);
      counts[secret.blocked !== undefined ? "blocked" : problem === undefined ? "ok" : "failing"]++;
    }
    const family = (name: string, type: string, help: string, samples: string) =>
      `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n${samples}`;
    text += family(
      "ktr_target_last_success_timestamp_seconds",
      "gauge",
      "When the Secret last received the current token, per namespace and Secret.",
      success,
    );
    text += family(
      "ktr_target_write_failures_total",
      "counter",
      "Failed writes of the Secret, per namespace and Secret.",
      failures,
    );
    text += family(
      "ktr_targets",
      "gauge",
      "Secrets kept, by state: ok, failing (last write failed or not written yet), blocked (another type, or two targets select it).",
      Object.entries(counts).map(([state, n]) => `ktr_targets{state="${state}"} ${n}\n`).join(""),
    );
    return text;
  }
}
