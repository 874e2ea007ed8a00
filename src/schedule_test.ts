import { assert, assertEquals } from "../tests/assert.ts";
import type { Token } from "./token.ts";
import {
  planAfterFailure,
  planAfterSuccess,
  retryDeadline,
  type ScheduleOptions,
} from "./schedule.ts";

const opts: ScheduleOptions = { intervalMs: 500_000, renewFraction: 2 / 3, random: () => 0.5 };

function token(lifetimeSeconds: number | undefined, obtainedAt = 0): Token {
  return lifetimeSeconds === undefined ? { value: "t", obtainedAt, lifetimeSource: "unknown" } : {
    value: "t",
    obtainedAt,
    lifetimeSeconds,
    expiresAt: obtainedAt + lifetimeSeconds * 1000,
    lifetimeSource: "expires_in",
  };
}

Deno.test("planAfterSuccess() waits the interval when the token outlives it", () => {
  assertEquals(planAfterSuccess(token(3600), opts), {
    delayMs: 500_000,
    shortenedByLifetime: false,
  });
});

Deno.test("planAfterSuccess() renews at two thirds of a lifetime shorter than the interval", () => {
  assertEquals(planAfterSuccess(token(300), opts), { delayMs: 200_000, shortenedByLifetime: true });
});

Deno.test("planAfterSuccess() falls back to the interval when the lifetime is unknown", () => {
  assertEquals(planAfterSuccess(token(undefined), opts).delayMs, 500_000);
});

Deno.test("planAfterSuccess() never plans a tight loop for a token that is already expired", () => {
  assertEquals(planAfterSuccess(token(0), opts).delayMs, 500);
});

Deno.test("planAfterFailure() doubles from 0.5 s to a 30 s cap", () => {
  const delays = [1, 2, 3, 4, 5, 6, 7, 8, 20].map((failures) =>
    planAfterFailure({ failures }, 0, undefined, opts)
  );
  assertEquals(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

Deno.test("planAfterFailure() jitters by at most 20 % and stays within the cap", () => {
  const low = planAfterFailure({ failures: 3 }, 0, undefined, { ...opts, random: () => 0 });
  const high = planAfterFailure({ failures: 3 }, 0, undefined, { ...opts, random: () => 0.999999 });
  assertEquals(low, 1600);
  assertEquals(high, 2400);
  const capped = planAfterFailure({ failures: 10 }, 0, undefined, {
    ...opts,
    random: () => 0.999999,
  });
  assertEquals(capped, 30_000);
});

Deno.test("planAfterFailure() honours Retry-After, capped at two minutes", () => {
  // Jitter at its low end: the wait is the Retry-After itself.
  const low = { ...opts, random: () => 0 };
  assertEquals(planAfterFailure({ failures: 1, retryAfterMs: 20_000 }, 0, undefined, low), 20_000);
  assertEquals(
    planAfterFailure({ failures: 1, retryAfterMs: 3_600_000 }, 0, undefined, low),
    120_000,
  );
});

Deno.test("planAfterFailure() retries bad credentials at the slowest pace", () => {
  assertEquals(planAfterFailure({ failures: 1, slow: true }, 0, undefined, opts), 30_000);
});

Deno.test("planAfterFailure() never waits past the retry deadline of the current token", () => {
  const t = token(60, 0);
  const deadline = retryDeadline(t, opts.renewFraction);
  assertEquals(deadline, 50_000);
  assertEquals(planAfterFailure({ failures: 10 }, 45_000, deadline, opts), 5_000);
  assertEquals(
    planAfterFailure({ failures: 1, retryAfterMs: 60_000 }, 45_000, deadline, opts),
    5_000,
  );
  // Past the deadline the ordinary backoff applies, never less than the minimum.
  assertEquals(planAfterFailure({ failures: 10 }, 50_000, deadline, opts), 30_000);
  assert(planAfterFailure({ failures: 1 }, 49_990, deadline, opts) >= 500);
});

Deno.test("planAfterFailure() spreads retries told the same Retry-After over 20 %, never before it", () => {
  const after = (r: number) =>
    planAfterFailure({ failures: 1, retryAfterMs: 20_000 }, 0, undefined, {
      ...opts,
      random: () => r,
    });
  assertEquals(after(0), 20_000);
  assertEquals(after(0.5), 22_000);
  assertEquals(after(0.999999), 24_000);
});
