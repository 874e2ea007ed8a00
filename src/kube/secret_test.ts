import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import {
  createFakeKube,
  type FakeKube,
  fakeKubeClient,
  statusResponse,
} from "../../tests/fixtures/fake_kube.ts";
import type { Token } from "../token.ts";
import { KubeApiError } from "./client.ts";
import { MANAGED_LABEL, SecretWriter, toBase64 } from "./secret.ts";
import { ANNOTATIONS, sha256Hex } from "./state.ts";

const target = { namespace: "team-a", name: "api-token", key: "token" };

function setup(fake: FakeKube = createFakeKube()) {
  const client = fakeKubeClient(fake, { server: "https://kube.test:6443" });
  return { fake, writer: new SecretWriter(client, target) };
}

function token(value: string, lifetimeSeconds?: number): Token {
  const obtainedAt = Date.UTC(2026, 0, 1);
  return lifetimeSeconds === undefined ? { value, obtainedAt, lifetimeSource: "unknown" } : {
    value,
    obtainedAt,
    lifetimeSeconds,
    expiresAt: obtainedAt + lifetimeSeconds * 1000,
    lifetimeSource: "expires_in",
  };
}

function decode(b64: string | undefined): string {
  return new TextDecoder().decode(Uint8Array.from(atob(b64 ?? ""), (c) => c.charCodeAt(0)));
}

Deno.test("SecretWriter.write() creates a missing Secret in one apply, with the managed label and the state annotations", async () => {
  const { fake, writer } = setup();
  const result = await writer.write(token("tok-1", 60));
  assertEquals(result, { action: "created", requests: 1, resourceVersion: "101" });
  const stored = fake.secrets.get("team-a/api-token");
  assert(stored);
  assertEquals(stored.type, "Opaque");
  assertEquals(stored.metadata.labels, { [MANAGED_LABEL]: "true" });
  assertEquals(decode(stored.data?.token), "tok-1");
  assertEquals(stored.metadata.annotations, {
    [ANNOTATIONS.refreshedAt]: "2026-01-01T00:00:00.000Z",
    [ANNOTATIONS.expiresAt]: "2026-01-01T00:01:00.000Z",
    [ANNOTATIONS.tokenSha256]: await sha256Hex("tok-1"),
  });
  assertEquals(fake.requests.map((r) => r.method), ["PATCH"]);
  assertEquals(fake.requests[0].authorization, "Bearer sa-token");
  assertEquals(writer.writtenSha256, await sha256Hex("tok-1"));
});

Deno.test("SecretWriter.write() sends an apply patch as field manager kube-token-refresher, forcing", async () => {
  const fake = createFakeKube();
  let seen: Request | undefined;
  fake.intercept = (_verb, req) => {
    seen = req.clone();
    return undefined;
  };
  const { writer } = setup(fake);
  await writer.write(token("tok-1"));
  assert(seen);
  const url = new URL(seen.url);
  assertEquals(url.pathname, "/api/v1/namespaces/team-a/secrets/api-token");
  assertEquals(url.searchParams.get("fieldManager"), "kube-token-refresher");
  assertEquals(url.searchParams.get("force"), "true");
  assertEquals(seen.headers.get("content-type"), "application/apply-patch+yaml");
  const body = await seen.json();
  // Only what the tool owns: no type, no other keys, no resourceVersion.
  assertEquals(Object.keys(body).sort(), ["apiVersion", "data", "kind", "metadata"]);
  assertEquals(Object.keys(body.metadata).sort(), ["annotations", "labels", "name", "namespace"]);
});

Deno.test("SecretWriter.write() keeps every other key, label and annotation and takes one request per refresh", async () => {
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
  const result = await writer.write(token("tok-2", 60));
  assertEquals(result.action, "updated");
  await writer.write(token("tok-3", 60));
  const stored = fake.secrets.get("team-a/api-token")!;
  assertEquals(decode(stored.data?.token), "tok-3");
  assertEquals(decode(stored.data?.other), "keep me");
  assertEquals(decode(stored.data?.["ca.crt"]), "PEM");
  assertEquals(stored.metadata.labels, { app: "consumer", [MANAGED_LABEL]: "true" });
  assertEquals(stored.metadata.annotations?.["example.com/owner"], "team-a");
  assertEquals(fake.requests.map((r) => r.method), ["PATCH", "PATCH"]);
});

