/**
 * `deno task demo` as users run it: it says first, with size and time, when it has to build the
 * test stack (README says the same), and a whole run prints no warning noise.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { NOISE, noiseLines } from "./fixtures/noise.ts";
import { stackTestIgnore } from "./stack/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function demo(env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "demo"],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("deno task demo says first that it builds the stack, how big and how long", async () => {
  // An empty stack cache and a Go that may not download anything: the build starts and fails at
  // once, after the notice.
  const empty = await Deno.makeTempDir({ prefix: "ktr-demo-" });
  try {
    const { code, stdout, stderr } = await demo({
      KTR_STACK_CACHE: `${empty}/stack`,
      GOPROXY: "off",
      GOFLAGS: "-mod=mod",
      GOMODCACHE: `${empty}/mod`,
      GOCACHE: `${empty}/cache`,
      GOTOOLCHAIN: "local",
    });
    assertEquals(code, 1, stdout + stderr);
    const first = stdout.split("\n")[0];
    assertMatch(first, /not built yet\. Building it now/);
    const size = first.match(/about (\d+ GB)/)?.[1];
    const time = first.match(/about (\d+ minutes)/)?.[1];
    assert(size && time, first);
    assertMatch(stderr, /Building the Kubernetes test stack failed/);

    // README says the same before anyone runs it.
    const readme = Deno.readTextFileSync(`${ROOT}README.md`).replace(/\s+/g, " ");
    const development = readme.slice(readme.indexOf("## Development"));
    assertMatch(development, new RegExp(`deno task demo.*about ${size}.*about ${time}`));
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test({
  name: "a whole deno task demo run prints no warning noise",
  ignore: stackTestIgnore(),
  fn: async () => {
    const { code, stdout, stderr } = await demo();
    assertEquals(code, 0, stdout + stderr);
    assertMatch(stdout, /Refresher stopped with exit code 0/);
    assertEquals(noiseLines(stdout + stderr), [], `noise kinds: ${NOISE.length}`);
  },
});

Deno.test("the noise check finds each kind it is meant to keep out", () => {
  const samples = [
    "oidc-provider WARNING: Unsupported runtime. Use Node.js v22.x LTS, or a later LTS release.",
    "Warning The following packages contained npm lifecycle scripts (preinstall/install/postinstall) that were not executed:",
    "Warning Permissions in the config file is an experimental feature and may change in the future.",
    "npm warn install-scripts 1 package has install scripts not yet covered by allowScripts:",
    "2026-05-04T10:00:00.000Z WARNING Ignoring unknown environment variable KTR_X",
  ];
  for (const sample of samples) assertEquals(noiseLines(`ok\n${sample}\n`).length, 1, sample);
  assertEquals(noiseLines("2026-05-04T10:00:00.000Z WARN  Ignoring unknown variable KTR_X\n"), []);
});
