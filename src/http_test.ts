/** The bounded body reader: whole bodies, the limit, and no 64 KiB buffer per small answer. */
import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { readBoundedBody } from "./http.ts";

const tooLarge = (declared: number | undefined) =>
  new Error(declared === undefined ? "grew too large" : `declared ${declared}`);

/** A loopback server answering `body`, with or without a content-length (chunked). */
async function withServer(
  body: string,
  chunked: boolean,
  use: (url: string) => Promise<void>,
): Promise<void> {
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    if (!chunked) return new Response(body);
    const bytes = new TextEncoder().encode(body);
    return new Response(
      new ReadableStream({
        start(controller) {
          // Several chunks, so the reader has to grow its buffer.
          for (let i = 0; i < bytes.length; i += 7_000) {
            controller.enqueue(bytes.subarray(i, i + 7_000));
          }
          controller.close();
        },
      }),
    );
  });
  await use(`http://127.0.0.1:${server.addr.port}/`);
}

for (const chunked of [false, true]) {
  const how = chunked ? "chunked" : "with content-length";
  Deno.test(`readBoundedBody reads a whole fetch body, ${how}`, async () => {
    const text = "a".repeat(40_000) + "end";
    await withServer(text, chunked, async (url) => {
      const body = await readBoundedBody(await fetch(url), 1 << 20, tooLarge);
      assertEquals(new TextDecoder().decode(body), text);
    });
    await withServer("", chunked, async (url) => {
      assertEquals((await readBoundedBody(await fetch(url), 10, tooLarge)).length, 0);
    });
  });

  Deno.test(`readBoundedBody refuses a fetch body over the limit, ${how}`, async () => {
    await withServer("b".repeat(5_000), chunked, async (url) => {
      const err = await assertRejects(
        async () => readBoundedBody(await fetch(url), 4_999, tooLarge),
        Error,
      );
      assertEquals(err.message, chunked ? "grew too large" : "declared 5000");
      // Exactly at the limit is accepted.
      assertEquals((await readBoundedBody(await fetch(url), 5_000, tooLarge)).length, 5_000);
    });
  });
}

Deno.test("readBoundedBody reads a body that is no byte stream, within the limit", async () => {
  const stream = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array([1, 2, 3]));
        controller.enqueue(new Uint8Array([4, 5]));
        controller.close();
      },
    });
  assertEquals([...await readBoundedBody(new Response(stream()), 5, tooLarge)], [1, 2, 3, 4, 5]);
  const err = await assertRejects(
    () => readBoundedBody(new Response(stream()), 4, tooLarge),
    Error,
  );
  assertEquals(err.message, "grew too large");
});

Deno.test("readBoundedBody does not leave a 64 KiB buffer behind per small fetch body", async () => {
  // Deno's default reader hands each chunk of a fetch body in a fresh 64 KiB buffer outside the
  // V8 heap; 30 small answers read that way add about 2 MiB of external memory until a collection.
  await withServer("c".repeat(1_500), false, async (url) => {
    await readBoundedBody(await fetch(url), 1 << 20, tooLarge);
    const before = Deno.memoryUsage().external;
    for (let i = 0; i < 30; i++) await readBoundedBody(await fetch(url), 1 << 20, tooLarge);
    const perRead = (Deno.memoryUsage().external - before) / 30;
    assert(perRead < 16 * 1024, `${Math.round(perRead)} bytes of external memory per read`);
  });
});
