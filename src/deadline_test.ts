import { assert, assertEquals } from "../tests/assert.ts";
import { startDeadline } from "./deadline.ts";

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

Deno.test("startDeadline() lets go of its timer and of the caller's signal once disposed", () => {
  // Deno's sanitizers fail this test if the 60 s timer were still pending at its end.
  const parent = new AbortController();
  let signal: AbortSignal;
  {
    using deadline = startDeadline(60_000, parent.signal);
    signal = deadline.signal;
  }
  parent.abort();
  assert(!signal.aborted, "a disposed deadline must not follow the caller's signal any more");
});
