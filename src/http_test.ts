/** HTTP helpers: proxy routes, send failures, and bounded bodies read without a 64 KiB buffer each. */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotIncludes,
  assertRejects,
} from "../tests/assert.ts";
import {
  classifySendFailure,
  describeSendFailure,
  proxyFor,
  readBoundedBody,
  textReader,
} from "./http.ts";

const refused = new TypeError("fetch failed", {
  cause: new Error(
    "error sending request for url (https://auth.example.com/token): client error (Connect): tcp connect error: Connection refused (os error 111)",
  ),
});

Deno.test("proxyFor() picks HTTPS_PROXY or HTTP_PROXY by scheme, either case, and honours NO_PROXY", () => {
  const env = { HTTPS_PROXY: "http://proxy.example:3128", http_proxy: "proxy.example:8080" };
  assertEquals(proxyFor("https://auth.example.com/token", env), {
    proxy: "http://proxy.example:3128",
    variable: "HTTPS_PROXY",
  });
  assertEquals(proxyFor("http://127.0.0.1:8080/token", env), {
    proxy: "http://proxy.example:8080",
    variable: "http_proxy",
  });
  assertEquals(proxyFor("https://auth.example.com/token", {}), undefined);
  for (
    const noProxy of ["*", "auth.example.com", ".example.com", "example.com", "x, example.com:443"]
  ) {
    assertEquals(
      proxyFor("https://auth.example.com/token", { ...env, NO_PROXY: noProxy }),
      undefined,
      noProxy,
    );
  }
  assertEquals(proxyFor("https://[::1]:6443/api", { ...env, no_proxy: "::1" }), undefined);
  assertEquals(
    proxyFor("https://auth.example.com/token", { ...env, NO_PROXY: "ample.com,other.example" })
      ?.variable,
    "HTTPS_PROXY",
  );
});

Deno.test("proxyFor() never shows the proxy's user name or password", () => {
  const route = proxyFor("https://auth.example.com/token", {
    HTTPS_PROXY: "http://alice:proxy-password-31f@proxy.example:3128",
  });
  assertEquals(route?.proxy, "http://proxy.example:3128");
  assertNotIncludes(JSON.stringify(route), "proxy-password-31f");
});

Deno.test("describeSendFailure() blames an unreachable proxy, not the endpoint behind it", () => {
  const route = { proxy: "http://127.0.0.1:3128", variable: "HTTPS_PROXY" };
  assertEquals(classifySendFailure(refused).kind, "refused");
  assertEquals(
    describeSendFailure(refused, route),
    "the proxy http://127.0.0.1:3128 (from HTTPS_PROXY) is not reachable: tcp connect error: Connection refused (os error 111); check HTTPS_PROXY, or list the host in NO_PROXY",
  );
  assertEquals(
    describeSendFailure(refused),
    "tcp connect error: Connection refused (os error 111)",
  );
  // The proxy answered but the tunnel broke: the proxy is named as the way, not as the failure.
  const tunnel = new TypeError("fetch failed", {
    cause: new Error(
      "error sending request for url (https://auth.example.com/token): client error (Connect): unexpected eof while tunneling",
    ),
  });
  assertMatch(
    describeSendFailure(tunnel, route),
    /^connection lost: unexpected eof while tunneling \(through the proxy http:\/\/127\.0\.0\.1:3128 from HTTPS_PROXY\)$/,
  );
});

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

Deno.test("textReader() decodes a watch body across chunks, multi-byte characters split included", async () => {
  const bytes = new TextEncoder().encode(`${"é".repeat(20_000)}\n{"type":"MODIFIED"}\n`);
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response(
        new ReadableStream({
          start(controller) {
            // Odd chunk sizes split the two-byte characters.
            for (let i = 0; i < bytes.length; i += 999) controller.enqueue(bytes.slice(i, i + 999));
            controller.close();
          },
        }),
      ),
  );
  const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  const reader = textReader(response.body!, 1_000);
  let text = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
  }
  assertEquals(text, new TextDecoder().decode(bytes));
  // A body that is no byte stream is decoded too.
  const plain = textReader(
    new Blob(["a", "é"]).stream().pipeThrough(new TransformStream<Uint8Array, Uint8Array>()),
  );
  let rest = "";
  for (let r = await plain.read(); !r.done; r = await plain.read()) rest += r.value;
  assertEquals(rest, "aé");
});

Deno.test("textReader() does not leave a 64 KiB buffer behind per chunk of a watch", async () => {
  // One chunk a change, as a watch delivers them; read through TextDecoderStream each took a
  // fresh 64 KiB buffer outside the V8 heap.
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(readable),
  );
  const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  const reader = textReader(response.body!);
  const writer = writable.getWriter();
  const event = new TextEncoder().encode('{"type":"MODIFIED","object":{}}\n');
  await writer.write(event);
  await reader.read();
  const before = Deno.memoryUsage().external;
  for (let i = 0; i < 30; i++) {
    await writer.write(event);
    assertEquals((await reader.read()).value, new TextDecoder().decode(event));
  }
  const perChunk = (Deno.memoryUsage().external - before) / 30;
  await writer.close();
  await reader.cancel().catch(() => {});
  assert(perChunk < 16 * 1024, `${Math.round(perChunk)} bytes of external memory per chunk`);
});
