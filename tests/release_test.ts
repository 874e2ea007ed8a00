/**
 * The shipping pieces against the project's single sources:
 *
 * - the version: deno.json's `version`, which `--version` prints and a release tag must equal;
 * - the permissions: deno.json's `kubeconfig` set for the release binaries (the `compile` task)
 *   and its least-privilege `incluster` set for the image's binary (the `compile:incluster` task);
 * - the compile flags: those two tasks, which the release workflow and the Dockerfile repeat;
 * - the Deno version: `.deno-version`, which the workflows and the Dockerfile use.
 *
 * The Dockerfile and the workflows cannot be run here (no Docker engine, no forge runner), so
 * they are read as data, and the shell steps that decide something (the tag check, the checksums)
 * are run with bash exactly as written.
 *
 * @module
 */
import { parse } from "yaml";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string): string => Deno.readTextFileSync(new URL(path, ROOT));

const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
];
const LINUX_TARGETS = TARGETS.filter((target) => target.endsWith("-linux-gnu"));
const BINARY = "kube-token-refresher";

interface DenoJson {
  version: string;
  tasks: Record<string, string>;
  permissions: Record<string, unknown>;
}

function denoJson(): DenoJson {
  return JSON.parse(read("deno.json"));
}

function pinnedDenoVersion(): string {
  const pin = read(".deno-version").trim();
  assertMatch(pin, /^\d+\.\d+\.\d+$/);
  return pin;
}

// --- workflows as data -------------------------------------------------------------------------

interface Step {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
  "working-directory"?: string;
}

interface Job {
  needs?: string | string[];
  "runs-on": string;
  permissions?: Record<string, string>;
  strategy?: { matrix?: Record<string, unknown> };
  env?: Record<string, string>;
  outputs?: Record<string, string>;
  steps: Step[];
}

interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  env?: Record<string, string>;
  jobs: Record<string, Job>;
}

function workflow(name: string): Workflow {
  const data = parse(read(`.github/workflows/${name}`)) as Workflow;
  assert(data && typeof data === "object" && data.jobs, `${name} has no jobs`);
  return data;
}

function job(wf: Workflow, name: string): Job {
  const found = wf.jobs[name];
  assert(found, `no job "${name}" (jobs: ${Object.keys(wf.jobs).join(", ")})`);
  return found;
}

function needs(j: Job): string[] {
  return j.needs === undefined ? [] : [j.needs].flat();
}

function stepsUsing(j: Job, action: string): Step[] {
  return j.steps.filter((step) => step.uses?.split("@")[0] === action);
}

function stepRunning(j: Job, pattern: RegExp): Step {
  const found = j.steps.filter((step) => step.run !== undefined && pattern.test(step.run));
  assertEquals(found.length, 1, `exactly one step runs ${pattern}`);
  return found[0];
}

/** The value of `$NAME` as the step sees it: step env, then job env, then workflow env. */
function envValue(wf: Workflow, j: Job, step: Step, word: string): string {
  const name = word.match(/^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/)?.[1];
  if (name === undefined) return word;
  const value = step.env?.[name] ?? j.env?.[name] ?? wf.env?.[name];
  assert(value !== undefined, `$${name} is not set in the step, its job or the workflow`);
  return value;
}

/**
 * Runs a `run:` script the way the runner does for `shell: bash`
 * (`bash --noprofile --norc -eo pipefail`), in `cwd`, with only `env` (plus PATH and HOME).
 */
