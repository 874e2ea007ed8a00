import { assert, assertEquals } from "../../tests/assert.ts";
import { createFakeKube, fakeKubeClient, statusResponse } from "../../tests/fixtures/fake_kube.ts";
import { type EventOccurrence, EventRecorder, microTime } from "./events.ts";

function setup() {
  const fake = createFakeKube();
  const client = fakeKubeClient(fake, { description: "test" });
  let now = Date.UTC(2026, 0, 1);
  const recorder = new EventRecorder({ client, instance: "refresher-abc", now: () => now });
  return { fake, recorder, advance: (ms: number) => (now += ms), now: () => now };
}

const refreshed: EventOccurrence = {
  regarding: { apiVersion: "v1", kind: "Secret", namespace: "ns", name: "tok" },
  type: "Normal",
  reason: "TokenRefreshed",
  action: "Refresh",
  note: "Token refreshed; it is valid for 2 s",
};

Deno.test("EventRecorder creates an events.k8s.io/v1 Event regarding the Secret", async () => {
  const { fake, recorder, now } = setup();
  await recorder.record(refreshed);
  assertEquals(fake.events.length, 1);
  const { method, body } = fake.events[0];
  assertEquals(method, "POST");
  assertEquals(body.apiVersion, "events.k8s.io/v1");
  assertEquals(body.reportingController, "kube-token-refresher");
  assertEquals(body.reportingInstance, "refresher-abc");
  assertEquals(body.action, "Refresh");
  assertEquals(body.reason, "TokenRefreshed");
  assertEquals(body.type, "Normal");
  assertEquals(body.eventTime, microTime(now()));
  assertEquals(body.regarding, { apiVersion: "v1", kind: "Secret", namespace: "ns", name: "tok" });
  assert(/^tok\.[0-9a-f]+$/.test((body.metadata as { name: string }).name));
  assertEquals(recorder.writes, 1);
});

Deno.test("EventRecorder: an hour of 2 s refreshes costs at most 4 Event writes, counted in the series", async () => {
  const { fake, recorder, advance } = setup();
  for (let i = 0; i < 1800; i++) {
    await recorder.record(refreshed);
    advance(2000);
  }
  assert(fake.events.length <= 4, `${fake.events.length} writes`);
  assertEquals(fake.events[0].method, "POST");
  const last = fake.events.at(-1)!;
  assertEquals(last.method, "PATCH");
  const series = last.body.series as { count: number; lastObservedTime: string };
  assert(series.count > 1000, JSON.stringify(series));
  // 100 refreshes of 2 s tokens: one write.
  const second = setup();
  for (let i = 0; i < 100; i++) {
    await second.recorder.record(refreshed);
    second.advance(1333);
  }
  assertEquals(second.fake.events.length, 1);
});

Deno.test("EventRecorder bounds writes per Secret even when reasons alternate", async () => {
  const { fake, recorder, advance } = setup();
  const reasons = ["TokenRefreshed", "TokenRefreshFailed", "SecretRepaired", "SecretContested"];
  for (let i = 0; i < 3600; i++) {
    await recorder.record({ ...refreshed, reason: reasons[i % 4] as EventOccurrence["reason"] });
    advance(1000);
  }
  // Burst of 6, then 4 per hour.
  assert(fake.events.length <= 10, `${fake.events.length} writes`);
});

Deno.test("EventRecorder warns once on 403 and then only logs", async () => {
  const { fake, recorder } = setup();
  fake.forbidden.add("events-create");
  await recorder.record(refreshed);
  await recorder.record({ ...refreshed, reason: "SecretRepaired" });
  assertEquals(recorder.enabled, false);
  assertEquals(fake.events.length, 0);
  assertEquals(fake.requests.filter((r) => r.path.includes("events")).length, 1);
});

Deno.test("EventRecorder starts a new Event when the series' Event is gone", async () => {
  const { fake, recorder, advance } = setup();
  await recorder.record(refreshed);
  fake.intercept = (verb) =>
    verb === "events-patch" ? statusResponse(404, "NotFound", "events not found") : undefined;
  advance(21 * 60_000);
  await recorder.record(refreshed);
  assertEquals(fake.events.map((e) => e.method), ["POST", "POST"]);
});
