import { assertEquals } from "../../tests/assert.ts";
import type { SecretObject } from "./client.ts";
import {
  ANNOTATIONS,
  decideAdoption,
  detectDrift,
  lastManagerOf,
  sha256Hex,
  toBase64,
} from "./state.ts";

const T0 = Date.UTC(2026, 0, 1);
const options = { key: "token", now: T0 + 10_000, intervalMs: 500_000, renewFraction: 2 / 3 };

async function annotated(
  value: string,
  annotations: Record<string, string> = {},
): Promise<SecretObject> {
  return {
    metadata: {
      name: "tok",
      annotations: {
        [ANNOTATIONS.refreshedAt]: new Date(T0).toISOString(),
        [ANNOTATIONS.expiresAt]: new Date(T0 + 60_000).toISOString(),
        [ANNOTATIONS.tokenSha256]: await sha256Hex(value),
        ...annotations,
      },
    },
    data: { token: toBase64(value), other: toBase64("x") },
  };
}

Deno.test("decideAdoption() adopts a token whose hash matches and whose renewal point is ahead", async () => {
  const secret = await annotated("tok-1");
  const decision = decideAdoption(secret, await sha256Hex("tok-1"), options);
  assertEquals(decision, {
    kind: "adopt",
    token: {
      value: "tok-1",
      obtainedAt: T0,
      lifetimeSeconds: 60,
      expiresAt: T0 + 60_000,
      lifetimeSource: "expires_in",
    },
    renewAt: T0 + 40_000,
  });
});

Deno.test("decideAdoption() renews at refreshed-at + interval when that comes first", async () => {
  const secret = await annotated("tok-1");
  const decision = decideAdoption(secret, await sha256Hex("tok-1"), {
    ...options,
    intervalMs: 20_000,
  });
  assertEquals(decision.kind === "adopt" && decision.renewAt, T0 + 20_000);
});

Deno.test("decideAdoption() adopts a token of unknown lifetime until refreshed-at + interval", async () => {
  const secret = await annotated("tok-1");
  delete secret.metadata.annotations![ANNOTATIONS.expiresAt];
  const decision = decideAdoption(secret, await sha256Hex("tok-1"), options);
  assertEquals(decision.kind, "adopt");
  assertEquals(decision.kind === "adopt" && decision.renewAt, T0 + 500_000);
  assertEquals(decision.kind === "adopt" && decision.token.expiresAt, undefined);
});

Deno.test("decideAdoption() refreshes when anything is off", async () => {
  const hash = await sha256Hex("tok-1");
  const cases: [string, SecretObject | null, string | undefined, string][] = [
    ["missing", null, undefined, "the Secret does not exist"],
    [
      "no annotations",
      {
        metadata: { name: "tok" },
        data: { token: toBase64("tok-1") },
      },
      hash,
      "the Secret carries no refresh annotations",
    ],
    ["mismatch", await annotated("tok-1"), await sha256Hex("tok-2"), "no longer holds"],
    ["past renewal", await annotated("tok-1"), hash, "past its renewal point"],
    [
      "unparsable time",
      await annotated("tok-1", { [ANNOTATIONS.refreshedAt]: "yesterday" }),
      hash,
      "refreshed-at does not parse",
    ],
    [
      "unparsable expiry",
      await annotated("tok-1", { [ANNOTATIONS.expiresAt]: "2026-01-01" }),
      hash,
      "expires-at does not parse",
    ],
    ["no key", { ...await annotated("tok-1"), data: {} }, undefined, 'key "token" is missing'],
  ];
  for (const [name, secret, valueHash, reason] of cases) {
    const now = name === "past renewal" ? T0 + 41_000 : options.now;
    const decision = decideAdoption(secret, valueHash, { ...options, now });
    assertEquals(decision.kind, "refresh", name);
    assertEquals(decision.kind === "refresh" && decision.reason.includes(reason), true, name);
  }
});

Deno.test("decideAdoption() refreshes for a refresh-now set while the tool was down and records it as handled", async () => {
  const secret = await annotated("tok-1", {
    [ANNOTATIONS.refreshNow]: "2",
    [ANNOTATIONS.refreshNowHandled]: "1",
  });
  const decision = decideAdoption(secret, await sha256Hex("tok-1"), options);
  assertEquals(decision, {
    kind: "refresh",
    reason: "a refresh-now request is waiting",
    refreshNowHandled: "2",
  });
  const handled = await annotated("tok-1", {
    [ANNOTATIONS.refreshNow]: "2",
    [ANNOTATIONS.refreshNowHandled]: "2",
  });
  const adopted = decideAdoption(handled, await sha256Hex("tok-1"), options);
  assertEquals(adopted.kind, "adopt");
  assertEquals(adopted.refreshNowHandled, "2");
});

Deno.test("detectDrift() sees deletion and an overwritten key, not other changes", async () => {
  const written = await sha256Hex("tok-1");
  const secret = await annotated("tok-1");
  assertEquals(detectDrift(null, "token", undefined, written), { kind: "deleted" });
  assertEquals(detectDrift(secret, "token", written, written), { kind: "none" });
  assertEquals(detectDrift(secret, "token", await sha256Hex("x"), written), {
    kind: "overwritten",
  });
  assertEquals(detectDrift(secret, "token", undefined, written), { kind: "overwritten" });
});

Deno.test("lastManagerOf() names the latest other manager of the key", () => {
  const secret: SecretObject = {
    metadata: {
      name: "tok",
      managedFields: [
        {
          manager: "kube-token-refresher",
          time: "2026-01-01T00:00:09Z",
          fieldsV1: { "f:data": { "f:token": {} } },
        },
        { manager: "old", time: "2026-01-01T00:00:01Z", fieldsV1: { "f:data": { "f:token": {} } } },
        {
          manager: "fighter",
          time: "2026-01-01T00:00:05Z",
          fieldsV1: { "f:data": { "f:token": {} } },
        },
        {
          manager: "labeller",
          time: "2026-01-01T00:00:08Z",
          fieldsV1: { "f:metadata": { "f:labels": {} } },
        },
      ],
    },
  };
  assertEquals(lastManagerOf(secret, "token"), "fighter");
  assertEquals(lastManagerOf({ metadata: { name: "tok" } }, "token"), undefined);
});
