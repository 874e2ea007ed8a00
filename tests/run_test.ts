import { assertEquals } from "./assert.ts";
import { lastSummary } from "./run.ts";

Deno.test("the test runner reads Deno's summary line: passed, failed, ignored, and the last one wins", () => {
  const output = [
    "ok | 3 passed | 0 failed (1s)",
    "some test ... ok (2ms)",
    "FAILED | 350 passed (28 steps) | 2 failed | 1 ignored (2m19s)",
    "",
  ].join("\n");
  assertEquals(lastSummary(output), { ok: false, passed: 350, failed: 2, ignored: 1 });
  assertEquals(lastSummary("ok | 0 passed | 0 failed (0ms)\n"), {
    ok: true,
    passed: 0,
    failed: 0,
    ignored: 0,
  });
  assertEquals(lastSummary("error: Module not found\n"), undefined);
});
