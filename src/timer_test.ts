import { assert, assertEquals } from "../tests/assert.ts";
import { MAX_TIMER_MS, startIdleTimer, startInterval, startTimer } from "./timer.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("startTimer calls back once when the time is up, not before", async () => {
  const started = performance.now();
  const calledAfter = await new Promise<number>((resolve) => {
    startTimer(30, () => resolve(performance.now() - started));
  });
  assert(calledAfter >= 29, `called after ${calledAfter} ms, asked for 30`);
});

Deno.test("startTimer does not call back once cancelled, by cancel() or by disposal", async () => {
  let calls = 0;
  const timer = startTimer(10, () => calls++);
  timer.cancel();
  timer.cancel();
  {
    using _disposed = startTimer(10, () => calls++);
  }
  await sleep(50);
  assertEquals(calls, 0);
});

Deno.test("startTimer counts negative and NaN delays as 0", async () => {
  let calls = 0;
  startTimer(-5, () => calls++);
  startTimer(Number.NaN, () => calls++);
  await sleep(30);
  assertEquals(calls, 2);
});

Deno.test("startTimer chains waits longer than one step, and fires once at the end", async () => {
  const started = performance.now();
  let calls = 0;
  await new Promise<void>((resolve) => {
    startTimer(60, () => {
      calls++;
      resolve();
    }, 25);
  });
  const elapsed = performance.now() - started;
  assert(elapsed >= 59, `fired after ${elapsed} ms, asked for 60 in steps of 25`);
  await sleep(40);
  assertEquals(calls, 1);
});

Deno.test("startTimer does not fire at once for a wait past Deno's 32-bit limit", async () => {
  // A bare timeout signal (or setTimeout) of 2^31 ms fires within milliseconds.
  let calls = 0;
  const timer = startTimer(MAX_TIMER_MS + 1, () => calls++);
  await sleep(100);
  timer.cancel();
  assertEquals(calls, 0);
});

Deno.test("startInterval calls back every period until cancelled", async () => {
  let calls = 0;
  const interval = startInterval(20, () => calls++);
  await sleep(115);
  interval.cancel();
  assert(calls >= 3 && calls <= 6, `${calls} calls in 115 ms at a 20 ms period`);
  const atCancel = calls;
  await sleep(60);
  assertEquals(calls, atCancel, "no call after cancel()");
});

Deno.test("startInterval can be cancelled from its own callback", async () => {
  let calls = 0;
  const interval = startInterval(10, () => {
    calls++;
    interval.cancel();
  });
  await sleep(60);
  assertEquals(calls, 1);
});

Deno.test("startIdleTimer fires once after a quiet stretch; each touch starts it again", async () => {
  let now = 0;
  let fired = 0;
  const idle = startIdleTimer(40, () => fired++, () => now);
  // Touched at 30 (of the clock it is given): the quiet stretch now ends at 70.
  now = 30;
  idle.touch();
  now = 45;
  await sleep(60);
  assertEquals(fired, 0, "not idle yet: touched 15 ms ago by its clock");
  now = 70;
  await sleep(60);
  assertEquals(fired, 1);
  await sleep(60);
  assertEquals(fired, 1, "fires only once");
});

Deno.test("startIdleTimer does not fire once cancelled", async () => {
  let fired = 0;
  const idle = startIdleTimer(15, () => fired++);
  idle.cancel();
  await sleep(50);
  assertEquals(fired, 0);
});

/** Runs a script in a fresh process and says how long it lived and what it printed. */
async function runScript(code: string): Promise<{ ms: number; out: string }> {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  return { ms, out: new TextDecoder().decode(output.stdout) };
}

Deno.test("a running timer keeps the process alive; a cancelled one does not", async () => {
  const url = new URL("./timer.ts", import.meta.url).href;
  const running = await runScript(
    `import { startTimer } from "${url}"; startTimer(300, () => console.log("fired"));`,
  );
  assertEquals(running.out, "fired\n", "the process waited for its timer");
  // Cancelled, a 20 s timer must not hold the process: it ends as soon as its script does.
  const cancelled = await runScript(
    `import { startTimer } from "${url}"; startTimer(20_000, () => console.log("fired")).cancel();`,
  );
  assertEquals(cancelled.out, "");
  assert(cancelled.ms < 15_000, `the process lived ${cancelled.ms} ms after cancelling`);
});
