/**
 * The client secret stays off command lines: a command line is readable by every user of the
 * machine (`ps`, `/proc/PID/cmdline`) and `deno task` echoes it on standard error. So README
 * never shows one there, `--help` says why, and a start with `--oidc.clientsecret` warns.
 */
import { assert, assertEquals, assertMatch, assertNotIncludes } from "./assert.ts";
import { parseCommandLine } from "../src/cli.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";

const ROOT = new URL("../", import.meta.url);
const SECRET = "s3cr3t-on-the-command-line";

/** The lines of README's shell code blocks, with continuation lines joined. */
function readmeShellCommands(): string[] {
  const readme = Deno.readTextFileSync(new URL("README.md", ROOT));
  const blocks = [...readme.matchAll(/^```(?:sh|shell|bash|console)\n([^]*?)^```/gm)];
  assert(blocks.length > 0, "README has shell blocks");
  return blocks.flatMap((block) => block[1].replace(/\\\n/g, " ").split("\n"));
}

Deno.test("README shows no client secret on a command line", () => {
  const offending = readmeShellCommands().filter((line) =>
    /--oidc\.clientsecret(?!file)\b/.test(line) || /\bKTR_OIDC_CLIENTSECRET=\S/.test(line)
  );
  assertEquals(offending, [], "commands that put the secret on the command line");
  // The quick start still shows how the secret gets in: by the environment.
  assert(
    readmeShellCommands().some((line) => /KTR_OIDC_CLIENTSECRET/.test(line)),
    "the quick start sets KTR_OIDC_CLIENTSECRET",
  );
});

Deno.test("--help says to give the secret by environment or file, and why", async () => {
  const help = await parseCommandLine(["--help"], {});
  assert(help.kind === "help");
  const text = help.text.replace(/\s+/g, " ");
  assertMatch(
    text,
    /client secret as KTR_OIDC_CLIENTSECRET or in a file \(--oidc\.clientsecretfile\)/,
  );
  assertMatch(text, /not as --oidc\.clientsecret: a command line can be read by every user/);
});

const BASE_ENV = {
  KTR_SECRET_NAME: "api-token",
  KTR_SECRET_NAMESPACE: "team-a",
  KTR_OIDC_TOKENURL: "https://auth.example.com/token",
  KTR_OIDC_CLIENTID: "app",
};

Deno.test("parseCommandLine() warns when the secret comes as a flag, not from env or file", async () => {
  const flag = await parseCommandLine([`--oidc.clientsecret=${SECRET}`], BASE_ENV);
  assert(flag.kind === "run");
  assertEquals(flag.warnings.filter((w) => w.includes("--oidc.clientsecret")).length, 1);
  for (const warning of flag.warnings) assertNotIncludes(warning, SECRET);

  for (
    const [args, env] of [
      [["--interval=60"], { ...BASE_ENV, KTR_OIDC_CLIENTSECRET: SECRET }],
      [[], { ...BASE_ENV, KTR_OIDC_CLIENTSECRET: SECRET }],
      [["--oidc.clientsecretfile=/run/secrets/oidc"], BASE_ENV],
    ] as const
  ) {
    const run = await parseCommandLine(args, env);
    assert(run.kind === "run");
    assertEquals(run.warnings, [], `${args.join(" ")}`);
  }
});

Deno.test("a start with --oidc.clientsecret logs the warning, never the secret", async () => {
  // No Kubernetes credentials: the process warns, then stops with exit 3 before any request.
  await using refresher = spawnRefresher({
    env: BASE_ENV,
    args: [`--oidc.clientsecret`, SECRET, "--http.address=off"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 3, output);
  assertMatch(output, /WARN +The client secret was given as --oidc\.clientsecret/);
  assertNotIncludes(output, SECRET);
});
