/**
 * `deno task test`: every test, with the real-pod test beside the others instead of after them.
 *
 * The real-pod test (`tests/node_test.ts`) spends about eight of its eleven minutes waiting for
 * the kubelet to rotate a service-account token, with the machine nearly idle. Run in sequence it
 * would add those minutes to every CI run, so it runs as a second `deno test` process while the
 * others run in the first. Its output is printed after theirs, in one piece, followed by one
 * summary line for both in Deno's own format (`ok | N passed | M failed`).
 *
 * With arguments (`deno task test src/`), it is plain `deno test` with those arguments.
 *
 * @module
 */

/** The test files that run in a process of their own, beside the others. */
const BESIDE = ["tests/node_test.ts"];

/** The counts of one `deno test` summary line. */
interface Summary {
  ok: boolean;
  passed: number;
  failed: number;
  ignored: number;
}

/**
 * Reads the last summary line of a `deno test` run.
 *
 * @param output What the run printed.
 * @returns Its counts, or undefined when it printed no summary.
 */
export function lastSummary(output: string): Summary | undefined {
  const lines = output.split("\n").filter((line) => /^(ok|FAILED) \| \d+ passed/.test(line));
  const line = lines.at(-1);
  if (line === undefined) return undefined;
  const count = (word: string) => Number(line.match(new RegExp(`(\\d+) ${word}`))?.[1] ?? 0);
  return {
    ok: line.startsWith("ok"),
    passed: count("passed"),
    failed: count("failed"),
    ignored: count("ignored"),
  };
}

function denoTest(
  args: string[],
  output: { stdout: "inherit" | "piped"; stderr: "inherit" | "piped" },
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", "--permit-no-files", ...args],
    ...output,
    stdin: "null",
  }).spawn();
}

if (import.meta.main) {
  if (Deno.args.length > 0) {
    const all = denoTest(Deno.args, { stdout: "inherit", stderr: "inherit" });
    Deno.exit((await all.status).code);
  }
  const beside = denoTest(BESIDE, { stdout: "piped", stderr: "piped" });
  const besideOutput = beside.output();
  // The main run streams as it goes (its stderr straight through), and is kept for its summary.
  const main = denoTest(BESIDE.map((file) => `--ignore=${file}`), {
    stdout: "piped",
    stderr: "inherit",
  });
  const decoder = new TextDecoder();
  let mainText = "";
  for await (const chunk of main.stdout) {
    await Deno.stdout.write(chunk);
    mainText += decoder.decode(chunk, { stream: true });
  }
  const mainStatus = await main.status;
  const besideResult = await besideOutput;
  const besideText = decoder.decode(besideResult.stdout) + decoder.decode(besideResult.stderr);
  console.log(`\n==> ${BESIDE.join(", ")} (ran beside the others)\n`);
  console.log(besideText);
  const summaries = [lastSummary(mainText), lastSummary(besideText)];
  const counted = summaries.filter((s): s is Summary => s !== undefined);
  if (counted.length < summaries.length) {
    console.log("FAILED | a test run printed no summary");
    Deno.exit(1);
  }
  const total: Summary = { ok: true, passed: 0, failed: 0, ignored: 0 };
  for (const s of counted) {
    total.ok &&= s.ok;
    total.passed += s.passed;
    total.failed += s.failed;
    total.ignored += s.ignored;
  }
  const ok = total.ok && mainStatus.success && besideResult.success;
  const ignored = total.ignored > 0 ? ` | ${total.ignored} ignored` : "";
  console.log(
    `\n${ok ? "ok" : "FAILED"} | ${total.passed} passed | ${total.failed} failed${ignored}`,
  );
  Deno.exit(ok ? 0 : 1);
}
