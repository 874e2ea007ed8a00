import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { startDeadline, unlessAborted } from "./deadline.ts";

Deno.test("startDeadline() aborts its signal when the time is up and says it expired", async () => {
  using deadline = startDeadline(20);
  await new Promise((resolve) => deadline.signal.addEventListener("abort", resolve));
  assert(deadline.expired);
  assertEquals((deadline.signal.reason as DOMException).name, "TimeoutError");
});

Deno.test("startDeadline() passes the caller's abort on, without calling it expired", () => {
  const parent = new AbortController();
  using deadline = startDeadline(60_000, parent.signal);
  parent.abort();
  assert(deadline.signal.aborted);
  assert(!deadline.expired);
});

Deno.test("startDeadline() lets go of its timer and of the caller's signal once disposed", async () => {
  const parent = new AbortController();
  let signal: AbortSignal;
  let expired: () => boolean;
  {
    using deadline = startDeadline(10, parent.signal);
    signal = deadline.signal;
    expired = () => deadline.expired;
  }
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert(!signal.aborted && !expired(), "a disposed deadline's timer must not fire");
  parent.abort();
  assert(!signal.aborted, "a disposed deadline must not follow the caller's signal any more");
});

Deno.test("unlessAborted settles as the work does, or with the signal's reason first", async () => {
  const stop = new AbortController();
  assertEquals(await unlessAborted(Promise.resolve(7), stop.signal), 7);
  const failed = await assertRejects(
    () => unlessAborted(Promise.reject(new Error("work failed")), stop.signal),
    Error,
  );
  assertEquals(failed.message, "work failed");
  const never = new Promise<number>(() => {});
  const waiting = unlessAborted(never, stop.signal);
  stop.abort(new Error("stopped"));
  const err = await waiting.catch((e) => e);
  assertEquals((err as Error).message, "stopped");
  // Already aborted: rejects at once, without waiting for the work.
  const late = await unlessAborted(never, stop.signal).catch((e) => e);
  assertEquals((late as Error).message, "stopped");
});

Deno.test("unlessAborted handles the work's rejection when the signal was aborted first", async () => {
  // An unhandled rejection would fail this test (and every test after it in the file).
  const stop = new AbortController();
  stop.abort(new Error("stopped"));
  let rejectWork!: (err: Error) => void;
  const work = new Promise<never>((_, reject) => rejectWork = reject);
  const err = await unlessAborted(work, stop.signal).catch((e) => e);
  assertEquals((err as Error).message, "stopped");
  rejectWork(new Error("work failed after the abort"));
  await new Promise((resolve) => setTimeout(resolve, 10));
});
