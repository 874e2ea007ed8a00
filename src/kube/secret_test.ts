import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import {
  createFakeKube,
  type FakeKube,
  fakeKubeClient,
  statusResponse,
} from "../../tests/fixtures/fake_kube.ts";
import { KubeApiError } from "./client.ts";
import { toBase64 } from "../base64.ts";
import { MANAGED_LABEL, SecretWriter } from "./secret.ts";

const target = { namespace: "team-a", name: "api-token", key: "token" };

function setup(fake: FakeKube = createFakeKube()) {
  const client = fakeKubeClient(fake, { server: "https://kube.test:6443" });
  return { fake, writer: new SecretWriter(client, target) };
}

function decode(b64: string | undefined): string {
  return new TextDecoder().decode(Uint8Array.from(atob(b64 ?? ""), (c) => c.charCodeAt(0)));
}

Deno.test("SecretWriter.write() creates a missing Secret as Opaque with the managed label", async () => {
  const { fake, writer } = setup();
  const result = await writer.write("tok-1");
  assertEquals(result.action, "created");
  const stored = fake.secrets.get("team-a/api-token");
  assert(stored);
  assertEquals(stored.type, "Opaque");
  assertEquals(stored.metadata.labels, { [MANAGED_LABEL]: "true" });
  assertEquals(decode(stored.data?.token), "tok-1");
  assertEquals(fake.requests.map((r) => r.method), ["GET", "POST"]);
  assertEquals(fake.requests[0].authorization, "Bearer sa-token");
});

Deno.test("SecretWriter.write() keeps every other key, label and annotation", async () => {
  const { fake, writer } = setup();
  fake.secrets.set("team-a/api-token", {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: "api-token",
      namespace: "team-a",
      resourceVersion: "7",
      labels: { app: "consumer" },
      annotations: { "example.com/owner": "team-a" },
    },
    type: "Opaque",
    data: { token: toBase64("old"), "ca.crt": toBase64("PEM"), other: toBase64("keep me") },
  });
  const result = await writer.write("tok-2");
  assertEquals(result.action, "updated");
  const stored = fake.secrets.get("team-a/api-token")!;
  assertEquals(decode(stored.data?.token), "tok-2");
  assertEquals(decode(stored.data?.other), "keep me");
  assertEquals(decode(stored.data?.["ca.crt"]), "PEM");
  assertEquals(stored.metadata.labels, { app: "consumer", [MANAGED_LABEL]: "true" });
  assertEquals(stored.metadata.annotations, { "example.com/owner": "team-a" });
});

Deno.test("SecretWriter.write() needs one request per refresh in steady state", async () => {
  const { fake, writer } = setup();
  await writer.write("tok-1");
  fake.requests.length = 0;
  const second = await writer.write("tok-2");
  const third = await writer.write("tok-3");
  assertEquals([second.requests, third.requests], [1, 1]);
  assertEquals(fake.requests.map((r) => r.method), ["PUT", "PUT"]);
  assertEquals(decode(fake.secrets.get("team-a/api-token")!.data?.token), "tok-3");
});

Deno.test("SecretWriter.write() reads again after a 409 and keeps the other writer's change", async () => {
  const { fake, writer } = setup();
  await writer.write("tok-1");
  fake.mutate("team-a", "api-token", (s) => {
    s.data = { ...s.data, added: toBase64("by someone else") };
  });
  fake.requests.length = 0;
  const result = await writer.write("tok-2");
  assertEquals(fake.requests.map((r) => r.method), ["PUT", "GET", "PUT"]);
  assertEquals(result.requests, 3);
  const stored = fake.secrets.get("team-a/api-token")!;
  assertEquals(decode(stored.data?.added), "by someone else");
  assertEquals(decode(stored.data?.token), "tok-2");
});

Deno.test("SecretWriter.write() gives up after repeated conflicts with the API's message", async () => {
  const fake = createFakeKube();
  fake.intercept = (verb) =>
    verb === "update" ? statusResponse(409, "Conflict", "the object has been modified") : undefined;
  const { writer } = setup(fake);
  fake.secrets.set("team-a/api-token", {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "api-token", namespace: "team-a", resourceVersion: "1" },
    data: {},
  });
  const err = await assertRejects(() => writer.write("tok"), KubeApiError);
  assertEquals(err.status, 409);
  assertStringIncludes(err.message, "the object has been modified");
  assertEquals(fake.requests.filter((r) => r.method === "PUT").length, 6);
});