Deno.test("SecretWriter.write() drops expires-at when the new token's lifetime is unknown, and carries refresh-now-handled", async () => {
  const { fake, writer } = setup();
  await writer.write(token("tok-1", 60));
  writer.refreshNowHandled = "1700000000";
  await writer.write(token("tok-2"));
  const annotations = fake.secrets.get("team-a/api-token")!.metadata.annotations!;
  assertEquals(annotations[ANNOTATIONS.expiresAt], undefined);
  assertEquals(annotations[ANNOTATIONS.refreshNowHandled], "1700000000");
  await writer.write(token("tok-3"));
  assertEquals(
    fake.secrets.get("team-a/api-token")!.metadata.annotations![ANNOTATIONS.refreshNowHandled],
    "1700000000",
  );
});

Deno.test("SecretWriter.isOwn() knows the written token and the one in flight", async () => {
  const fake = createFakeKube();
  const { writer } = setup(fake);
  let inFlight: boolean | undefined;
  fake.intercept = async () => {
    inFlight = writer.isOwn(await sha256Hex("tok-2"));
    return undefined;
  };
  await writer.write(token("tok-1"));
  await writer.write(token("tok-2"));
  assertEquals(inFlight, true);
  assert(writer.isOwn(await sha256Hex("tok-2")));
  assert(!writer.isOwn(await sha256Hex("tok-1")));
});

Deno.test("SecretWriter.write() explains a 403 naming patch, create and the Secret", async () => {
  const fake = createFakeKube();
  fake.forbidden.add("create");
  const { writer } = setup(fake);
  const err = await assertRejects(() => writer.write(token("tok")), KubeApiError);
  assertEquals(err.status, 403);
  assertStringIncludes(
    err.message,
    'lacks the "patch" verb (or, while the Secret does not exist, "create") on secret "api-token" in namespace "team-a"',
  );
  assertStringIncludes(
    err.message,
    'with the rule {apiGroups: [""], resources: ["secrets"], resourceNames: ["api-token"], verbs: ["get", "patch", "create", "list", "watch"]}',
  );
  assertStringIncludes(err.message, "test service account");
  assertEquals(fake.secrets.size, 0);
  assertEquals(writer.writtenSha256, undefined);
});

Deno.test("SecretWriter.write() reports other API failures with the Status message", async () => {
  const fake = createFakeKube();
  fake.intercept = () => statusResponse(500, "InternalError", "etcdserver: request timed out");
  const { writer } = setup(fake);
  const err = await assertRejects(() => writer.write(token("tok")), KubeApiError);
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
    verb === "patch"
      ? req.text().then((body) =>
        new Response(`<html>bad gateway for ${body}</html>`, {
          status: 502,
          headers: { "content-type": "text/html" },
        })
      )
      : undefined;
  const { writer } = setup(fake);
  const err = await assertRejects(() => writer.write(token("tok-secret-value")), KubeApiError);
  assertEquals(err.status, 502);
  assertStringIncludes(err.message, "text/html body not shown");
  assert(!err.message.includes("bad gateway"), err.message);
  assert(!err.message.includes(toBase64("tok-secret-value")), err.message);
});

Deno.test("SecretWriter.write() reports an oversized API answer as such, not as unreachable", async () => {
  const fake = createFakeKube();
  fake.intercept = (verb) =>
    verb === "patch" ? new Response(new Uint8Array(5 << 20), { status: 200 }) : undefined;
  const { writer } = setup(fake);
  const err = await assertRejects(() => writer.write(token("tok")), KubeApiError);
  assertEquals(err.code, "KUBE_HTTP");
  assertStringIncludes(err.message, "bytes accepted");
});

Deno.test("SecretWriter names its writer in refreshed-by once it has an identity", async () => {
  const { fake, writer } = setup();
  await writer.write(token("tok-1"));
  assertEquals(
    fake.secrets.get("team-a/api-token")!.metadata.annotations![ANNOTATIONS.refreshedBy],
    undefined,
  );
  writer.refreshedBy = "refresher-7d9f-x2-abcde";
  await writer.write(token("tok-2"));
  assertEquals(
    fake.secrets.get("team-a/api-token")!.metadata.annotations![ANNOTATIONS.refreshedBy],
    "refresher-7d9f-x2-abcde",
  );
});
