/**
 * The rule among the three durations of leader election, client-go's own:
 * `leader.duration` > `leader.renewdeadline` > `leader.retryperiod` × 1.2. A leader stops writing
 * `renewdeadline` after its last renewal, and another replica takes over only `duration` after
 * it saw the Lease change: the gap between the two is what keeps two leaders from writing at
 * once. The renew deadline must leave room for more than one try at the jittered retry period.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import type { Setting } from "./rules.ts";
import { describeSource } from "./values.ts";

/** client-go's jitter factor, which the renew deadline must exceed in retry periods. */
export const RETRY_JITTER_FACTOR = 1.2;

/**
 * Checks the durations of leader election against each other.
 *
 * @param settings The valid values by key.
 * @param filePath The `--config` file, for messages.
 * @returns One error per broken rule, on the key the rule bounds from above.
 *
 * @example
 * ```ts ignore
 * import { checkLeaderTimings } from "./leader.ts";
 * const errors = checkLeaderTimings(settings, undefined);
 * ```
 */
export function checkLeaderTimings(
  settings: ReadonlyMap<string, Setting>,
  filePath: string | undefined,
): ConfigError[] {
  const duration = settings.get("leader.duration");
  const deadline = settings.get("leader.renewdeadline");
  const retry = settings.get("leader.retryperiod");
  const describe = (s: Setting) =>
    `${s.definition.key} ${s.value} from ${describeSource(s.source, s.definition, filePath)}`;
  const errors: ConfigError[] = [];
  if (duration !== undefined && deadline !== undefined && !(duration.value > deadline.value)) {
    errors.push(
      new ConfigError(
        `Key ${describe(duration)} must be more than ${
          describe(deadline)
        } (rule: leader.duration > leader.renewdeadline, so that a leader that cannot renew has stopped writing before another takes over): raise leader.duration or lower leader.renewdeadline`,
        { code: "CONFIG_CONFLICT", key: duration.definition.key, source: duration.source },
      ),
    );
  }
  if (
    deadline !== undefined && retry !== undefined &&
    !(Number(deadline.value) > Number(retry.value) * RETRY_JITTER_FACTOR)
  ) {
    errors.push(
      new ConfigError(
        `Key ${describe(deadline)} must be more than ${RETRY_JITTER_FACTOR} times ${
          describe(retry)
        } (rule: leader.renewdeadline > leader.retryperiod × ${RETRY_JITTER_FACTOR}, so that a leader gets more than one try to renew): raise leader.renewdeadline or lower leader.retryperiod`,
        { code: "CONFIG_CONFLICT", key: deadline.definition.key, source: deadline.source },
      ),
    );
  }
  return errors;
}

/**
 * With `targets` there is no single Secret to name the Lease after: `leader.elect` then needs
 * `leader.lease`.
 *
 * @param settings The valid values by key.
 * @returns The error, if the rule is broken.
 *
 * @example
 * ```ts ignore
 * import { checkLeaderWithTargets } from "./leader.ts";
 * const errors = checkLeaderWithTargets(settings);
 * ```
 */
export function checkLeaderWithTargets(settings: ReadonlyMap<string, Setting>): ConfigError[] {
  if (settings.get("leader.elect")?.value !== true || settings.has("leader.lease")) return [];
  return [
    new ConfigError(
      `Missing required key leader.lease with targets and leader.elect: the Lease is named after secret.name, which targets replace; set it with --leader.lease, KTR_LEADER_LEASE or "leader.lease" in the --config file`,
      { code: "CONFIG_MISSING", key: "leader.lease" },
    ),
  ];
}