Deno.test("SecretWriter.write() creates the Secret again after someone deleted it", async () => {
  const { fake, writer } = setup();
  await writer.write("tok-1");
  fake.secrets.clear();
  fake.requests.length = 0;
  const result = await writer.write("tok-2");
  assertEquals(result.action, "created");
  assertEquals(fake.requests.map((r) => r.method), ["PUT", "POST"]);
  assertEquals(decode(fake.secrets.get("team-a/api-token")!.data?.token), "tok-2");
});

Deno.test("SecretWriter.write() explains a forbidden create with the missing verb", async () => {
  const fake = createFakeKube();
  fake.forbidden.add("create");
  const { writer } = setup(fake);
  const err = await assertRejects(() => writer.write("tok"), KubeApiError);
  assertEquals(err.status, 403);
  assertEquals(err.verb, "create");
  assertStringIncludes(err.message, 'lacks the "create" verb on secrets in namespace "team-a"');
  assertStringIncludes(
    err.message,
    'with the rule {apiGroups: [""], resources: ["secrets"], verbs: ["create"]}',
  );
  assertStringIncludes(err.message, "test service account");
  assertEquals(fake.secrets.size, 0);
});

Deno.test("SecretWriter.write() explains a forbidden update naming the Secret", async () => {
  const fake = createFakeKube();
  fake.forbidden.add("update");
  const { writer } = setup(fake);
  fake.secrets.set("team-a/api-token", {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "api-token", namespace: "team-a", resourceVersion: "1" },
    data: { token: toBase64("old") },
  });
  const err = await assertRejects(() => writer.write("tok"), KubeApiError);
  assertStringIncludes(
    err.message,
    'lacks the "update" verb on secret "api-token" in namespace "team-a"',
  );
  // The rule to paste narrows the grant to this Secret, as the deploy base does.
  assertStringIncludes(
    err.message,
    'with the rule {apiGroups: [""], resources: ["secrets"], resourceNames: ["api-token"], verbs: ["update"]}',
  );
  assertEquals(decode(fake.secrets.get("team-a/api-token")!.data?.token), "old");
});

Deno.test("SecretWriter.write() reports other API failures with the Status message", async () => {
  const fake = createFakeKube();
  fake.intercept = () => statusResponse(500, "InternalError", "etcdserver: request timed out");
  const { writer } = setup(fake);
  const err = await assertRejects(() => writer.write("tok"), KubeApiError);
  assertEquals(err.status, 500);
  assertStringIncludes(err.message, "etcdserver: request timed out");
});

Deno.test("toBase64() encodes UTF-8 bytes", () => {
  assertEquals(toBase64("token"), "dG9rZW4=");
  assertEquals(decode(toBase64("ä€")), "ä€");
});

Deno.test("SecretWriter.write() never quotes a non-Status error body, which could echo the token", async () => {
  const fake = createFakeKube();
  fake.intercept = (verb, req) =>
    verb === "create"
      ? req.text().then((body) =>
        new Response(`<html>bad gateway for ${body}</html>`, {
          status: 502,
          headers: { "content-type": "text/html" },
        })
      )
      : undefined;
  const { writer } = setup(fake);
  const err = await assertRejects(() => writer.write("tok-secret-value"), KubeApiError);
  assertEquals(err.status, 502);
  assertStringIncludes(err.message, "text/html body not shown");
  assert(!err.message.includes("bad gateway"), err.message);
  assert(!err.message.includes(toBase64("tok-secret-value")), err.message);
});

Deno.test("SecretWriter.write() reports an oversized API answer as such, not as unreachable", async () => {
  const fake = createFakeKube();
  fake.intercept = (verb) =>
    verb === "get" ? new Response(new Uint8Array(5 << 20), { status: 200 }) : undefined;
  const { writer } = setup(fake);
  const err = await assertRejects(() => writer.write("tok"), KubeApiError);
  assertEquals(err.code, "KUBE_HTTP");
  assertStringIncludes(err.message, "bytes accepted");
});
