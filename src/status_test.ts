import { assert, assertEquals, assertMatch, assertStringIncludes } from "../tests/assert.ts";
import {
  parsePrometheusText,
  prometheusParserIgnore,
} from "../tests/fixtures/prometheus_parser.ts";
import type { Token } from "./token.ts";
import { TokenError } from "./oidc/mod.ts";
import type { RefreshResult } from "./refresh.ts";
import { RefreshStatus } from "./status.ts";

const START = 1_700_000_000_000;

function setup(options: { stuckAfterMs?: number } = {}) {
  let now = START;
  const status = new RefreshStatus({
    version: "9.8.7",
    clock: { now: () => now },
    residentMemoryBytes: () => 42 * 1024 * 1024,
    ...options,
  });
  return { status, advance: (ms: number) => (now += ms), now: () => now };
}

function result(obtainedAt: number, lifetimeSeconds?: number): RefreshResult {
  const token: Token = lifetimeSeconds === undefined
    ? { value: "secret-token-value", obtainedAt, lifetimeSource: "unknown" }
    : {
      value: "secret-token-value",
      obtainedAt,
      lifetimeSeconds,
      expiresAt: obtainedAt + lifetimeSeconds * 1000,
      lifetimeSource: "expires_in",
    };
  return { token, write: { action: "updated", requests: 1 } };
}

function sample(text: string, line: RegExp): number {
  const match = text.match(line);
  assert(match, `no line matching ${line} in:\n${text}`);
  return Number(match[1]);
}

Deno.test("readiness: not ready before the first successful refresh", () => {
  const { status } = setup();
  assertEquals(status.readiness(), { ok: false, reason: "No successful refresh yet" });
});

Deno.test("readiness: ready after a success, until the token written expires", () => {
  const { status, advance, now } = setup();
  status.onSuccess({ result: result(now(), 60), durationMs: 100, nextAt: now() + 40_000 });
  assertEquals(status.readiness(), { ok: true });
  advance(59_999);
  assertEquals(status.readiness(), { ok: true });
  advance(1);
  const check = status.readiness();
  assert(!check.ok);
  assertEquals(
    check.reason,
    `Token in the Secret expired at ${new Date(START + 60_000).toISOString()}`,
  );
});

Deno.test("readiness: a failed refresh makes it unready with the error code, a success heals it", () => {
  const { status, now } = setup();
  status.onSuccess({ result: result(now(), 600), durationMs: 100, nextAt: now() + 400_000 });
  status.onFailure({
    error: new TokenError("Token endpoint did not answer within 10000 ms\nsecond line", {
      code: "TOKEN_TIMEOUT",
    }),
    durationMs: 10_000,
    failures: 1,
    nextAt: now() + 500,
  });
  const check = status.readiness();
  assert(!check.ok);
  assertEquals(
    check.reason,
    "Last refresh failed: TOKEN_TIMEOUT: Token endpoint did not answer within 10000 ms second line",
  );
  status.onSuccess({ result: result(now(), 600), durationMs: 100, nextAt: now() + 400_000 });
  assertEquals(status.readiness(), { ok: true });
});

Deno.test("readiness: with the expiry unknown, the last success alone counts", () => {
  const { status, advance, now } = setup();
  status.onSuccess({ result: result(now()), durationMs: 100, nextAt: now() + 500_000 });
  advance(10 * 86_400_000);
  assertEquals(status.readiness(), { ok: true });
});

Deno.test("liveness: alive while waiting and while an attempt runs within the limit", () => {
  const { status, advance, now } = setup({ stuckAfterMs: 40_000 });
  assertEquals(status.liveness(), { ok: true });
  advance(40_000);
  assertEquals(status.liveness(), { ok: true }, "first attempt at the limit");
  status.onSuccess({ result: result(now(), 600), durationMs: 40_000, nextAt: now() + 300_000 });
  advance(300_000 + 40_000);
  assertEquals(status.liveness(), { ok: true }, "next attempt, at the limit");
});

