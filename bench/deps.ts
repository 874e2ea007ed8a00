/**
 * Which dependencies a run can load and does load: the static module graph (`deno info`), the
 * modules V8 compiled in a running process (see {@linkcode compiledScripts}), and what the
 * `deno bundle` output holds.
 *
 * @module
 */
import { npmPackageOf, ROOT } from "./process.ts";

/** The npm packages of a module graph, split by how they are reached from the entrypoint. */
export interface StaticGraph {
  /** Reached through static imports only: loaded by every run. */
  staticPackages: string[];
  /** Reached only through a dynamic `import()`, with the module holding that import. */
  dynamicPackages: { name: string; importedBy: string[] }[];
}

interface InfoDependency {
  specifier: string;
  isDynamic?: boolean;
  code?: { specifier?: string };
  type?: { specifier?: string };
}

interface InfoModule {
  specifier: string;
  kind?: string;
  dependencies?: InfoDependency[];
}

/**
 * Reads the graph of `entry` with `deno info --json` and walks it from the entrypoint, following
 * static imports only; npm packages met at a dynamic import are listed apart.
 *
 * @param entry The entrypoint, relative to the repository root.
 * @returns The packages.
 */
export async function staticGraph(entry: string): Promise<StaticGraph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
    redirects: Record<string, string>;
  };
  const bySpecifier = new Map(info.modules.map((module) => [module.specifier, module]));
  const resolve = (specifier: string) => info.redirects[specifier] ?? specifier;
  const packageName = (specifier: string) =>
    specifier.replace(/^npm:\/?/, "").replace(/^(@[^/@]+\/[^/@]+|[^/@]+)@.*$/, "$1");
  const relative = (specifier: string) => specifier.replace(ROOT.href, "");

  const staticPackages = new Set<string>();
  const dynamic = new Map<string, Set<string>>();
  const seen = new Set<string>();
  const queue = info.roots.map(resolve);
  while (queue.length > 0) {
    const specifier = queue.shift()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      const target = dependency.code?.specifier;
      if (target === undefined) continue; // type-only
      const resolved = resolve(target);
      if (resolved.startsWith("npm:")) {
        const name = packageName(resolved);
        if (dependency.isDynamic) {
          dynamic.set(name, (dynamic.get(name) ?? new Set()).add(relative(specifier)));
        } else {
          staticPackages.add(name);
        }
      } else if (!dependency.isDynamic) {
        queue.push(resolved);
      }
    }
  }
  return {
    staticPackages: [...staticPackages].sort(),
    dynamicPackages: [...dynamic]
      .filter(([name]) => !staticPackages.has(name))
      .map(([name, importers]) => ({ name, importedBy: [...importers].sort() }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** What a running process has compiled, grouped. */
export interface LoadedModules {
  /** npm packages with the number of their modules compiled. */
  npmPackages: Record<string, number>;
  /** Node built-in modules (`node:` and Deno's implementation of them) compiled. */
  nodeBuiltins: number;
  /** The tool's own modules (files of the repository outside bench/). */
  ownModules: string[];
  /** Other files (a bundle and its chunks), relative to the repository root. */
  otherFiles: string[];
}

/**
 * Groups the script URLs of {@linkcode compiledScripts}.
 *
 * @param urls Script URLs.
 * @returns Packages, built-ins and files.
 */
export function groupScripts(urls: readonly string[]): LoadedModules {
  const npmPackages: Record<string, number> = {};
  let nodeBuiltins = 0;
  const ownModules: string[] = [];
  const otherFiles: string[] = [];
  for (const url of urls) {
    const name = npmPackageOf(url);
    if (name !== undefined) {
      npmPackages[name] = (npmPackages[name] ?? 0) + 1;
    } else if (url.startsWith("node:") || url.startsWith("ext:deno_node/")) {
      nodeBuiltins++;
    } else if (url.startsWith(ROOT.href)) {
      const path = url.slice(ROOT.href.length);
      if (/^(main\.ts|src\/)/.test(path)) ownModules.push(path);
      else otherFiles.push(path);
    }
  }
  return { npmPackages, nodeBuiltins, ownModules: ownModules.sort(), otherFiles };
}

/** A built bundle. */
export interface Bundle {
  /** The `deno bundle` arguments used (the task's, with the output moved under bench/out). */
  args: string[];
  /** The file `deno run` starts, relative to the repository root. */
  entry: string;
  /** Every output file with its size in bytes. */
  files: { path: string; bytes: number }[];
}

/**
 * Runs deno.json's `bundle` task with its output redirected into `outDir`, so the bench measures
 * whatever the task produces without touching dist/.
 *
 * @param outDir Where the output goes (emptied first).
 * @param command The command to run instead of the task's, to measure a change before making it.
 * @returns The bundle, or undefined when deno.json has no `bundle` task.
 * @throws {Error} When the task is not a single `deno bundle` command, or bundling fails.
 */
export async function buildBundle(outDir: URL, command?: string): Promise<Bundle | undefined> {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const task: string | undefined = command ?? denoJson.tasks?.bundle;
  if (task === undefined) return undefined;
  const words = task.trim().split(/\s+/);
  if (
    words[0] !== "deno" || words[1] !== "bundle" || words.some((w) => /^(&&|\|\||;|\|)$/.test(w))
  ) {
    throw new Error(`The bundle task is not one "deno bundle" command: ${task}`);
  }
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(outDir, { recursive: true });
  const dir = outDir.pathname.replace(/\/$/, "");
  const args: string[] = [];
  let outputFile: string | undefined;
  let outdir = false;
  const positional: string[] = [];
  const valued = new Set(["--output", "-o", "--outdir", "--external", "--format", "--packages"]);
  for (let i = 2; i < words.length; i++) {
    const word = words[i];
    const [flag, inline] = word.startsWith("--") && word.includes("=")
      ? [word.slice(0, word.indexOf("=")), word.slice(word.indexOf("=") + 1)]
      : [word, undefined];
    if (flag === "--output" || flag === "-o") {
      const original = inline ?? words[++i];
      outputFile = `${dir}/${original.slice(original.lastIndexOf("/") + 1)}`;
      args.push(`--output=${outputFile}`);
    } else if (flag === "--outdir") {
      if (inline === undefined) i++;
      outdir = true;
      args.push(`--outdir=${dir}`);
    } else {
      args.push(word);
      if (!word.startsWith("-")) positional.push(word);
      else if (valued.has(flag) && inline === undefined && i + 1 < words.length) {
        args.push(words[++i]);
      }
    }
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", ...args],
    cwd: ROOT.pathname,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno bundle failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const source = positional.at(-1) ?? "main.ts";
  const entryPath = outdir
    ? `${dir}/${source.slice(source.lastIndexOf("/") + 1).replace(/\.[cm]?[jt]sx?$/, "")}.js`
    : outputFile ?? `${dir}/${source.replace(/\.[cm]?[jt]sx?$/, "")}.js`;
  const files: { path: string; bytes: number }[] = [];
  for await (const entry of Deno.readDir(outDir)) {
    if (!entry.isFile) continue;
    const path = `${dir}/${entry.name}`;
    files.push({ path: path.replace(ROOT.pathname, ""), bytes: (await Deno.stat(path)).size });
  }
  files.sort((a, b) => b.bytes - a.bytes);
  return { args: ["bundle", ...args], entry: entryPath.replace(ROOT.pathname, ""), files };
}

/**
 * Bytes of a bundle file by origin, from the `// <module path>` line the bundler writes before
 * each module it inlines: npm packages by name, `(tool)` for main.ts, src/ and deno.json,
 * `(bundler)` for what comes before the first module.
 *
 * @param path The bundle file, relative to the repository root.
 * @returns Bytes per origin, largest first.
 */
export async function bundleComposition(path: string): Promise<Record<string, number>> {
  const text = await Deno.readTextFile(new URL(path, ROOT));
  const bytes = new Map<string, number>();
  let owner = "(bundler)";
  const encoder = new TextEncoder();
  for (const line of text.split("\n")) {
    const marker = line.match(/^\/\/ (\S+\.(?:[cm]?[jt]sx?|json))$/);
    if (marker) {
      const module = marker[1];
      owner = npmPackageOf(module) ??
        (/^(main\.ts|src\/|deno\.json)/.test(module) ? "(tool)" : "(other)");
    }
    bytes.set(owner, (bytes.get(owner) ?? 0) + encoder.encode(line).length + 1);
  }
  return Object.fromEntries([...bytes].sort((a, b) => b[1] - a[1]));
}