async function runStep(
  script: string,
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = await Deno.makeTempFile({ suffix: ".sh" });
  try {
    await Deno.writeTextFile(file, script);
    const out = await new Deno.Command("bash", {
      args: ["--noprofile", "--norc", "-eo", "pipefail", file],
      cwd,
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: cwd, ...env },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } finally {
    await Deno.remove(file);
  }
}

function outputs(file: string): Record<string, string> {
  const entries = Deno.readTextFileSync(file).split("\n").filter((line) => line.includes("="));
  return Object.fromEntries(
    entries.map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

// --- shell and deno compile command lines ------------------------------------------------------

/** Splits a script into simple commands and those into words (quotes removed; no expansion). */
function shellCommands(script: string): string[][] {
  const commands: string[][] = [];
  for (const line of script.replace(/\\\r?\n/g, " ").split("\n")) {
    for (const part of line.replace(/(^|\s)#.*$/, "").split(/&&|\|\||;|\|/)) {
      const words = [...part.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) =>
        m[1] ?? m[2] ?? m[3]
      );
      if (words.length > 0) commands.push(words);
    }
  }
  return commands;
}

interface CompileCall {
  /** Deno's flags other than `--target` and `--output`. */
  flags: string[];
  target?: string;
  output?: string;
  entry: string;
  /** Arguments baked into the binary (after the entrypoint). */
  args: string[];
}

function compileCalls(script: string): CompileCall[] {
  return shellCommands(script)
    .filter((words) => words[0] === "deno" && words[1] === "compile")
    .map((words) => {
      const call: CompileCall = { flags: [], entry: "", args: [] };
      const rest = words.slice(2);
      for (let i = 0; i < rest.length; i++) {
        const word = rest[i];
        if (call.entry) call.args.push(word);
        else if (word === "--target") call.target = rest[++i];
        else if (word.startsWith("--target=")) call.target = word.slice("--target=".length);
        else if (word === "--output" || word === "-o") call.output = rest[++i];
        else if (word.startsWith("--output=")) call.output = word.slice("--output=".length);
        else if (word.startsWith("-")) call.flags.push(word);
        else call.entry = word;
      }
      assert(call.entry, `no entrypoint in: ${words.join(" ")}`);
      return call;
    });
}

function compileTask(name: string): CompileCall {
  const task = denoJson().tasks[name];
  assert(task, `deno.json has no \`${name}\` task`);
  const calls = compileCalls(task);
  assertEquals(calls.length, 1, "the compile task runs deno compile once");
  return calls[0];
}

// --- the Dockerfile as data --------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  from: string;
  name?: string;
  platform?: string;
  instructions: Instruction[];
}

interface Dockerfile {
  /** `ARG` defaults declared before the first `FROM`. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

function dockerfile(): Dockerfile {
  const lines = read("Dockerfile").split("\n").filter((line) => !/^\s*#/.test(line));
  const logical = lines.join("\n").replace(/\\[ \t]*\n/g, " ").split("\n");
  const result: Dockerfile = { globalArgs: {}, stages: [] };
  for (const line of logical.map((l) => l.trim()).filter(Boolean)) {
    const match = line.match(/^(\S+)\s*(.*)$/);
    assert(match, `unreadable Dockerfile line: ${line}`);
    const keyword = match[1].toUpperCase();
    const args = match[2];
    if (keyword === "FROM") {
      const from = args.match(/^(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i);
      assert(from, `unreadable FROM: ${args}`);
      result.stages.push({ platform: from[1], from: from[2], name: from[3], instructions: [] });
    } else if (result.stages.length === 0) {
      assertEquals(keyword, "ARG", `only ARG may come before the first FROM, found ${keyword}`);
      const [name, value = ""] = args.split("=", 2);
      result.globalArgs[name] = value;
    } else {
      result.stages.at(-1)!.instructions.push({ keyword, args });
    }
  }
  assert(result.stages.length >= 2, "the Dockerfile has a build stage and a final stage");
  return result;
}

function expandArgs(text: string, args: Record<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced, bare) => {
    const name = braced ?? bare;
    assert(name in args, `\${${name}} has no ARG default before the first FROM`);
    return args[name];
  });
}

function instructions(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword);
}

/** `.dockerignore` decides whether `path` is in the build context (the forms used there only). */
function inBuildContext(path: string, patterns: string[]): boolean {
  let included = true;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const pattern = negated ? raw.slice(1) : raw;
    assert(
      pattern === "*" || !/[*?[\]]/.test(pattern),
      `.dockerignore pattern "${raw}" is beyond what this test reads; extend inBuildContext()`,
    );
    if (covers(pattern, path)) included = negated;
  }
  return included;
}

/** Whether a COPY source or ignore pattern names `path` itself or a folder above it. */
function covers(pattern: string, path: string): boolean {
  const clean = pattern.replace(/^\.\//, "").replace(/\/$/, "");
  return clean === "*" || clean === "." || path === clean || path.startsWith(`${clean}/`);
}

// --- the version -------------------------------------------------------------------------------

Deno.test("main.ts --version under the incluster permission set prints deno.json's version", async () => {
  await using refresher = spawnRefresher({ args: ["--version"] });
  const { code, output } = await refresher.exited;
  assertEquals(code, 0, `exit code, output:\n${output}`);
  // The same rule as the release workflow's check of the compiled binary: last word of line 1.
  const printed = output.split("\n")[0].trim().split(/\s+/).at(-1);
  assertEquals(printed, denoJson().version, "--version output");
});

Deno.test("release.yml runs on v* tags only", () => {
  const on = workflow("release.yml").on;
  assertEquals(Object.keys(on), ["push"]);
  assertEquals(on.push, { tags: ["v*"] });
});

Deno.test("release.yml accepts a tag only when it equals v + deno.json's version", async () => {
  const wf = workflow("release.yml");
  const version = job(wf, "version");
  const script = stepRunning(version, /GITHUB_REF_NAME/).run!;
  assertStringIncludes(script, "deno.json");

  const check = async (denoVersion: string, tag: string) => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify({ version: denoVersion }));
      const out = `${dir}/github_output`;
      await Deno.writeTextFile(out, "");
      const result = await runStep(script, dir, {
        GITHUB_REF_NAME: tag,
        GITHUB_REPOSITORY: "Some-Owner/kube-token-refresher",
        GITHUB_OUTPUT: out,
      });
      return { ...result, outputs: outputs(out) };
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };

  const ok = await check("1.2.3", "v1.2.3");
  assertEquals(ok.code, 0, `matching tag refused: ${ok.stdout}${ok.stderr}`);
  assertEquals(ok.outputs, {
    version: "1.2.3",
    prerelease: "false",
    image: "ghcr.io/some-owner/kube-token-refresher",
  });

  const rc = await check("2.0.0-rc.1", "v2.0.0-rc.1");
  assertEquals(rc.code, 0, `matching pre-release tag refused: ${rc.stdout}${rc.stderr}`);
  assertEquals(rc.outputs.prerelease, "true");

  for (
    const [denoVersion, tag] of [["1.2.3", "v1.2.4"], ["1.2.3", "1.2.3"], ["", "v"], [
      "1.2",
      "v1.2",
    ]]
  ) {
    const refused = await check(denoVersion, tag);
    assert(refused.code !== 0, `tag ${tag} with deno.json ${denoVersion} was accepted`);
    assertStringIncludes(refused.stdout, "::error");
    assertEquals(refused.outputs, {}, "no outputs after a refusal");
  }

  const current = await check(denoJson().version, `v${denoJson().version}`);
  assertEquals(
    current.code,
    0,
    `deno.json's own version is not a releasable tag: ${current.stdout}`,
  );
});

Deno.test("release.yml builds nothing before the tag check and checks the binary's --version", () => {
  const wf = workflow("release.yml");
  for (const name of ["compile", "image", "release"]) {
    assert(needs(job(wf, name)).includes("version"), `job ${name} needs the version job`);
  }
  assertEquals(job(wf, "version").outputs?.version, "${{ steps.version.outputs.version }}");

  const compile = job(wf, "compile");
  assertEquals(compile.env?.VERSION, "${{ needs.version.outputs.version }}");
  const smoke = stepRunning(compile, /--version/);
  assertEquals(
    smoke.if,
    "matrix.target == 'x86_64-unknown-linux-gnu'",
    "runs on the runner's own platform",
  );
  assertStringIncludes(smoke.run!, `dist/${BINARY}-$TARGET" --version`);
  assertStringIncludes(smoke.run!, `"$printed" != "$VERSION"`);
  assertStringIncludes(smoke.run!, "exit 1");
});

// --- the binaries ------------------------------------------------------------------------------

Deno.test("release.yml compiles all four targets with the kubeconfig permission set", () => {
  const wf = workflow("release.yml");
  const compile = job(wf, "compile");
  assertEquals(
    [...(compile.strategy?.matrix?.target as string[])].sort(),
    [...TARGETS].sort(),
    "compile matrix targets",
  );
  const step = stepRunning(compile, /deno compile/);
  const calls = compileCalls(step.run!);
  assertEquals(calls.length, 1);
  const [call] = calls;
  assert(call.flags.includes("--permission-set=kubeconfig"), `flags: ${call.flags.join(" ")}`);
  assertEquals(envValue(wf, compile, step, call.target!), "${{ matrix.target }}", "--target");
  assertEquals(call.output, `dist/${BINARY}-$TARGET`);

  const install = stepRunning(compile, /deno install/);
  assertEquals(install.run!.trim(), "deno install --frozen");
  assert(compile.steps.indexOf(install) < compile.steps.indexOf(step), "install before compile");
});

Deno.test("release binaries are the compile task's build, the image's binary the compile:incluster task's", () => {
  const laptop = compileTask("compile");
  const image = compileTask("compile:incluster");
  assert(laptop.flags.includes("--permission-set=kubeconfig"), `compile: ${laptop.flags}`);
  assert(image.flags.includes("--permission-set=incluster"), `compile:incluster: ${image.flags}`);
  const release = compileCalls(
    stepRunning(job(workflow("release.yml"), "compile"), /deno compile/).run!,
  );
  const docker = dockerfile().stages[0].instructions
    .filter((i) => i.keyword === "RUN")
    .flatMap((i) => compileCalls(i.args));
  assertEquals(docker.length, 1, "one deno compile in the Dockerfile's build stage");
  for (
    const [where, call, task] of [
      ["release.yml", release[0], laptop],
      ["Dockerfile", docker[0], image],
    ] as const
  ) {
    assertEquals(call.flags, task.flags, `${where}: flags`);
    assertEquals(call.entry, task.entry, `${where}: entrypoint`);
    assertEquals(call.args, task.args, `${where}: baked-in arguments`);
  }
  // `deno task start` runs exactly what the release binary has baked in.
  assertStringIncludes(denoJson().tasks.start, "--permission-set=kubeconfig");
});

Deno.test("the permission sets: incluster is least privilege, kubeconfig adds exactly env and run", () => {
  const sets = denoJson().permissions as Record<string, Record<string, unknown>>;
  assertEquals(Object.keys(sets).sort(), ["incluster", "kubeconfig"]);
  // In a pod: the network, reading the service account and the CA files, and only the variables
  // it needs by name (the proxy ones only to name a failing proxy; the pod's name for Events). No subprocess, no writing, no
  // system information.
  assertEquals(Object.keys(sets.incluster).sort(), ["env", "net", "read"]);
  assert(Array.isArray(sets.incluster.env), "incluster reads variables by name only");
  assert(
    (sets.incluster.env as string[]).every((name) =>
      name === "KTR_*" || name.startsWith("KUBERNETES_SERVICE_") || /^LOG_/.test(name) ||
      /^(HTTPS?|NO)_PROXY$/i.test(name) || name === "POD_NAME" || name === "HOSTNAME"
    ),
    `incluster env: ${sets.incluster.env}`,
  );
  // On a laptop: a kubeconfig exec plugin is a program the kubeconfig names (so `run` cannot be
  // narrowed to a list) and it inherits the environment (cloud CLIs read their own variables).
  assertEquals(sets.kubeconfig, { env: true, net: true, read: true, run: true });
});

Deno.test("no permission is spelt out as --allow-* or -A where the binary is built", () => {
  for (const file of [".github/workflows/release.yml", "Dockerfile"]) {
    const text = read(file);
    assert(!/--allow-|\s-A(\s|$)|--unsafely-/.test(text), `${file} spells out permissions`);
  }
});

Deno.test("release.yml publishes the four binaries and their SHA-256 checksums", async () => {
  const wf = workflow("release.yml");
  const compile = job(wf, "compile");
  const upload = stepsUsing(compile, "actions/upload-artifact");
  assertEquals(upload.length, 1);
  assertEquals(upload[0].with?.path, `dist/${BINARY}-\${{ matrix.target }}`);
  assertEquals(upload[0].with?.name, "binary-${{ matrix.target }}");

  const release = job(wf, "release");
  assertEquals(release.permissions, { contents: "write" });
  for (const name of ["compile", "image"]) {
    assert(needs(release).includes(name), `release needs ${name}`);
  }
  const download = stepsUsing(release, "actions/download-artifact");
  assertEquals(download.length, 1);
  assertEquals(download[0].with, { pattern: "binary-*", path: "dist", "merge-multiple": true });

  // Run the checksum step on four stand-in binaries and verify its file.
  const sums = stepRunning(release, /sha256sum/);
  assertEquals(sums["working-directory"], "dist");
  const dir = await Deno.makeTempDir();
  try {
    const expected: string[] = [];
    for (const target of TARGETS) {
      const bytes = new TextEncoder().encode(`binary for ${target}`);
      await Deno.writeFile(`${dir}/${BINARY}-${target}`, bytes);
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
      expected.push(`${hex}  ${BINARY}-${target}`);
    }
    const result = await runStep(sums.run!, dir, {});
    assertEquals(result.code, 0, result.stderr);
    const file = (await Deno.readTextFile(`${dir}/SHA256SUMS`)).trim().split("\n").sort();
    assertEquals(file, expected.sort(), "SHA256SUMS");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }

  const publish = stepRunning(release, /gh release create/);
  const words = shellCommands(publish.run!).find((w) => w[0] === "gh")!;
  assert(words.includes(`dist/${BINARY}-*`), "the binaries are attached");
  assert(words.includes("dist/SHA256SUMS"), "the checksums are attached");
  assert(words.includes("--verify-tag"), "the release is made for the pushed tag only");
});

// --- the container image -----------------------------------------------------------------------

Deno.test("release.yml pushes a linux/amd64 + linux/arm64 image of the Dockerfile to ghcr.io", () => {
  const wf = workflow("release.yml");
  const image = job(wf, "image");
  assertEquals(image.permissions, { contents: "read", packages: "write" });
  const login = stepsUsing(image, "docker/login-action");
  assertEquals(login.length, 1);
  assertEquals(login[0].with?.registry, "ghcr.io");
  const build = stepsUsing(image, "docker/build-push-action");
  assertEquals(build.length, 1);
  const options = build[0].with!;
  assertEquals(options.context, ".", "built from the repository's Dockerfile");
  assert(options.file === undefined, "no other Dockerfile");
  assertEquals(String(options.platforms).split(",").sort(), ["linux/amd64", "linux/arm64"]);
  assertEquals(options.push, true);
  const buildArgs = String(options["build-args"]).trim().split("\n");
  assert(
    buildArgs.includes("VERSION=${{ needs.version.outputs.version }}"),
    `build-args: ${buildArgs}`,
  );
  assert(buildArgs.some((arg) => arg.startsWith("SOURCE=")), `build-args: ${buildArgs}`);
  const tags = stepRunning(image, /"\$IMAGE:\$VERSION"/);
  assertEquals(tags.env?.IMAGE, "${{ needs.version.outputs.image }}");
});

Deno.test("Dockerfile: base images pinned, the Deno image is the pinned Deno version", () => {
  const file = dockerfile();
  assertEquals(
    file.globalArgs.DENO_VERSION,
    pinnedDenoVersion(),
    "ARG DENO_VERSION vs .deno-version",
  );
  for (const stage of file.stages) {
    const image = expandArgs(stage.from, file.globalArgs);
    const [, name, tag, digest] =
      image.match(/^([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$/) ?? [];
    assert(name, `unreadable image reference: ${image}`);
    assert(tag || digest, `${image} has neither a tag nor a digest`);
    assert(digest || tag !== "latest", `${image} uses the moving tag latest`);
  }
  const build = expandArgs(file.stages[0].from, file.globalArgs);
  assertEquals(build, `denoland/deno:debian-${pinnedDenoVersion()}`, "build image");
  assertEquals(file.stages[0].platform, "$BUILDPLATFORM", "the build stage cross-compiles");
  const run = file.stages[0].instructions.filter((i) => i.keyword === "RUN").map((i) => i.args)
    .join("\n");
  for (const target of LINUX_TARGETS) assertStringIncludes(run, target);
  assertStringIncludes(run, "deno install --frozen");
});

Deno.test("Dockerfile: final stage is distroless cc, non-root, no shell, the binary as entrypoint", () => {
  const file = dockerfile();
  const final = file.stages.at(-1)!;
  const image = expandArgs(final.from, file.globalArgs);
  assertMatch(image, /^gcr\.io\/distroless\/cc-debian\d+:nonroot(@sha256:[0-9a-f]{64})?$/);
  assert(!image.includes("debug"), "debug variants carry a shell");
  for (const keyword of ["RUN", "SHELL"]) {
    assertEquals(
      instructions(final, keyword).length,
      0,
      `${keyword} in the final stage needs a shell`,
    );
  }

  const user = instructions(final, "USER").at(-1)?.args;
  assert(user, "the final stage sets USER");
  const [uid, gid] = user.split(":");
  assertMatch(uid, /^\d+$/);
  assert(uid !== "0" && gid !== "0", `USER ${user} is root`);

  const copies = instructions(final, "COPY").map((i) => i.args.split(/\s+/));
  const binary = copies.find((words) => words[0] === "--from=build");
  assert(binary, "the final stage copies the binary from the build stage");
  assertEquals(binary.slice(1), [`/out/${BINARY}`, `/${BINARY}`]);
  const compile = file.stages[0].instructions.filter((i) => i.keyword === "RUN")
    .flatMap((i) => compileCalls(i.args));
  assertEquals(compile[0].output, `/out/${BINARY}`, "the build stage writes the copied file");

  const entrypoints = instructions(final, "ENTRYPOINT");
  assertEquals(entrypoints.length, 1);
  assertEquals(JSON.parse(entrypoints[0].args), [`/${BINARY}`], "exec-form ENTRYPOINT");
  assertEquals(instructions(final, "CMD").length, 0);
});

Deno.test("Dockerfile: OCI labels for source, version and licence", () => {
  const final = dockerfile().stages.at(-1)!;
  const labels = Object.fromEntries(
    instructions(final, "LABEL").flatMap((i) =>
      [...i.args.matchAll(/([\w.-]+)="([^"]*)"/g)].map((m) => [m[1], m[2]])
    ),
  );
  assertEquals(labels["org.opencontainers.image.source"], "${SOURCE}");
  assertEquals(labels["org.opencontainers.image.version"], "${VERSION}");
  assertEquals(labels["org.opencontainers.image.licenses"], "Apache-2.0");
  const args = instructions(final, "ARG").map((i) => i.args.split("=")[0]);
  for (const name of ["SOURCE", "VERSION"]) {
    assert(args.includes(name), `ARG ${name} in the final stage`);
  }
});

Deno.test("Dockerfile: the build context and COPY carry every local module of main.ts", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  const local = info.modules
    .map((m) => m.specifier)
    .filter((specifier) => specifier.startsWith(ROOT.href))
    .map((specifier) => decodeURIComponent(specifier.slice(ROOT.href.length)));
  assert(local.includes("main.ts") && local.length > 1, `local modules: ${local}`);

  const ignore = read(".dockerignore").split("\n").map((l) => l.trim()).filter((l) =>
    l && !l.startsWith("#")
  );
  const sources = instructions(dockerfile().stages[0], "COPY")
    .map((i) => i.args.split(/\s+/))
    .filter((words) => !words[0].startsWith("--"))
    .flatMap((words) => words.slice(0, -1));
  for (const path of [...local, "deno.json", "deno.lock"]) {
    assert(inBuildContext(path, ignore), `.dockerignore keeps ${path} out of the build context`);
    assert(
      sources.some((source) => covers(source, path)),
      `no COPY in the build stage brings ${path}`,
    );
  }
  assert(!inBuildContext("tests/release_test.ts", ignore), "tests stay out of the build context");
});

// --- workflows in general ----------------------------------------------------------------------

Deno.test("every action in the workflows is pinned to a full commit SHA with its tag noted", () => {
  for (const name of ["ci.yml", "release.yml"]) {
    const lines = read(`.github/workflows/${name}`).split("\n").filter((l) =>
      /^\s*-?\s*uses:/.test(l)
    );
    assert(lines.length > 0, `${name} uses no action`);
    for (const line of lines) {
      assertMatch(line, /uses: [\w.-]+\/[\w.\/-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$/);
    }
  }
});

Deno.test("every Deno set up by a workflow is the one in .deno-version", () => {
  pinnedDenoVersion();
  let setups = 0;
  for (const name of ["ci.yml", "release.yml"]) {
    for (const j of Object.values(workflow(name).jobs)) {
      for (const step of stepsUsing(j, "denoland/setup-deno")) {
        setups++;
        assertEquals(step.with, { "deno-version-file": ".deno-version" }, `${name}: setup-deno`);
      }
    }
  }
  assert(setups > 0, "release.yml sets up Deno");
  assertStringIncludes(read(".ci/run"), ".deno-version", ".ci/run installs the pinned Deno");
});

Deno.test("ci.yml runs .ci/run on pushes and pull requests, with the test stack cached", () => {
  const wf = workflow("ci.yml");
  assert("push" in wf.on && "pull_request" in wf.on, `triggers: ${Object.keys(wf.on)}`);
  assertEquals(wf.permissions, { contents: "read" });
  const checks = job(wf, "checks");
  assertEquals(stepRunning(checks, /\.ci\/run/).run!.trim(), "bash .ci/run");

  const go = stepsUsing(checks, "actions/setup-go");
  assertEquals(go.length, 1);
  assertEquals(go[0].with?.["go-version-file"], "tests/stack/go.mod");
  assertEquals(go[0].with?.["cache-dependency-path"], "tests/stack/go.sum");

  const caches = stepsUsing(checks, "actions/cache");
  const stack = caches.find((step) => step.with?.path === "~/.cache/kube-token-refresher");
  assert(stack, "the stack and tools folder is cached");
  for (const input of ["tests/stack/go.sum", "tests/stack/go.mod", ".deno-version"]) {
    assertStringIncludes(String(stack.with?.key), `'${input}'`);
  }
  const run = checks.steps.findIndex((step) => step.run?.includes(".ci/run"));
  assert(checks.steps.indexOf(stack) < run, "cache restored before .ci/run");
});

Deno.test("LICENSE is the Apache License 2.0, as the image label says", () => {
  const text = read("LICENSE");
  assertStringIncludes(
    text,
    "Apache License\n                           Version 2.0, January 2004",
  );
  assertStringIncludes(text, "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION");
  assertStringIncludes(text, "END OF TERMS AND CONDITIONS");
  assertStringIncludes(text, "Copyright 2026 The kube-token-refresher authors");
  assert(!text.includes("[yyyy]"), "the copyright line is filled in");
});

// --- README's install section against the workflow ----------------------------------------------

Deno.test("README's install section names the releases page, the image as published, and which build is which", async () => {
  const readme = read("README.md");
  const install = readme.slice(readme.indexOf("## Install"), readme.indexOf("## Configuration"));
  // The image name the version step computes, for a repository named like this one.
  const script = stepRunning(job(workflow("release.yml"), "version"), /GITHUB_REF_NAME/).run!;
  const dir = await Deno.makeTempDir();
  let image: string;
  try {
    await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify({ version: "0.1.0" }));
    await Deno.writeTextFile(`${dir}/out`, "");
    const result = await runStep(script, dir, {
      GITHUB_REF_NAME: "v0.1.0",
      GITHUB_REPOSITORY: "OWNER/kube-token-refresher",
      GITHUB_OUTPUT: `${dir}/out`,
    });
    assertEquals(result.code, 0, result.stderr);
    image = outputs(`${dir}/out`).image;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const documented = image.replace("owner", "<owner>");
  assertEquals(documented, "ghcr.io/<owner>/kube-token-refresher");
  assertStringIncludes(install, `\`${documented}\``);
  assertStringIncludes(install, "`https://github.com/<owner>/kube-token-refresher/releases`");
  // A pinned-digest example that kustomize takes.
  assertMatch(
    install,
    new RegExp(`newName: ${documented.replaceAll(".", "\\.")}\\n\\s+digest: sha256:[0-9a-f]{64}`),
  );
  for (const target of TARGETS) assertStringIncludes(install, `\`${BINARY}-${target}\``);
  // Which build goes where, as the workflow and the Dockerfile do it.
  const rows = install.split("\n").filter((line) =>
    line.startsWith("| kubeconfig") || line.startsWith("| in-cluster")
  );
  assertEquals(rows.length, 2, "the two builds' rows");
  assertMatch(rows[0], /releases page.*`kubeconfig`/);
  assertMatch(rows[1], /container image.*`incluster`/);
});

Deno.test("README's build commands are deno.json's tasks, writing where README says", () => {
  const readme = read("README.md");
  const building = readme.slice(readme.indexOf("## Building"), readme.indexOf("## Development"));
  const lines = [...building.matchAll(/^deno task (\S+)\s+# (dist\/\S+?):? /gm)];
  const tasks = denoJson().tasks;
  assertEquals(lines.map((m) => m[1]).sort(), ["bundle", "compile", "compile:incluster"]);
  for (const [, name, path] of lines) {
    const words = tasks[name]?.split(/\s+/) ?? [];
    const output = words[words.findIndex((w) => w === "--output" || w === "--outdir") + 1];
    assertEquals(`${output}${path.endsWith("/") ? "/" : ""}`, path, `deno task ${name}`);
  }
  // What compile needs, said next to it.
  assertMatch(building.replace(/\s+/g, " "), /downloads it from Deno's download site/);
  assertMatch(building.replace(/\s+/g, " "), /releases page .*need nothing/);
});

Deno.test(".ci/run approves deno's install script before it installs Deno from npm", () => {
  const script = read(".ci/run");
  const approve = script.search(/"allowScripts": \{"deno": true\}.*>"\$prefix\/package\.json"/);
  const install = script.search(/npm install [^\n]*"deno@\$deno_version"/);
  assert(approve >= 0, "a package.json with allowScripts for deno is written into the prefix");
  assert(install > approve, "before npm install");
  // README's global install approves it the same way.
  assertMatch(read("README.md"), /npm install -g --allow-scripts=deno deno@/);
});
