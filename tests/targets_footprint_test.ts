/**
 * The footprint of many targets (bench/targets.ts, fake API): resident memory at 1,000 Secrets no
 * more than 25 MiB above one Secret, under the V8 flags of the compiled binary (--lite-mode), and
 * one apply per Secret per cycle. Figures are printed.
 */
import { assert, assertEquals } from "./assert.ts";
import { measureTargets } from "../bench/targets.ts";

Deno.test("targets: RSS at 1,000 Secrets stays within 25 MiB of one; one write per Secret per cycle", async () => {
  const [one, thousand] = await measureTargets([1, 1000], "--lite-mode");
  const mib = (b: number) => b / 2 ** 20;
  console.log(
    `targets footprint: rss ${mib(one.rssBytes).toFixed(1)} MiB at 1, ${
      mib(thousand.rssBytes).toFixed(1)
    } MiB at 1000 (+${
      mib(thousand.rssBytes - one.rssBytes).toFixed(1)
    }); one cycle ${one.cycleMs} ms / ${thousand.cycleMs} ms`,
  );
  assertEquals(one.writesPerCycle, 1);
  assertEquals(thousand.writesPerCycle, 1000);
  assert(mib(thousand.rssBytes - one.rssBytes) <= 25, "RSS grew by more than 25 MiB");
});