Deno.test("liveness: an attempt running past the limit makes it unhealthy", () => {
  const { status, advance } = setup({ stuckAfterMs: 40_000 });
  advance(40_001);
  const first = status.liveness();
  assert(!first.ok);
  assertEquals(
    first.reason,
    "Refresh attempt running for 40 s, longer than the 40 s its request timeouts allow",
  );

  const again = setup({ stuckAfterMs: 40_000 });
  again.status.onFailure({
    error: new Error("x"),
    durationMs: 5,
    failures: 1,
    nextAt: again.now() + 1_000,
  });
  again.advance(1_000 + 57_000);
  const stuck = again.status.liveness();
  assert(!stuck.ok);
  assertStringIncludes(stuck.reason, "running for 57 s");
});

Deno.test("metrics: timestamps, attempts by result, consecutive failures and durations", () => {
  const { status, advance, now } = setup();
  status.onSuccess({ result: result(now(), 300), durationMs: 250, nextAt: now() + 200_000 });
  advance(200_000);
  status.onFailure({
    error: new Error("boom"),
    durationMs: 1_500,
    failures: 1,
    nextAt: now() + 500,
  });
  advance(500);
  status.onFailure({
    error: new Error("boom"),
    durationMs: 3_000,
    failures: 2,
    nextAt: now() + 1_000,
  });
  const text = status.metrics();
  assertEquals(
    sample(text, /^ktr_token_expiry_timestamp_seconds (\S+)$/m),
    (START + 300_000) / 1000,
  );
  assertEquals(sample(text, /^ktr_refresh_last_success_timestamp_seconds (\S+)$/m), START / 1000);
  assertEquals(sample(text, /^ktr_refresh_next_timestamp_seconds (\S+)$/m), (now() + 1_000) / 1000);
  assertEquals(sample(text, /^ktr_refresh_attempts_total\{result="success"\} (\S+)$/m), 1);
  assertEquals(sample(text, /^ktr_refresh_attempts_total\{result="failure"\} (\S+)$/m), 2);
  assertEquals(sample(text, /^ktr_refresh_consecutive_failures (\S+)$/m), 2);
  assertEquals(sample(text, /^ktr_refresh_duration_seconds_sum\{result="failure"\} (\S+)$/m), 4.5);
  assertEquals(
    sample(text, /^ktr_refresh_duration_seconds_bucket\{result="success",le="0.25"\} (\S+)$/m),
    1,
  );
  assertEquals(sample(text, /^process_resident_memory_bytes (\S+)$/m), 42 * 1024 * 1024);
  assertMatch(text, /^ktr_build_info\{version="9\.8\.7",deno_version="\d+\.\d+\.\d+[^"]*"\} 1$/m);
});

Deno.test("metrics: before any refresh the attempt counters are 0 and the timestamps absent", () => {
  const { status } = setup();
  const text = status.metrics();
  assertEquals(sample(text, /^ktr_refresh_attempts_total\{result="success"\} (\S+)$/m), 0);
  assertEquals(sample(text, /^ktr_refresh_attempts_total\{result="failure"\} (\S+)$/m), 0);
  assertEquals(sample(text, /^ktr_refresh_consecutive_failures (\S+)$/m), 0);
  assert(!/^ktr_token_expiry_timestamp_seconds /m.test(text));
  assert(!/^ktr_refresh_last_success_timestamp_seconds /m.test(text));
});

Deno.test("metrics: a token of unknown lifetime removes the expiry sample", () => {
  const { status, now } = setup();
  status.onSuccess({ result: result(now(), 60), durationMs: 1, nextAt: now() + 40_000 });
  assertMatch(status.metrics(), /^ktr_token_expiry_timestamp_seconds /m);
  status.onSuccess({ result: result(now()), durationMs: 1, nextAt: now() + 40_000 });
  assert(!/^ktr_token_expiry_timestamp_seconds /m.test(status.metrics()));
});

Deno.test({
  name: "metrics: the Prometheus Python parser reads the refresher's metrics with units and types",
  ignore: prometheusParserIgnore(),
  async fn() {
    const { status, now } = setup();
    status.onSuccess({ result: result(now(), 300), durationMs: 250, nextAt: now() + 200_000 });
    status.onFailure({ error: new Error("x"), durationMs: 20, failures: 1, nextAt: now() + 500 });
    const families = await parsePrometheusText(status.metrics());
    const types = Object.fromEntries(families.map((f) => [f.name, f.type]));
    assertEquals(types, {
      ktr_build_info: "gauge",
      ktr_token_expiry_timestamp_seconds: "gauge",
      ktr_refresh_last_success_timestamp_seconds: "gauge",
      ktr_refresh_next_timestamp_seconds: "gauge",
      ktr_refresh_consecutive_failures: "gauge",
      ktr_refresh_attempts: "counter",
      ktr_refresh_duration_seconds: "histogram",
      ktr_secret_repairs: "counter",
      ktr_leader: "gauge",
      process_start_time_seconds: "gauge",
      process_resident_memory_bytes: "gauge",
    });
    for (const family of families) assert(family.help.length > 0, `${family.name} has no help`);
    const expiry = families.find((f) => f.name === "ktr_token_expiry_timestamp_seconds");
    assertEquals(expiry?.samples[0].value, (START + 300_000) / 1000);
  },
});

Deno.test("an adopted token makes the refresher ready with its expiry, without counting an attempt", () => {
  const { status, now } = setup();
  const token = { ...result(now() - 10_000, 300).token };
  status.onSuccess({
    result: { token, write: { action: "adopted", requests: 0 } },
    durationMs: 0,
    nextAt: now() + 190_000,
  });
  assertEquals(status.readiness(), { ok: true });
  const text = status.metrics();
  assertMatch(text, /^ktr_refresh_attempts_total\{result="success"\} 0$/m);
  assertMatch(
    text,
    new RegExp(`^ktr_refresh_last_success_timestamp_seconds ${(now() - 10_000) / 1000}$`, "m"),
  );
});

Deno.test("repairs are counted by drift and result", () => {
  const { status } = setup();
  status.onRepair({ drift: "deleted", ok: true });
  status.onRepair({ drift: "deleted", ok: true });
  status.onRepair({ drift: "overwritten", ok: false });
  const text = status.metrics();
  assertMatch(text, /^ktr_secret_repairs_total\{drift="deleted",result="success"\} 2$/m);
  assertMatch(text, /^ktr_secret_repairs_total\{drift="overwritten",result="failure"\} 1$/m);
  assertMatch(text, /^ktr_secret_repairs_total\{drift="overwritten",result="success"\} 0$/m);
});

Deno.test("with leader election a follower is live and ready as standby, ktr_leader 0; the leader 1", () => {
  let now = 1_000_000;
  const status = new RefreshStatus({ version: "1.0.0", clock: { now: () => now } });
  assertMatch(status.metrics(), /^ktr_leader 1$/m);
  status.onSuccess({
    result: {
      token: { value: "t", obtainedAt: now, expiresAt: now + 60_000, lifetimeSource: "expires_in" },
      write: { action: "created", requests: 1 },
    },
    durationMs: 10,
    nextAt: now + 40_000,
  });
  assertMatch(status.metrics(), /^ktr_token_expiry_timestamp_seconds /m);
  status.setLeading(false);
  now += 3_600_000;
  // A former leader's token is not reported: its expiry would raise an alert.
  assert(!/^ktr_token_expiry_timestamp_seconds /m.test(status.metrics()));
  assertEquals(status.readiness(), { ok: true, note: "standby" });
  assertEquals(status.liveness(), { ok: true });
  assertMatch(status.metrics(), /^ktr_leader 0$/m);
  status.setElectionProblem("HTTP 403 Forbidden");
  assertEquals(status.readiness(), {
    ok: false,
    reason: "Cannot take part in the leader election: HTTP 403 Forbidden",
  });
  status.setElectionProblem(undefined);
  assertEquals(status.readiness(), { ok: true, note: "standby" });
  status.setLeading(true);
  // Its last token has expired meanwhile: not ready until it adopts or writes one.
  assertEquals(status.readiness().ok, false);
  assertEquals(status.liveness().ok, true);
  assertMatch(status.metrics(), /^ktr_leader 1$/m);
});
