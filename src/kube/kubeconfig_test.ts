/**
 * The small kubeconfig reader: token and client-certificate users read without
 * `@kubernetes/client-node`, everything else handed over, and the mistakes it reports itself.
 * The real API server's kubeconfig users are covered in tests/integration_test.ts.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import { KubeconfigError, readSimpleKubeconfig } from "./kubeconfig.ts";
import { kubeconfigConnection } from "./connect.ts";
import { KubeCredentialsError } from "./connect.ts";

const CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

/** A kubeconfig with one cluster, one user and one current context. */
function kubeconfig(cluster: string, user: string, extra = ""): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
${cluster}
users:
- name: u
  user:
${user}
contexts:
- name: x
  context:
    cluster: c
    user: u
    namespace: team-a
current-context: x
${extra}`;
}

/** Reads from an in-memory folder. */
function files(entries: Record<string, string>) {
  return (path: string) =>
    path in entries
      ? Promise.resolve(entries[path])
      : Promise.reject(new Deno.errors.NotFound(`${path}: no such file`));
}

const SERVER = `    server: https://127.0.0.1:6443`;

Deno.test("kubeconfig: a token user with CA data is read without client-node", async () => {
  const text = kubeconfig(
    `${SERVER}\n    certificate-authority-data: ${btoa(CA)}`,
    `    token: s3cr3t-token`,
  );
  const found = await readSimpleKubeconfig(
    ["/home/me/.kube/config"],
    files({
      "/home/me/.kube/config": text,
    }),
  );
  assertEquals(found, {
    kind: "simple",
    context: "x",
    cluster: "c",
    user: "u",
    server: "https://127.0.0.1:6443",
    caPem: CA,
    token: "s3cr3t-token",
  });
});

Deno.test("kubeconfig: certificate and key files and the CA file count from the kubeconfig's folder", async () => {
  const text = kubeconfig(
    `${SERVER}\n    certificate-authority: pki/ca.crt`,
    `    client-certificate: pki/me.crt\n    client-key: /keys/me.key`,
  );
  const found = await readSimpleKubeconfig(
    ["/etc/kube/config"],
    files({
      "/etc/kube/config": text,
      "/etc/kube/pki/ca.crt": CA,
      "/etc/kube/pki/me.crt": CERT,
      "/keys/me.key": KEY,
    }),
  );
  assert(found.kind === "simple");
  assertEquals([found.caPem, found.certPem, found.keyPem], [CA, CERT, KEY]);
  assertEquals(found.token, undefined);
});

Deno.test("kubeconfig: a tokenFile is resolved and read for every request", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ktr-kubeconfig-" });
  try {
    await Deno.writeTextFile(`${dir}/token`, "first\n");
    await Deno.writeTextFile(`${dir}/config`, kubeconfig(SERVER, "    tokenFile: token"));
    const connection = await kubeconfigConnection({ paths: [`${dir}/config`] });
    try {
      assertEquals(await connection.authorize(), { authorization: "Bearer first" });
      await Deno.writeTextFile(`${dir}/token`, "second\n");
      assertEquals(await connection.authorize(), { authorization: "Bearer second" });
      assertStringIncludes(connection.description, `context "x"`);
      assertEquals(connection.server.href, "https://127.0.0.1:6443/");
    } finally {
      connection.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kubeconfig: exec, auth-provider and anything unknown go to client-node", async () => {
  const cases: [string, string, string][] = [
    [
      SERVER,
      "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: x",
      "exec",
    ],
    [SERVER, "    auth-provider:\n      name: oidc", "auth-provider"],
    [SERVER, "    username: admin\n    password: pw", "username"],
    [SERVER, "    token: t\n    as: someone-else", '"as"'],
    [SERVER, "    token: t\n    tokenFile: /t", "both token and tokenFile"],
    [`${SERVER}\n    proxy-url: http://proxy:3128`, "    token: t", "proxy-url"],
    [`${SERVER}\n    tls-server-name: api`, "    token: t", "tls-server-name"],
    [SERVER, "    token: 42", "not a string"],
    ["    certificate-authority: /ca", "    token: t", "without a server"],
    [SERVER, "    extensions: []", "without a token or a client certificate"],
  ];
  for (const [cluster, user, reason] of cases) {
    const found = await readSimpleKubeconfig(["/k"], files({ "/k": kubeconfig(cluster, user) }));
    assert(found.kind === "delegate", `${user}: read as simple`);
    assertStringIncludes(found.reason, reason);
  }
  for (
    const text of [
      "clusters: [ unclosed",
      "- a list",
      kubeconfig(SERVER, "    token: t").replace("current-context: x", ""),
      kubeconfig(SERVER, "    token: t").replace("current-context: x", "current-context: y"),
    ]
  ) {
    const found = await readSimpleKubeconfig(["/k"], files({ "/k": text }));
    assertEquals(found.kind, "delegate", text);
  }
  // One file that cannot be read is client-node's to report, as before.
  assertEquals((await readSimpleKubeconfig(["/missing"], files({}))).kind, "delegate");
});

Deno.test("kubeconfig: several files merge as kubectl merges them, the first name winning", async () => {
  const first = `current-context: x
users:
- name: u
  user:
    token: from-first
`;
  const second = kubeconfig(SERVER, "    token: from-second").replace(
    "current-context: x",
    "current-context: other",
  );
  const found = await readSimpleKubeconfig(
    ["/a", "/missing", "/b"],
    files({ "/a": first, "/b": second }),
  );
  assert(found.kind === "simple");
  assertEquals([found.context, found.token], ["x", "from-first"]);
});

Deno.test("kubeconfig: what it understands and refuses is an error naming the key", async () => {
  const read = (text: string) => readSimpleKubeconfig(["/k"], files({ "/k": text }));
  const cases: [string, string][] = [
    [
      kubeconfig(`${SERVER}\n    insecure-skip-tls-verify: true`, "    token: t"),
      "insecure-skip-tls-verify",
    ],
    [kubeconfig(SERVER, "    token: t\n    client-certificate-data: '%%%'"), "not valid base64"],
    [kubeconfig(SERVER, `    client-certificate-data: ${btoa(CERT)}`), "without a key"],
    [
      kubeconfig(`${SERVER}\n    certificate-authority: /nowhere/ca.crt`, "    token: t"),
      "/nowhere",
    ],
  ];
  for (const [text, expected] of cases) {
    const err = await assertRejects(() => read(text), KubeconfigError);
    assertStringIncludes(err.message, expected);
  }
  // Through connect: a credentials error (exit code 3), the token never in the message.
  const dir = await Deno.makeTempDir({ prefix: "ktr-kubeconfig-" });
  try {
    await Deno.writeTextFile(
      `${dir}/config`,
      kubeconfig(`${SERVER}\n    insecure-skip-tls-verify: true`, "    token: s3cr3t-token"),
    );
    const err = await assertRejects(
      () => kubeconfigConnection({ paths: [`${dir}/config`] }),
      KubeCredentialsError,
    );
    assertStringIncludes(err.message, "insecure-skip-tls-verify");
    assert(!err.message.includes("s3cr3t-token"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kubeconfig: a token or certificate user costs no client-node import", async () => {
  // In a process of its own: client-node adds about 60 MiB of resident memory when loaded, so
  // growth well under that shows it was not.
  const dir = await Deno.makeTempDir({ prefix: "ktr-kubeconfig-" });
  try {
    await Deno.writeTextFile(`${dir}/config`, kubeconfig(SERVER, "    token: t"));
    const script = `
      import { kubeconfigConnection } from "${new URL("./connect.ts", import.meta.url).href}";
      const before = Deno.memoryUsage().rss;
      const connection = await kubeconfigConnection({ paths: [${
      JSON.stringify(`${dir}/config`)
    }] });
      connection.close();
      console.log(JSON.stringify({ grew: Deno.memoryUsage().rss - before, what: connection.description }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", `--config=${new URL("../../deno.json", import.meta.url).pathname}`, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert(out.success, new TextDecoder().decode(out.stderr));
    const { grew } = JSON.parse(text);
    assert(grew < 20 * 1024 * 1024, `RSS grew by ${(grew / 1048576).toFixed(1)} MiB`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
